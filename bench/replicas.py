"""Replicas benchmark: one app process against two on one PostgreSQL database, as a class would use them.

Starts a private PostgreSQL server (Debian's `postgresql`, as the tests do) and `python app.py` processes on a
tiny local model (bench/storm.py's), each with its own data dir, then measures, in one run:
1. K learners' distinct short pre-trainings (each its own seed), all sent at once: on one process, and split over
   two; the seconds until the last result (median of --rounds). Each process trains one run at a time, so on one
   machine two processes share its cores: the per-core figure and what N machines would give are printed too.
2. The seconds from a replica's SIGKILL, mid-training, until its run shows "interrupted" on the other (with the
   default HML_DEAD_AFTER_S=20, and with --dead-after).
3. `/class_board` over HTTP with 40 learners spread over the two processes (half joined and trained on each):
   p50 / p95 of the board on either process, the teacher's page alternating.
Each replica is given its share of the cores (OMP_NUM_THREADS = cores / replicas), as README says to run them on
one machine. Prints the CPU it ran on. Usage: python bench/replicas.py [--learners 4] [--steps 60] [--rounds 2] [--dead-after 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.load import pct  # noqa: E402
from bench.store import cpu  # noqa: E402
from bench.storm import free_port, save_tiny_model, start_app, wait_for_page  # noqa: E402


def postgres() -> tuple[str, callable]:
    """A private PostgreSQL server: (URL of a fresh database, stop())."""
    import glob
    import shutil
    import subprocess

    bindir = os.path.dirname(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1])
    root = Path(tempfile.mkdtemp(prefix="hml-bench-pg-"))
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)
    run(f"{bindir}/initdb", "-D", str(root / "data"), "-U", "hml", "--auth=trust", "-E", "UTF8")
    run(f"{bindir}/pg_ctl", "-D", str(root / "data"), "-l", str(root / "log"), "-w", "start",
        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200")
    from tests.conftest import new_postgres_db

    url = f"postgresql+psycopg://hml@127.0.0.1:{port}/postgres"

    def stop():
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", str(root / "data"), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    return (lambda: new_postgres_db(url)), stop


class Replicas:
    """n app processes on one database, each with its own data dir and cache."""

    def __init__(self, model: Path, db_url: str, n: int, tmp: Path, dead_after: float | None = None):
        self.procs, self.urls = [], []
        # Each replica gets its share of the cores (OMP_NUM_THREADS): two processes each running torch on every core
        # of one machine fight over them (libgomp's idle spinning), and both go slower than one alone.
        threads = str(max(1, (os.cpu_count() or 1) // n))
        env = dict(HML_DATABASE_URL=db_url, OMP_NUM_THREADS=threads, **({"HML_DEAD_AFTER_S": str(dead_after)} if dead_after else {}))
        saved = {k: os.environ.get(k) for k in (*env, "HML_DATA_DIR")}
        os.environ.update(env)
        try:
            for i in range(n):
                os.environ["HML_DATA_DIR"] = str(tmp / f"data-{i}-{time.time_ns()}")
                port = free_port()
                self.procs.append(start_app(str(model), str(tmp / f"cache-{i}"), port, str(tmp / f"app-{port}.log")))
                self.urls.append(f"http://127.0.0.1:{port}/")
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        for url in self.urls:
            wait_for_page(url, time.perf_counter(), timeout=300)

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait(30)


def client(url, token=None):
    from gradio_client import Client

    return Client(url, verbose=False, **({"headers": {"X-HML-Owner": token}} if token else {}))


def last_result(urls: list[str], learners: int, steps: int, seed0: int) -> float:
    """K distinct pre-trainings sent at once, learner i to urls[i % len(urls)]: seconds until the last result."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(learners) as pool:
        outs = list(pool.map(lambda i: client(urls[i % len(urls)]).predict(
            corpus="shakespeare", size="tiny", steps=steps, seed=seed0 + i, fresh=True, api_name="/pretrain")[-1], range(learners)))
    assert all(o["replay"] is None and o["steps"] == steps for o in outs)
    return time.perf_counter() - t0


def kill_to_interrupted(reps: Replicas) -> float:
    """SIGKILL replica 0 while it trains; seconds until replica 1 lists the run as interrupted."""
    token = client(reps.urls[0]).predict(api_name="/owner")["owner"]
    mine = client(reps.urls[0], token)
    job = mine.submit(corpus="shakespeare", size="tiny", steps=5000, seed=99, fresh=True, api_name="/pretrain")
    other = client(reps.urls[1], token)
    t0 = time.perf_counter()
    while not any(r["status"] == "running" for r in other.predict(api_name="/runs")):
        time.sleep(0.2)
        assert time.perf_counter() - t0 < 120 and not job.done(), f"the run never started: {job.status()}"
    reps.procs[0].kill()
    t0 = time.perf_counter()
    while not any(r["status"] == "interrupted" for r in other.predict(api_name="/runs")):
        time.sleep(0.1)
        assert time.perf_counter() - t0 < 120, "never marked"
    return time.perf_counter() - t0


