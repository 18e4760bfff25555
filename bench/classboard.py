"""Class board benchmark: what a projected board costs, on the app as served.

Seeds a data dir with one class of 40 learners x 20 finished runs each (pre-training, fine-tune and sweep
summaries shaped like the real ones), starts `python app.py` on it (embedded model; the app reads the class
and the 800 runs back from the store), then:
1. `/class_board` over HTTP, 200 calls one after another: p50 / p95 (target p95 <= 100 ms), and the same
   board built in process (no HTTP) for comparison;
2. 16 concurrent `/translate` calls, p95, with no board open (the baseline) and with 3 boards polling every
   3 s, interleaved A B A B A B in the same run: the medians of each side and their ratio (target: within noise).
Prints the CPU it ran on. Usage: python bench/classboard.py [--learners 40] [--runs 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.load import SENTENCES, pct  # noqa: E402
from bench.store import cpu  # noqa: E402


def seed_class(data_dir: Path, learners: int, runs_each: int) -> tuple[str, str]:
    """One class with `learners` learners, each with `runs_each` finished runs, written to the store in data_dir."""
    from modes.runs.classes import Classes
    from modes.runs.history import History
    from modes.runs.store import Store, database_url

    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(database_url(data_dir))
    history, classes = History(data_dir / "runs", store=store), Classes(store)
    code, key = classes.create()
    classes.set_experiment(classes.teacher(code, key), "finetune", "r", [1, 2, 4, 8, 16, 32])
    rng = random.Random(0)
    for i in range(learners):
        owner = history.issue()
        member = classes.join(code, owner, "", "en" if i % 2 else "ko")
        for j in range(runs_each):
            kind = ("pretrain", "finetune", "incontext")[j % 3]
            if kind == "pretrain":
                run = history.new_run(owner, kind, {"corpus": "shakespeare", "size": "tiny", "steps": 100 * (1 + j), "seed": j})
                summary = {"val_bpc": 2.5 + rng.random(), "params": 180_000, "steps": 100 * (1 + j), "seconds": 9.0,
                           "params_updated_fraction": 1.0, "samples": ["..."], "corpus": "shakespeare", "n_chars": 5_000_000}
            elif kind == "finetune":
                r = member.value if j < 3 else 2 ** (j % 6)
                run = history.new_run(owner, kind, {"steps": 60, "r": r, "learning_rate": 1e-3, "seed": j,
                                                    "direction": "en-ko" if j % 2 else "ko-en", "data": "built-in"})
                summary = {"chrf_before": 8.0, "chrf_after": 15 + 10 * rng.random(), "steps": 60, "seconds": 70.0,
                           "off_task": {"reverse_chrf_before": 12.0, "reverse_chrf_after": 10 * rng.random(),
                                        "general_bpc_before": 2.1, "general_bpc_after": 2.2 + rng.random() / 5}}
            else:
                run = history.new_run(owner, kind, {"direction": "en-ko" if j % 2 else "ko-en", "ks": "0,1,2,4,8", "n": 16,
                                                    "seed": j, "adapter": None})
                chrf = {str(k): 5 + k + 3 * rng.random() for k in (0, 1, 2, 4, 8)}
                summary = {"chrf": chrf, "best_k": int(max(chrf, key=chrf.get)), "n": 16, "seconds": 30.0}
            history.update(run, status="done", summary=summary)
    return code, key


def latency(url: str, n: int, *args, api_name: str) -> list[float]:
    """`n` calls one after another from one client: seconds each."""
    from gradio_client import Client

    c = Client(url, verbose=False, ssl_verify=False)
    c.predict(*args, api_name=api_name)  # warm-up
    out = []
    for _ in range(n):
        t = time.perf_counter()
        c.predict(*args, api_name=api_name)
        out.append(time.perf_counter() - t)
    return out


def in_process(data_dir: Path, code: str, n: int) -> list[float]:
    """The same board built in this process from a restored store (no HTTP, no Gradio)."""
    from modes import tabs as registry
    from modes.classboard import board as boards
    from modes.runs.classes import Classes
    from modes.runs.history import History
    from modes.runs.store import Store, database_url

    store = Store(database_url(data_dir))
    history, classes = History(data_dir / "runs", store=store), Classes(store)
    room, tabs = classes.rooms[code], registry.load()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        boards.board(room, history.runs_of(list(room.members)), tabs)
        out.append(time.perf_counter() - t)
    return out


def translate_p95(clients: list, n: int) -> float:
    def one(i: int) -> float:
        t = time.perf_counter()
        out = clients[i].predict(text=SENTENCES[i % len(SENTENCES)], direction="en-ko", api_name="/translate")[-1]
        assert out["translation"] is not None
        return time.perf_counter() - t

    with ThreadPoolExecutor(n) as pool:
        return pct(list(pool.map(one, range(n))), 0.95)


class Boards:
    """`n` projected boards, each polling /class_board every `every` s (as the page's gr.Timer does)."""

    def __init__(self, url: str, code: str, key: str, n: int, every: float = 3.0):
        from gradio_client import Client

        self.stop, self.calls = threading.Event(), 0
        clients = [Client(url, verbose=False, ssl_verify=False) for _ in range(n)]

        def poll(c, offset: float):
            time.sleep(offset)
            while not self.stop.is_set():
                c.predict(code, key, api_name="/class_board")
                self.calls += 1
                self.stop.wait(every)

        self.threads = [threading.Thread(target=poll, args=(c, every * i / n), daemon=True) for i, c in enumerate(clients)]
        for t in self.threads:
            t.start()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--learners", type=int, default=40)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrent", type=int, default=16)
    args = ap.parse_args()
    print(f"CPU: {cpu()} ({os.cpu_count()} cores)")
    data_dir = Path(tempfile.mkdtemp(prefix="hml-bench-class-"))
    t = time.perf_counter()
    code, key = seed_class(data_dir, args.learners, args.runs)
    print(f"seeded one class: {args.learners} learners x {args.runs} runs in {time.perf_counter() - t:.1f} s")
    os.environ["HML_DATA_DIR"] = str(data_dir)
    from bench.classroom import Server

    srv = Server("on")
    try:
        from gradio_client import Client

        full = Client(srv.url, verbose=False, ssl_verify=False).predict(code, key, api_name="/class_board")
        assert len(full["learners"]) == args.learners and sum(len(v) for v in full["runs"].values()) == args.learners * args.runs
        # The floor: gradio_client's round trip to an endpoint that does nothing (/model_status), measured alongside.
        floor, lat = [], []
        for _ in range(4):
            floor += latency(srv.url, args.calls // 4, api_name="/model_status")
            lat += latency(srv.url, args.calls // 4, code, key, api_name="/class_board")
        local = in_process(data_dir, code, 50)
        print(f"/class_board over HTTP, {len(lat)} calls ({len(json.dumps(full)) / 1024:.0f} KB each): p50 {1000 * pct(lat, 0.5):.1f} ms, "
              f"p95 {1000 * pct(lat, 0.95):.1f} ms (target <= 100 ms); the floor, /model_status: p50 {1000 * pct(floor, 0.5):.1f} ms, "
              f"p95 {1000 * pct(floor, 0.95):.1f} ms; board / floor, medians: {pct(lat, 0.5) / pct(floor, 0.5):.2f}; "
              f"the board built in process: median {1000 * statistics.median(local):.1f} ms")
        clients = [Client(srv.url, verbose=False, ssl_verify=False) for _ in range(args.concurrent)]
        translate_p95(clients, args.concurrent)  # warm-up: the prompt's prefix and the first proof
        without, with_boards, polls = [], [], 0
        for _ in range(args.rounds):
            without.append(translate_p95(clients, args.concurrent))
            b = Boards(srv.url, code, key, 3)
            time.sleep(1.0)
            with_boards.append(translate_p95(clients, args.concurrent))
            b.close()
            polls += b.calls
        a, w = statistics.median(without), statistics.median(with_boards)
        print(f"{args.concurrent} concurrent /translate p95: no board {a:.2f} s (rounds {', '.join(f'{x:.2f}' for x in without)}); "
              f"3 boards polling every 3 s {w:.2f} s (rounds {', '.join(f'{x:.2f}' for x in with_boards)}; {polls} board calls); "
              f"ratio {w / a:.2f}")
    finally:
        srv.close()


if __name__ == "__main__":
    main()
