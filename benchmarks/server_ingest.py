"""Ingest over HTTP: Conveyor client → ``conveyor server`` against MLflow client → ``mlflow server``.

Both servers run on SQLite on local disk with the same number of workers. Measures:

- per-call logging: ``log_metric`` once per point. Conveyor buffers and sends one
  request per flush, so both its call rate and its sustained rate (until
  ``flush()`` returns, every point stored) are shown; MLflow sends one request per call.
- batch logging: Conveyor ``log_batch`` with lists of 10,000 points against
  ``MlflowClient().log_batch`` with lists of 1,000 (MLflow's limit per call).
- run creation: ``start_run`` + 10 params + 10 metrics + end, over HTTP.
- read path: a page of 100 runs (search) and the history of one metric with
  ``--history-points`` points, p50 and p99 of ``--reads`` calls each.

Every stored row is counted in each server's database afterwards.

    python benchmarks/server_ingest.py            # the sizes of the issue (MLflow per-call: minutes)
    python benchmarks/server_ingest.py --quick    # about a minute
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import (
    Clock,
    Row,
    dump_json,
    machine,
    print_machine,
    print_table,
    quiet_mlflow,
    scratch,
)

KEYS = [f"m{i}" for i in range(10)]
PARAMS = {f"p{i}": f"value-{i}" for i in range(10)}
SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count_rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@contextmanager
def running(args: list[str], health: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    """A server process (its own process group) that answers ``health`` until the block ends."""
    import httpx

    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not answer {health}")
            time.sleep(0.1)
        yield
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)


@contextmanager
def conveyor_server(folder: Path, workers: int) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "conveyor.cli.main", "server", "--backend", f"sqlite:///{folder / 'conveyor.db'}",
            "--artifacts", str(folder / "artifacts"), "--port", str(port), "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"
    with running(args, url + "/api/v1/health", folder / "server.log", env):
        yield url


@contextmanager
def mlflow_server(folder: Path, workers: int) -> Iterator[str]:
    port = free_port()
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    args = [mlflow_bin, "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--default-artifact-root", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"
    with running(args, url + "/health", folder / "server.log", dict(os.environ)):
        yield url


def latencies(call: Any, reads: int) -> dict[str, float]:
    """p50 and p99 in milliseconds of ``reads`` calls (after one warm-up call)."""
    call()
    samples = []
    for _ in range(reads):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"p50": samples[len(samples) // 2], "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))]}


# ----------------------------------------------------------------- Conveyor


def conveyor_client(url: str) -> Any:
    import conveyor as cv

    cv.configure(uri=url, artifacts=url)
    cv.set_project("bench")
    return cv


def conveyor_measures(
    folder: Path, url: str, points: int, batch_points: int, runs: int, history: int, reads: int
) -> dict[str, Any]:
    cv = conveyor_client(url)
    db = folder / "conveyor.db"
    with cv.start_run(name="per-call"):
        start = time.perf_counter()
        for i in range(points):
            cv.log_metric("loss", float(i), step=i)
        looped = time.perf_counter()
        cv.flush()
        stored = time.perf_counter()
    ts = int(time.time() * 1000)
    batches = [[cv.MetricPoint(KEYS[j % 10], float(j), j // 10, ts) for j in range(b, min(b + 10_000, batch_points))]
               for b in range(0, batch_points, 10_000)]
    with cv.start_run(name="batch"), Clock() as batch_clock:
        for batch in batches:
            cv.log_batch(batch)
    metrics = {k: 0.5 for k in KEYS}
    with cv.start_run(name="warm-up"):
        cv.log_params(PARAMS)
    with Clock() as runs_clock:
        for i in range(runs):
            with cv.start_run(name=f"run-{i}"):
                cv.log_params(PARAMS)
                cv.log_metrics(metrics)
    with cv.start_run(name="history") as hist:
        for b in range(0, history, 10_000):
            cv.log_batch([cv.MetricPoint("h", float(j), j, ts) for j in range(b, min(b + 10_000, history))])
    client = cv.client()
    page = latencies(lambda: client.store.search_runs(["bench"], max_results=100), reads)
    hist_ms = latencies(lambda: client.store.get_metric_history(hist.id, "h"), reads)
    assert len(client.store.get_metric_history(hist.id, "h")) == history
    cv.configure()  # flush and close
    stored_points = count_rows(db, "metrics")
    assert stored_points == points + batch_points + runs * 10 + history, f"Conveyor stored {stored_points} points"
    assert count_rows(db, "runs") == runs + 4
    return {
        "page_ms": page, "history_ms": hist_ms,
        "call_rate": points / (looped - start), "sustained_rate": points / (stored - start),
        "batch_rate": batch_points / batch_clock.seconds, "runs_rate": runs / runs_clock.seconds,
    }


# ------------------------------------------------------------------- MLflow


def mlflow_measures(
    folder: Path, url: str, points: int, batch_points: int, runs: int, history: int, reads: int
) -> dict[str, Any]:
    mlflow = quiet_mlflow()
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("bench")
    db = folder / "mlflow.db"
    with mlflow.start_run(run_name="per-call"), Clock() as call_clock:
        for i in range(points):
            mlflow.log_metric("loss", float(i), step=i)
    ts = int(time.time() * 1000)
    batches = [[Metric(KEYS[j % 10], float(j), ts, j // 10) for j in range(b, min(b + 1000, batch_points))]
               for b in range(0, batch_points, 1000)]
    client = MlflowClient()
    with mlflow.start_run(run_name="batch") as run, Clock() as batch_clock:
        for batch in batches:
            client.log_batch(run.info.run_id, metrics=batch)
    metrics = {k: 0.5 for k in KEYS}
    with mlflow.start_run(run_name="warm-up"):
        mlflow.log_params(PARAMS)
    with Clock() as runs_clock:
        for i in range(runs):
            with mlflow.start_run(run_name=f"run-{i}"):
                mlflow.log_params(PARAMS)
                mlflow.log_metrics(metrics)
    with mlflow.start_run(run_name="history") as hist:
        for b in range(0, history, 1000):
            client.log_batch(hist.info.run_id, metrics=[Metric("h", float(j), ts, j) for j in range(b, min(b + 1000, history))])
    experiment = mlflow.get_experiment_by_name("bench").experiment_id
    page = latencies(lambda: client.search_runs([experiment], max_results=100), reads)
    hist_ms = latencies(lambda: client.get_metric_history(hist.info.run_id, "h"), reads)
    assert len(client.get_metric_history(hist.info.run_id, "h")) == history
    stored_points = count_rows(db, "metrics")
    assert stored_points == points + batch_points + runs * 10 + history, f"MLflow stored {stored_points} points"
    return {
        "page_ms": page, "history_ms": hist_ms,
        "call_rate": points / call_clock.seconds, "batch_rate": batch_points / batch_clock.seconds,
        "runs_rate": runs / runs_clock.seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--workers", type=int, default=4, help="workers of each server")
    parser.add_argument("--points", type=int, default=1_000_000, help="Conveyor per-call points")
    parser.add_argument("--mlflow-points", type=int, default=5_000, help="MLflow per-call points (one request each)")
    parser.add_argument("--batch-points", type=int, default=1_000_000, help="Conveyor log_batch points")
    parser.add_argument("--mlflow-batch-points", type=int, default=50_000, help="MLflow log_batch points")
    parser.add_argument("--runs", type=int, default=500, help="Conveyor runs created")
    parser.add_argument("--mlflow-runs", type=int, default=50, help="MLflow runs created")
    parser.add_argument("--history-points", type=int, default=100_000, help="points of the metric read back")
    parser.add_argument("--reads", type=int, default=50, help="calls per read-path measure")
    parser.add_argument("--dir", help="where the temporary stores go")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers = min(args.workers, 2)
        args.points, args.mlflow_points = 100_000, 300
        args.batch_points, args.mlflow_batch_points = 100_000, 5_000
        args.runs, args.mlflow_runs = 50, 10
        args.history_points, args.reads = 10_000, 10

    with scratch("home", args.dir) as home:
        os.environ["CONVEYOR_HOME"] = str(home)
        info = machine()
        print_machine(info)
        with scratch("cv-server", args.dir) as folder, conveyor_server(folder, args.workers) as url, Clock() as c:
            cv = conveyor_measures(folder, url, args.points, args.batch_points, args.runs, args.history_points, args.reads)
        print(f"  conveyor server measures  {c.seconds:6.1f} s", flush=True)
        with scratch("mlflow-server", args.dir) as folder, mlflow_server(folder, args.workers) as url, Clock() as c:
            ml = mlflow_measures(folder, url, args.mlflow_points, args.mlflow_batch_points, args.mlflow_runs,
                                 args.history_points, args.reads)
        print(f"  mlflow server measures    {c.seconds:6.1f} s", flush=True)

    rows = [
        Row(f"log_metric per call over HTTP, call cost ({args.points:,} vs {args.mlflow_points:,} pts)", "pts/s",
            cv["call_rate"], ml["call_rate"], True, ">= 1000x MLflow", cv["call_rate"] >= 1000 * ml["call_rate"]),
        Row("log_metric per call over HTTP, sustained until stored", "pts/s",
            cv["sustained_rate"], ml["call_rate"], True, "-", None),
        Row(f"log_batch over HTTP ({args.batch_points:,} in 10k vs {args.mlflow_batch_points:,} in 1k)", "pts/s",
            cv["batch_rate"], ml["batch_rate"], True, ">= 20x MLflow", cv["batch_rate"] >= 20 * ml["batch_rate"]),
        Row(f"run + 10 params + 10 metrics over HTTP ({args.runs} vs {args.mlflow_runs})", "runs/s",
            cv["runs_rate"], ml["runs_rate"], True, ">= 30x MLflow", cv["runs_rate"] >= 30 * ml["runs_rate"]),
    ]
    for label, key in ((f"search: a page of 100 runs (of {args.runs + 4} vs {args.mlflow_runs + 4})", "page_ms"),
                       (f"metric history of {args.history_points:,} points", "history_ms")):
        for q in ("p50", "p99"):
            rows.append(Row(f"{label}, {q}", "ms", cv[key][q], ml[key][q], False, "-", None))
    print()
    print_table(rows)
    if args.json:
        dump_json(args.json, sys.argv, info, rows, {"workers": args.workers, "conveyor": cv, "mlflow": ml})
    return 0


if __name__ == "__main__":
    sys.exit(main())
