"""The durable store's cost: a training step with and without it, /runs for 50 owners x 20 runs, a restart's
read-back, and the database's size per default run. Prints its figures, the ratio to the memory-only
baseline from the same run (medians), and the CPU it ran on.

    python bench/store.py [--steps 300] [--db sqlite|URL]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modes.data import corpus  # noqa: E402
from modes.pretrain import core as pc  # noqa: E402
from modes.runs.events import Step  # noqa: E402
from modes.runs.follow import fold_event  # noqa: E402
from modes.runs.history import History  # noqa: E402
from modes.runs.store import Store  # noqa: E402


def cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def step_times(history: History, steps: int) -> list[float]:
    """A `baby` pre-training, every event folded into a run and written as the app does; ms per step."""
    from modes.model.loader import ModelLoader
    from tests.conftest import make_tiny_model  # a loader only to build the scratch model on the CPU

    loader = ModelLoader.from_model(make_tiny_model(300), _tok(), name="bench")
    cfg = pc.PretrainConfig(size="baby", steps=steps, eval_every=50, sample_every=steps, seed=1)
    run = history.new_run(history.issue(), "pretrain", {"size": "baby", "steps": steps})
    history.update(run, status="running")
    last, out = None, []
    for ev in pc.train_scratch(loader, corpus.shakespeare(), cfg):
        changes = fold_event(run, ev, on_done=lambda r, res: {"outcome": "done"}, curves=("train", "val"))
        history.update(run, **changes)
        if isinstance(ev, Step):
            now = time.perf_counter()
            if last is not None:
                out.append((now - last) * 1e3)
            last = now
    history.update(run, status="done")
    return out[10:]  # past the warm-up


def _tok():
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["hello world"] * 4, vocab_size=300, min_frequency=1, special_tokens=["<pad>", "<eos>", "<bos>"])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")


def fill(history: History, owners: int, runs: int, points: int) -> list[str]:
    """`owners` x `runs` finished runs with `points` curve points and a summary each."""
    ids = []
    for _ in range(owners):
        o = history.issue()
        ids.append(o)
        for i in range(runs):
            r = history.new_run(o, "pretrain", {"size": "baby", "steps": points, "seed": i})
            r.curve.extend({"x": s, "y": 3 - s / points, "series": "train"} for s in range(1, points + 1))
            history.update(r, status="done", summary={"val_bpc": 2.3, "steps": points, "seconds": 60.0})
    return ids


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--db", default="sqlite", help="sqlite (a temp file) or an SQLAlchemy URL")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hml-bench-store-"))
    url = f"sqlite:///{tmp / 'hml.sqlite3'}" if args.db == "sqlite" else args.db
    print(f"CPU: {cpu()}; database: {url.split('://')[0]}", flush=True)

    # 1. training step time, memory only (the baseline) and with the store, alternating
    mem, db = [], []
    for i in range(2):
        mem.append(statistics.median(step_times(History(tmp / f"m{i}"), args.steps)))
        db.append(statistics.median(step_times(History(tmp / "runs", store=Store(url)), args.steps)))
    print(f"baby step, median ms: memory {statistics.median(mem):.1f} {[round(x, 1) for x in mem]}, "
          f"store {statistics.median(db):.1f} {[round(x, 1) for x in db]}; "
          f"ratio store/memory {statistics.median(db) / statistics.median(mem):.3f}", flush=True)

    # 2. /runs for one owner among 50 x 20 runs, memory and store (what the endpoint computes), and a restart
    for name, h in (("memory", History(tmp / "m-runs")), ("store", History(tmp / "runs", store=Store(url)))):
        t0 = time.perf_counter()
        owners = fill(h, 50, 20, 1100)
        fill_s = time.perf_counter() - t0
        lat = []
        for o in owners * 4:
            t = time.perf_counter()
            [r.public() for r in h.runs(o)]
            lat.append((time.perf_counter() - t) * 1e3)
        print(f"/runs ({name}), 50 owners x 20 runs of 1100 points: p50 {statistics.median(lat):.2f} ms, "
              f"p95 {pct(lat, 0.95):.2f} ms (target p95 <= 50 ms); filling took {fill_s:.1f} s", flush=True)
    if url.startswith("sqlite"):
        size = Path(url.split("///", 1)[1]).stat().st_size
        wal = Path(url.split("///", 1)[1] + "-wal")
        size += wal.stat().st_size if wal.exists() else 0
        n = 50 * 20 + 4  # the filled runs and the step-time runs
        print(f"database size: {size / 2**20:.1f} MB for {n} runs, {size / n / 1024:.0f} KB per default-length run "
              f"(1100 curve points)", flush=True)
    t = time.perf_counter()
    again = History(tmp / "runs", store=Store(url))
    print(f"restart read-back of {sum(len(v) for v in again._owners.values())} runs: {time.perf_counter() - t:.2f} s",
          flush=True)


if __name__ == "__main__":
    main()
