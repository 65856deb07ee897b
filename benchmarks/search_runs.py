"""Run search, Conveyor against MLflow, on the same runs in SQLite on local disk.

Both stores get the same runs: ``--runs`` runs (default 10,000), each with
``--metrics`` metrics ``m0``..``m19`` (uniform 0-100, seeded), two params and two
tags. Then the first page of

    filter "metrics.m0 < 50", order by "metrics.m0 ASC", max_results 100

is timed with each tool's search API: one warm-up call, then the median of five.
The two answers must name the same runs in the same order.

Populating the stores:

- Conveyor: the store's own calls (``create_run``, ``log_params``,
  ``set_run_status``) and its bulk path ``log_metric_points`` for the metrics.
- MLflow: the public API (``MlflowClient.create_run``, ``log_batch``,
  ``set_terminated``) creates the first ``--mlflow-api-runs`` runs (default 100),
  which takes ~30 ms a run. The rest are copies of those rows (same columns,
  same tags MLflow wrote, new ids and values) inserted into MLflow's own tables
  in one transaction, because 10,000 runs through the API take about 5 minutes
  on 2 cores. ``--mlflow-populate api`` creates every run through the API instead.

    python benchmarks/search_runs.py                # about 1 minute on 2 cores
    python benchmarks/search_runs.py --quick        # 1,000 runs
    python benchmarks/search_runs.py --mlflow-populate api   # ~5 more minutes
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass
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

FILTER = "metrics.m0 < 50"
ORDER_BY = ["metrics.m0 ASC"]
PAGE = 100
BASE_TIME = 1_790_000_000_000  # ms; runs start one second apart from here


@dataclass(frozen=True)
class FakeRun:
    name: str
    start: int
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


def make_runs(n: int, n_metrics: int, seed: int = 7) -> list[FakeRun]:
    rng = random.Random(seed)
    runs = []
    for i in range(n):
        runs.append(
            FakeRun(
                name=f"run-{i:06d}",
                start=BASE_TIME + i * 1000,
                metrics={f"m{j}": round(rng.uniform(0, 100), 6) for j in range(n_metrics)},
                params={
                    "lr": str(rng.choice([0.1, 0.03, 0.01, 0.003])),
                    "model": rng.choice(["lgbm", "rf", "ridge"]),
                },
                tags={
                    "team": rng.choice(["ads", "search", "risk"]),
                    "stage": rng.choice(["dev", "prod"]),
                },
            )
        )
    return runs


def expected_names(runs: list[FakeRun]) -> list[str]:
    matching = sorted((r for r in runs if r.metrics["m0"] < 50), key=lambda r: r.metrics["m0"])
    return [r.name for r in matching[:PAGE]]


def time_calls(call: Any, repeats: int) -> tuple[list[float], Any]:
    result = call()  # warm-up: caches, compiled statements, the OS page cache
    seconds = []
    for _ in range(repeats):
        with Clock() as clock:
            result = call()
        seconds.append(clock.seconds)
    return seconds, result


# ----------------------------------------------------------------- Conveyor


def conveyor_search(runs: list[FakeRun], folder: Path, repeats: int) -> dict[str, Any]:
    import conveyor as cv

    cv.configure(uri=f"sqlite:///{folder / 'conveyor.db'}", artifacts=str(folder / "artifacts"))
    store = cv.client().store
    store.get_or_create_project("bench")
    points: list[tuple[str, str, float, int, int]] = []
    with Clock() as populate:
        for r in runs:
            run = store.create_run(
                project="bench", name=r.name, tags=r.tags, env={}, user="bench", start_time=r.start
            )
            store.log_params(run.id, r.params)
            points.extend(
                (run.id, key, value, 0, r.start + 500) for key, value in r.metrics.items()
            )
            if len(points) >= 50_000:
                store.log_metric_points(points)
                points = []
            store.set_run_status(run.id, cv.RunStatus.FINISHED, end_time=r.start + 900)
        store.log_metric_points(points)

    def search() -> Any:
        return cv.search_runs(project="bench", filter=FILTER, order_by=ORDER_BY, max_results=PAGE)

    seconds, page = time_calls(search, repeats)
    names = [run.name for run in page]
    assert page.next_page_token, "more than one page of runs should match"
    cv.configure()  # close the client before the folder goes
    return {"populate_s": populate.seconds, "seconds": seconds, "names": names}


# ------------------------------------------------------------------- MLflow


def mlflow_search(runs: list[FakeRun], folder: Path, repeats: int, api_runs: int) -> dict[str, Any]:
    mlflow = quiet_mlflow()
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    db = folder / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    client = MlflowClient()
    experiment = client.create_experiment("bench", artifact_location=str(folder / "artifacts"))
    through_api = runs[:api_runs]
    with Clock() as api:
        for r in through_api:
            run = client.create_run(experiment, start_time=r.start, tags=r.tags, run_name=r.name)
            client.log_batch(
                run.info.run_id,
                metrics=[Metric(key, value, r.start + 500, 0) for key, value in r.metrics.items()],
                params=[Param(key, value) for key, value in r.params.items()],
            )
            client.set_terminated(run.info.run_id, end_time=r.start + 900)
    with Clock() as copied:
        copy_runs(db, runs[api_runs:], template=run.info.run_id)

    def search() -> Any:
        return client.search_runs(
            [experiment], filter_string=FILTER, order_by=ORDER_BY, max_results=PAGE
        )

    seconds, page = time_calls(search, repeats)
    names = [run.info.run_name for run in page]
    assert page.token, "more than one page of runs should match"

    def fluent() -> Any:
        return mlflow.search_runs(
            [experiment],
            filter_string=FILTER,
            order_by=ORDER_BY,
            max_results=PAGE,
            output_format="list",
        )

    fluent_seconds, fluent_page = time_calls(fluent, repeats)
    assert [run.info.run_name for run in fluent_page] == names
    return {
        "api_runs": len(through_api),
        "api_s": api.seconds,
        "copied_runs": len(runs) - len(through_api),
        "copy_s": copied.seconds,
        "seconds": seconds,
        "fluent_seconds": fluent_seconds,
        "names": names,
    }


def copy_runs(db: Path, runs: list[FakeRun], template: str) -> None:
    """Insert ``runs`` into MLflow's tables as copies of the rows MLflow wrote for ``template``.

    Every column keeps the value MLflow chose for the template run (status,
    lifecycle stage, source type, the ``mlflow.*`` tags...) except the run id,
    name, times, artifact URI and the logged keys' values.
    """
    if not runs:
        return
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        rows = {
            table: [
                dict(r)
                for r in conn.execute(f"SELECT * FROM {table} WHERE run_uuid = ?", (template,))
            ]
            for table in ("runs", "tags", "params", "metrics", "latest_metrics")
        }
        (run_row,) = rows["runs"]
        new: dict[str, list[dict[str, Any]]] = {table: [] for table in rows}
        for r in runs:
            run_id = uuid.uuid4().hex
            new["runs"].append(
                {
                    **run_row,
                    "run_uuid": run_id,
                    "name": r.name,
                    "start_time": r.start,
                    "end_time": r.start + 900,
                    "artifact_uri": run_row["artifact_uri"].replace(template, run_id),
                }
            )
            values = {"tags": {**r.tags, "mlflow.runName": r.name}, "params": r.params}
            for table in ("tags", "params"):
                for row in rows[table]:
                    new[table].append(
                        {
                            **row,
                            "run_uuid": run_id,
                            "value": values[table].get(row["key"], row["value"]),
                        }
                    )
            for table in ("metrics", "latest_metrics"):
                for row in rows[table]:
                    new[table].append(
                        {
                            **row,
                            "run_uuid": run_id,
                            "value": r.metrics[row["key"]],
                            "timestamp": r.start + 500,
                        }
                    )
        with conn:
            for table, table_rows in new.items():
                columns = list(table_rows[0])
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [tuple(row[c] for c in columns) for row in table_rows],
                )
    finally:
        conn.close()


# --------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs instead of 10,000")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=20, help="metrics per run (at least 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed searches after the warm-up")
    parser.add_argument(
        "--mlflow-api-runs", type=int, default=100, help="MLflow runs created through its API"
    )
    parser.add_argument(
        "--mlflow-populate",
        choices=["copy", "api"],
        default="copy",
        help="copy: the first --mlflow-api-runs runs through the API, the rest copied; api: all through the API",
    )
    parser.add_argument(
        "--dir", help="where the temporary stores go (default: the system temp folder)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1_000
    api_runs = (
        args.runs if args.mlflow_populate == "api" else max(1, min(args.mlflow_api_runs, args.runs))
    )

    with tempfile.TemporaryDirectory(prefix="conveyor-bench-home-") as home:
        os.environ["CONVEYOR_HOME"] = home  # nothing lands in ~/.conveyor
        info = machine()
        print_machine(info)
        runs = make_runs(args.runs, args.metrics)
        expected = expected_names(runs)
        print(
            f"{args.runs:,} runs x {args.metrics} metrics, 2 params, 2 tags; "
            f"{sum(r.metrics['m0'] < 50 for r in runs):,} match {FILTER!r}"
        )
        with scratch("cv-search", args.dir) as folder:
            cv = conveyor_search(runs, folder, args.repeats)
        print(
            f"  Conveyor populated in {cv['populate_s']:.1f} s ({args.runs / cv['populate_s']:,.0f} runs/s)"
        )
        with scratch("mlflow-search", args.dir) as folder:
            ml = mlflow_search(runs, folder, args.repeats, api_runs)
        print(
            f"  MLflow: {ml['api_runs']:,} runs through the API in {ml['api_s']:.1f} s "
            f"({ml['api_runs'] / ml['api_s']:,.1f} runs/s), {ml['copied_runs']:,} copied in {ml['copy_s']:.1f} s"
        )

    same = cv["names"] == ml["names"] == expected
    print(
        f"  same {PAGE} runs in the same order from both tools (and as computed here): {'yes' if same else 'NO'}"
    )
    cv_ms = statistics.median(cv["seconds"]) * 1000
    ml_ms = statistics.median(ml["seconds"]) * 1000
    fluent_ms = statistics.median(ml["fluent_seconds"]) * 1000
    rows = [
        Row(
            f"search_runs, first page of {PAGE} ({args.runs:,} runs, median of {args.repeats})",
            "ms",
            cv_ms,
            ml_ms,
            False,
            "conveyor < 100 ms",
            cv_ms < 100,
        ),
        Row(
            "  MLflow fluent mlflow.search_runs(output_format='list')",
            "ms",
            cv_ms,
            fluent_ms,
            False,
            "-",
            None,
        ),
        Row(
            f"populate (Conveyor: {args.runs:,} runs, store calls; MLflow: {ml['api_runs']:,} runs, client API)",
            "runs/s",
            args.runs / cv["populate_s"],
            ml["api_runs"] / ml["api_s"],
            True,
            "-",
            None,
        ),
    ]
    print()
    print_table(rows)
    print("\nevery timed search (ms):")
    print(
        "  Conveyor cv.search_runs          " + "  ".join(f"{s * 1000:.1f}" for s in cv["seconds"])
    )
    print(
        "  MLflow MlflowClient.search_runs " + "  ".join(f"{s * 1000:.1f}" for s in ml["seconds"])
    )
    print(
        "  MLflow mlflow.search_runs        "
        + "  ".join(f"{s * 1000:.1f}" for s in ml["fluent_seconds"])
    )
    if args.json:
        extra = {
            "conveyor": cv,
            "mlflow": ml,
            "same_results": same,
            "runs": args.runs,
            "metrics": args.metrics,
            "mlflow_populate": args.mlflow_populate,
        }
        dump_json(args.json, [Path(sys.executable).name, *sys.argv], info, rows, extra)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
