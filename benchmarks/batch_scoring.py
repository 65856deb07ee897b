"""Batch scoring, ``conveyor predict`` locally in chunks against ``--ray`` on local Ray, in one run.

The bike-sharing data (examples/data) is repeated to ``--rows`` rows and written as one
Parquet file of row groups of 250,000 rows; a LightGBM regressor is logged to a fresh
Conveyor home and both paths score the file into one Parquet file. Rows/s of each, and
that both outputs are identical. Ray starts once with ``--cpus`` CPUs before the measure
(its start-up is printed apart); on a 2-core machine Ray is not expected to win.

    .venv-bench/bin/python benchmarks/batch_scoring.py --rows 3000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine, scratch

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    info = machine()
    print(f"{info['date']}  {info['cpus']} CPUs ({info['cpu_model']})  load {info['load_average_1m']}")

    import lightgbm as lgb
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    with scratch("batch") as folder:
        os.environ["CONVEYOR_HOME"] = str(folder / "home")
        import conveyor as cv
        from conveyor.serving.batch import score_file
        from conveyor.serving.ray_batch import score_on_ray

        bikes = pd.read_csv(DATA)
        model = lgb.LGBMRegressor(n_estimators=100, verbose=-1, random_state=0).fit(bikes[FEATURES], bikes["cnt"])
        cv.set_project("bench")
        with cv.start_run():
            cv.log_model(model, name="bike-demand", input_example=bikes[FEATURES].head(5))
        cv.models.set_alias("bike-demand", "champion", version=1)
        cv.flush()
        repeats = -(-args.rows // len(bikes))
        table = pa.Table.from_pandas(pd.concat([bikes[FEATURES]] * repeats).head(args.rows), preserve_index=False)
        src = folder / "in.parquet"
        pq.write_table(table, src, row_group_size=250_000)

        registry = cv.models.registry("bench")
        mv = registry.resolve("models:/bike-demand@champion")
        results: dict[str, Any] = {"machine": info, "command": " ".join(sys.argv), "rows": args.rows}

        started = time.perf_counter()
        loaded = registry.load(mv)
        score_file(loaded, src, folder / "local.parquet")
        results["local_s"] = time.perf_counter() - started

        import ray

        started = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}})
        results["ray_start_s"] = time.perf_counter() - started
        started = time.perf_counter()
        score_on_ray("local", registry.content, mv.package_digest, src, folder / "ray.parquet",
                     metadata={"uri": mv.uri})
        results["ray_s"] = time.perf_counter() - started
        ray.shutdown()
        same = pq.read_table(folder / "local.parquet").equals(pq.read_table(folder / "ray.parquet"))
        results["identical"] = same

    rows = args.rows
    print(f"{rows:,} rows, LightGBM (100 trees), one Parquet file of {-(-rows // 250_000)} row groups")
    print(f"  local chunked   {results['local_s']:7.2f} s  {rows / results['local_s']:>12,.0f} rows/s")
    print(f"  Ray ({args.cpus} CPUs)    {results['ray_s']:7.2f} s  {rows / results['ray_s']:>12,.0f} rows/s"
          f"   (+ {results['ray_start_s']:.1f} s to start Ray)")
    print(f"  Ray / local     {results['local_s'] / results['ray_s']:.2f}x   outputs identical: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