def board_p95(reps: Replicas, learners: int, calls: int) -> tuple[float, float, int]:
    """A class on replica 0; learners joined and trained (5 steps) half on each replica; the board read `calls` times."""
    made = client(reps.urls[0]).predict(api_name="/class_create")

    def learner(i):
        url = reps.urls[i % 2]
        token = client(url).predict(api_name="/owner")["owner"]
        me = client(url, token)
        me.predict(made["code"], f"L{i}", api_name="/class_join")
        me.predict(corpus="shakespeare", size="tiny", steps=5, seed=1000 + i, api_name="/pretrain")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(learner, range(learners)))
    teachers = [client(u) for u in reps.urls]
    while len(teachers[1].predict(made["code"], made["teacher_key"], api_name="/class_board")["runs"].get("pretrain", [])) < learners:
        time.sleep(0.5)
    lat = []
    for i in range(calls):
        t = time.perf_counter()
        board = teachers[i % 2].predict(made["code"], made["teacher_key"], api_name="/class_board")
        lat.append(time.perf_counter() - t)
    return pct(lat, 0.5), pct(lat, 0.95), len(board["learners"])


class _Skip(Exception):
    pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--learners", type=int, default=4)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dead-after", type=float, default=6.0)
    ap.add_argument("--class-size", type=int, default=40)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--only-kill", action="store_true", help="measure only the seconds from a SIGKILL to 'interrupted'")
    args = ap.parse_args()
    print(f"CPU: {cpu()} ({os.cpu_count()} cores)")
    tmp = Path(tempfile.mkdtemp(prefix="hml-bench-replicas-"))
    model = tmp / "model"
    save_tiny_model(model)
    new_db, stop = postgres()
    try:
        one, two = (Replicas(model, new_db(), 1, tmp), Replicas(model, new_db(), 2, tmp)) if not args.only_kill else (None, None)
        try:
            if args.only_kill:
                raise _Skip
            client(one.urls[0]).predict(corpus="shakespeare", size="tiny", steps=5, seed=1, api_name="/pretrain")  # warm-up
            for u in two.urls:
                client(u).predict(corpus="shakespeare", size="tiny", steps=5, seed=1, api_name="/pretrain")
            a, b = [], []
            for r in range(args.rounds):  # interleaved: a drifting machine slows both sides alike
                a.append(last_result(one.urls, args.learners, args.steps, 10 + 100 * r))
                b.append(last_result(two.urls, args.learners, args.steps, 50 + 100 * r))
            ma, mb = statistics.median(a), statistics.median(b)
            print(f"{args.learners} distinct pre-trainings ({args.steps} steps, tiny) sent at once, until the last result: one process "
                  f"{ma:.1f} s (rounds {', '.join(f'{x:.1f}' for x in a)}), two processes {mb:.1f} s (rounds {', '.join(f'{x:.1f}' for x in b)}); "
                  f"two / one = {mb / ma:.2f}")
            print(f"  per core: {args.learners / ma / os.cpu_count():.3f} trainings/s/core on one process, "
                  f"{args.learners / mb / os.cpu_count():.3f} on two: on one {os.cpu_count()}-core machine both share its cores; "
                  f"N machines with a replica each would finish about N times as many (at most {args.learners / ma:.2f} x N trainings/s here)")
            lo, hi, n = board_p95(two, args.class_size, args.calls)
            print(f"/class_board over HTTP, {n} learners split over two processes, {args.calls} calls alternating: "
                  f"p50 {1000 * lo:.1f} ms, p95 {1000 * hi:.1f} ms")
        except _Skip:
            pass
        finally:
            for reps in (one, two):
                if reps is not None:
                    reps.close()
        for dead_after in (None, args.dead_after):
            reps = Replicas(model, new_db(), 2, tmp, dead_after=dead_after)
            try:
                secs = kill_to_interrupted(reps)
                print(f"SIGKILL to 'interrupted' on the other replica (HML_DEAD_AFTER_S={dead_after or 20:g}): {secs:.1f} s")
            finally:
                reps.close()
    finally:
        stop()


if __name__ == "__main__":
    main()
