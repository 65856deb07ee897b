"""A LightGBM sweep on the bike-sharing data: sequential vs process pool vs local Ray.

The example pipeline (``examples/bikes/pipeline.py``) is swept over a grid of
learning rates and leaf counts. Each executor starts from an empty store, so
only the sharing of upstream steps *within* the sweep helps it: load, validate,
features and split run once, the 12 train/evaluate pairs run on the executor.

    PYTHONPATH=src .venv-bench/bin/python benchmarks/pipeline_sweep.py            # 12 trials
    PYTHONPATH=src .venv-bench/bin/python benchmarks/pipeline_sweep.py --quick    # 4 trials, fewer rounds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def sweep(executor: str, home: Path, grid: dict[str, Any]) -> tuple[float, float]:
    import conveyor as cv
    from conveyor.pipelines.loading import load_pipeline

    cv.configure(uri=f"sqlite:///{home / 'db.sqlite'}", artifacts=str(home / "artifacts"))
    cv.search_runs()  # create the database outside the measurement
    training = load_pipeline(f"{ROOT / 'examples' / 'bikes' / 'pipeline.py'}:training")
    start = time.perf_counter()
    runs = training.sweep(order_by="metrics.rmse", executor=executor, **grid)
    seconds = time.perf_counter() - start
    failed = [r.id for r in runs if not r.ok]
    if failed:
        raise SystemExit(f"{executor}: runs failed: {failed}")
    return seconds, runs[0].metrics["rmse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 trials of 50 rounds")
    parser.add_argument("--skip", action="append", default=[], help="inprocess, process or ray")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    if args.quick:
        grid: dict[str, Any] = {"lr": [0.05, 0.1], "num_leaves": [15, 31], "rounds": 50}
    else:
        grid = {"lr": [0.03, 0.05, 0.1, 0.2], "num_leaves": [15, 31, 63], "rounds": 300}
    trials = len(grid["lr"]) * len(grid["num_leaves"])
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-sweep-"))
    os.environ["CONVEYOR_HOME"] = str(root / "home")
    results: dict[str, dict[str, float]] = {}
    try:
        for executor in ("inprocess", "process", "ray"):
            if executor in args.skip:
                continue
            if executor == "ray":
                try:
                    import ray

                    ray.init(include_dashboard=False, log_to_driver=False,
                             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}})
                except Exception as exc:
                    print(f"ray could not start: {exc}", file=sys.stderr)
                    continue
            seconds, best = sweep(executor, root / executor, grid)
            results[executor] = {"seconds": seconds, "best_rmse": best}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{trials} trials, {grid['rounds']} rounds each, cpus {os.cpu_count()}")
    base = results.get("inprocess", {}).get("seconds")
    for name, res in results.items():
        ratio = f"  {base / res['seconds']:.2f}x vs sequential" if base else ""
        print(f"{name:<10} {res['seconds']:8.2f} s  best rmse {res['best_rmse']:.2f}{ratio}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"trials": trials, "grid": grid, "results": results}, indent=2))


if __name__ == "__main__":
    main()
