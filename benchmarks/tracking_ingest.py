"""Tracking ingest, Conveyor against MLflow, side by side on SQLite on local disk.

Measures, each in a fresh temporary folder:

- per-call logging: ``log_metric`` once per point. For Conveyor both the call cost
  (the loop alone; points are buffered) and the sustained rate (loop + ``flush()``,
  i.e. until every point is stored). MLflow's synchronous ``log_metric`` stores the
  point before it returns, so its call rate is its sustained rate.
- batch ingest: Conveyor ``log_batch`` with lists of 10,000 points against
  ``MlflowClient().log_batch`` with lists of 1,000 (MLflow's limit per call).
- run creation: ``with start_run(): log_params(10 params); log_metrics(10 metrics)``.
- import time: ``python -c "import conveyor"`` against ``python -c "import mlflow"``.

MLflow is about a thousand times slower per point, so it gets smaller sizes;
everything is reported as a rate. Every stored row is counted afterwards.

    python benchmarks/tracking_ingest.py            # about 1.5 minutes on 2 cores (3 rounds)
    python benchmarks/tracking_ingest.py --quick    # about 20 seconds (1 round)
    python benchmarks/tracking_ingest.py --json ingest.json
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    MLFLOW_ENV,
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


def count_rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# ----------------------------------------------------------------- Conveyor


def conveyor_in(folder: Path) -> Any:
    import conveyor as cv

    cv.configure(uri=f"sqlite:///{folder / 'conveyor.db'}", artifacts=str(folder / "artifacts"))
    cv.set_project("bench")
    return cv


def conveyor_per_call(n: int, root: str | None) -> dict[str, Any]:
    with scratch("cv-per-call", root) as folder:
        cv = conveyor_in(folder)
        with cv.start_run(name="per-call"):
            start = time.perf_counter()
            for i in range(n):
                cv.log_metric("loss", float(i), step=i)
            looped = time.perf_counter()
            cv.flush()
            stored = time.perf_counter()
        cv.configure()  # close the client before the folder goes
        rows = count_rows(folder / "conveyor.db", "metrics")
    assert rows == n, f"Conveyor stored {rows} of {n} points"
    return {
        "points": n,
        "loop_s": looped - start,
        "flush_s": stored - looped,
        "call_rate": n / (looped - start),
        "sustained_rate": n / (stored - start),
    }


def conveyor_batch(total: int, size: int, root: str | None) -> dict[str, Any]:
    import conveyor as cv

    ts = int(time.time() * 1000)
    batches = [
        [
            cv.MetricPoint(KEYS[j % 10], float(j), j // 10, ts)
            for j in range(b, min(b + size, total))
        ]
        for b in range(0, total, size)
    ]
    with scratch("cv-batch", root) as folder:
        cv = conveyor_in(folder)
        with cv.start_run(name="batch"), Clock() as clock:
            for batch in batches:
                cv.log_batch(batch)  # stored when it returns
        cv.configure()
        rows = count_rows(folder / "conveyor.db", "metrics")
    assert rows == total, f"Conveyor stored {rows} of {total} points"
    return {
        "points": total,
        "batch_size": size,
        "seconds": clock.seconds,
        "rate": total / clock.seconds,
    }


def conveyor_runs(n: int, root: str | None) -> dict[str, Any]:
    with scratch("cv-runs", root) as folder:
        cv = conveyor_in(folder)
        metrics = {k: 0.5 for k in KEYS}
        with cv.start_run(name="warm-up"):  # one-time costs: environment capture, heartbeat thread
            cv.log_params(PARAMS)
        with Clock() as clock:
            for i in range(n):
                with cv.start_run(name=f"run-{i}"):
                    cv.log_params(PARAMS)
                    cv.log_metrics(metrics)
        cv.configure()
        runs = count_rows(folder / "conveyor.db", "runs") - 1
        points = count_rows(folder / "conveyor.db", "metrics")
    assert runs == n and points == n * 10, f"Conveyor stored {runs} runs and {points} points"
    return {"runs": n, "seconds": clock.seconds, "rate": n / clock.seconds}


# ------------------------------------------------------------------- MLflow


def mlflow_in(folder: Path) -> Any:
    mlflow = quiet_mlflow()
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = mlflow.create_experiment("bench", artifact_location=str(folder / "artifacts"))
    mlflow.set_experiment(experiment_id=experiment)
    return mlflow


def mlflow_per_call(n: int, root: str | None) -> dict[str, Any]:
    with scratch("mlflow-per-call", root) as folder:
        mlflow = mlflow_in(folder)
        with mlflow.start_run(run_name="per-call"), Clock() as clock:
            for i in range(n):
                mlflow.log_metric("loss", float(i), step=i)  # synchronous: stored on return
        rows = count_rows(folder / "mlflow.db", "metrics")
    assert rows == n, f"MLflow stored {rows} of {n} points"
    return {"points": n, "seconds": clock.seconds, "rate": n / clock.seconds}


def mlflow_batch(total: int, size: int, root: str | None) -> dict[str, Any]:
    mlflow = quiet_mlflow()
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    batches = [
        [Metric(KEYS[j % 10], float(j), ts, j // 10) for j in range(b, min(b + size, total))]
        for b in range(0, total, size)
    ]
    with scratch("mlflow-batch", root) as folder:
        mlflow = mlflow_in(folder)
        client = MlflowClient()
        with mlflow.start_run(run_name="batch") as run, Clock() as clock:
            for batch in batches:
                client.log_batch(run.info.run_id, metrics=batch)
        rows = count_rows(folder / "mlflow.db", "metrics")
    assert rows == total, f"MLflow stored {rows} of {total} points"
    return {
        "points": total,
        "batch_size": size,
        "seconds": clock.seconds,
        "rate": total / clock.seconds,
    }


def mlflow_runs(n: int, root: str | None) -> dict[str, Any]:
    with scratch("mlflow-runs", root) as folder:
        mlflow = mlflow_in(folder)
        metrics = {k: 0.5 for k in KEYS}
        with mlflow.start_run(run_name="warm-up"):
            mlflow.log_params(PARAMS)
        with Clock() as clock:
            for i in range(n):
                with mlflow.start_run(run_name=f"run-{i}"):
                    mlflow.log_params(PARAMS)
                    mlflow.log_metrics(metrics)
        runs = count_rows(folder / "mlflow.db", "runs") - 1
        points = count_rows(folder / "mlflow.db", "metrics")
    assert runs == n and points == n * 10, f"MLflow stored {runs} runs and {points} points"
    return {"runs": n, "seconds": clock.seconds, "rate": n / clock.seconds}


# ------------------------------------------------------------------- import


def import_times(module: str, attribute: str | None, repeats: int) -> dict[str, float]:
    """Best of ``repeats`` fresh interpreters: wall time of the process, and of the import alone."""
    env = {**os.environ, **MLFLOW_ENV}
    env.pop("MLFLOW_TRACKING_URI", None)
    touch = f"; {module}.{attribute}" if attribute else ""
    wall_code = f"import {module}{touch}"
    import_code = f"import time; t = time.perf_counter(); import {module}{touch}; print(time.perf_counter() - t)"
    walls, imports = [], []
    with tempfile.TemporaryDirectory() as cwd:  # nothing in the working folder shadows a package

        def run(code: str) -> str:
            done = subprocess.run(
                [sys.executable, "-c", code],
                cwd=cwd,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            return done.stdout

        run(wall_code)  # warm the OS file cache
        for _ in range(repeats):
            start = time.perf_counter()
            run(wall_code)
            walls.append(time.perf_counter() - start)
            imports.append(float(run(import_code).strip().splitlines()[-1]))
    return {"wall_s": min(walls), "import_s": min(imports)}


# --------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the default sizes")
    parser.add_argument("--points", type=int, default=1_000_000, help="Conveyor per-call points")
    parser.add_argument("--mlflow-points", type=int, default=2_000, help="MLflow per-call points")
    parser.add_argument(
        "--batch-points", type=int, default=1_000_000, help="Conveyor log_batch points"
    )
    parser.add_argument(
        "--mlflow-batch-points", type=int, default=20_000, help="MLflow log_batch points"
    )
    parser.add_argument("--runs", type=int, default=1_000, help="Conveyor runs created")
    parser.add_argument("--mlflow-runs", type=int, default=100, help="MLflow runs created")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of the ingest measures; the best is shown"
    )
    parser.add_argument(
        "--import-repeats", type=int, default=5, help="fresh interpreters per import measure"
    )
    parser.add_argument(
        "--dir", help="where the temporary stores go (default: the system temp folder)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        for name in (
            "points",
            "mlflow_points",
            "batch_points",
            "mlflow_batch_points",
            "runs",
            "mlflow_runs",
        ):
            setattr(args, name, max(1, getattr(args, name) // 10))
        args.repeat, args.import_repeats = 1, 3

    with tempfile.TemporaryDirectory(prefix="conveyor-bench-home-") as home:
        os.environ["CONVEYOR_HOME"] = home  # nothing lands in ~/.conveyor
        info = machine()
        print_machine(info)
        raw: dict[str, list[dict[str, Any]]] = {}
        imports = [
            ("import conveyor", lambda: import_times("conveyor", None, args.import_repeats)),
            (
                "import conveyor + SDK",
                lambda: import_times("conveyor", "log_metric", args.import_repeats),
            ),
            ("import mlflow", lambda: import_times("mlflow", None, args.import_repeats)),
        ]
        # Conveyor and MLflow alternate, so a burst of load from elsewhere hits both.
        ingest = [
            ("conveyor per-call", lambda: conveyor_per_call(args.points, args.dir)),
            ("mlflow per-call", lambda: mlflow_per_call(args.mlflow_points, args.dir)),
            ("conveyor batch", lambda: conveyor_batch(args.batch_points, 10_000, args.dir)),
            ("mlflow batch", lambda: mlflow_batch(args.mlflow_batch_points, 1_000, args.dir)),
            ("conveyor runs", lambda: conveyor_runs(args.runs, args.dir)),
            ("mlflow runs", lambda: mlflow_runs(args.mlflow_runs, args.dir)),
        ]
        for round_ in range(args.repeat):
            steps = imports + ingest if round_ == 0 else ingest
            print(f"round {round_ + 1} of {args.repeat}:", flush=True)
            for name, step in steps:
                with Clock() as clock:
                    raw.setdefault(name, []).append(step())
                print(f"  {name:24} {clock.seconds:5.1f} s", flush=True)

    def best(name: str, key: str) -> float:
        return max(sample[key] for sample in raw[name])

    cv_call, ml_call = raw["conveyor per-call"][0], raw["mlflow per-call"][0]
    cv_batch, ml_batch = raw["conveyor batch"][0], raw["mlflow batch"][0]
    cv_runs, ml_runs = raw["conveyor runs"][0], raw["mlflow runs"][0]  # for the sizes
    cv_imp, cv_sdk, ml_imp = (
        raw["import conveyor"][0],
        raw["import conveyor + SDK"][0],
        raw["import mlflow"][0],
    )
    call, sustained = (
        best("conveyor per-call", "call_rate"),
        best("conveyor per-call", "sustained_rate"),
    )
    ml_call_rate = best("mlflow per-call", "rate")
    batch, ml_batch_rate = best("conveyor batch", "rate"), best("mlflow batch", "rate")
    runs, ml_runs_rate = best("conveyor runs", "rate"), best("mlflow runs", "rate")
    rows = [
        Row(
            f"log_metric per call, call cost ({cv_call['points']:,} vs {ml_call['points']:,} points)",
            "pts/s",
            call,
            ml_call_rate,
            True,
            ">= 100x MLflow",
            call >= 100 * ml_call_rate,
        ),
        Row(
            "log_metric per call, sustained until stored",
            "pts/s",
            sustained,
            ml_call_rate,
            True,
            ">= 200,000 pts/s",
            sustained >= 200_000,
        ),
        Row(
            f"log_batch ({cv_batch['points']:,} pts in 10k lists vs {ml_batch['points']:,} in 1k lists)",
            "pts/s",
            batch,
            ml_batch_rate,
            True,
            ">= 20x MLflow",
            batch >= 20 * ml_batch_rate,
        ),
        Row(
            f"run + 10 params + 10 metrics ({cv_runs['runs']:,} vs {ml_runs['runs']:,} runs)",
            "runs/s",
            runs,
            ml_runs_rate,
            True,
            ">= 10x MLflow",
            runs >= 10 * ml_runs_rate,
        ),
        Row(
            "python -c 'import X' (whole process, best of N)",
            "s",
            cv_imp["wall_s"],
            ml_imp["wall_s"],
            False,
            "conveyor < 0.2 s",
            cv_imp["wall_s"] < 0.2,
        ),
        Row(
            "import X alone, in a fresh interpreter",
            "s",
            cv_imp["import_s"],
            ml_imp["import_s"],
            False,
            "conveyor < 0.2 s",
            cv_imp["import_s"] < 0.2,
        ),
        Row(
            "import X + SDK loaded (conveyor.log_metric)",
            "s",
            cv_sdk["import_s"],
            ml_imp["import_s"],
            False,
            "-",
            None,
        ),
    ]
    print()
    print_table(rows)
    print(f"\nBest of {args.repeat} round(s) for the ingest rows; every round (same order):")
    for name, key in [
        ("conveyor per-call", "call_rate"),
        ("conveyor per-call", "sustained_rate"),
        ("mlflow per-call", "rate"),
        ("conveyor batch", "rate"),
        ("mlflow batch", "rate"),
        ("conveyor runs", "rate"),
        ("mlflow runs", "rate"),
    ]:
        print(
            f"  {name + ' ' + key:34} "
            + "  ".join(f"{sample[key]:>11,.1f}" for sample in raw[name])
        )
    print(
        "Conveyor per-call seconds (loop + flush): "
        + "  ".join(f"{s['loop_s']:.2f} + {s['flush_s']:.2f}" for s in raw["conveyor per-call"])
        + "  (flush_interval and flush_size at their defaults)"
    )
    if args.json:
        dump_json(args.json, [Path(sys.executable).name, *sys.argv], info, rows, {"raw": raw})
    return 0


if __name__ == "__main__":
    sys.exit(main())
