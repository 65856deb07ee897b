"""Model registry: log + load of a big LightGBM model against MLflow, dedup, and listing.

Measures, on local disk with SQLite metadata for both tools:

1. ``cv.log_model`` + ``cv.load_model`` of one LightGBM model (default ~50 MB of model
   text: 2,100 trees of 255 leaves on the bike-sharing data) against
   ``mlflow.lightgbm.log_model`` + ``mlflow.lightgbm.load_model`` on the same object.
   Each tool logs inside a run; the load is from the registry URI / the run's model URI.
   Predictions of both loaded models are checked equal to the original's.
2. Logging the identical model a second time: the bytes each tool adds to its artifact
   folder (Conveyor stores identical files once; MLflow copies them again).
3. ``cv.models.list_models`` first page (100) with ``--models`` x ``--versions``
   registered versions (default 1,000 x 20): median of five after a warm-up. Goal: < 50 ms.

    python benchmarks/registry_roundtrip.py            # the full size (12 to 17 min on 2 loaded cores)
    python benchmarks/registry_roundtrip.py --quick    # ~5 MB model, 100 x 20 versions
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings
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

DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def train(trees: int, leaves: int) -> tuple[Any, Any]:
    import lightgbm as lgb
    import pandas as pd

    frame = pd.read_csv(DATA)
    model = lgb.LGBMRegressor(n_estimators=trees, num_leaves=leaves, min_child_samples=2, learning_rate=0.02,
                              subsample=0.8, subsample_freq=1, verbose=-1, random_state=0)
    return model.fit(frame[FEATURES], frame["cnt"]), frame[FEATURES]


def conveyor_roundtrip(model: Any, X: Any, root: Path) -> dict[str, float]:
    import numpy as np

    import conveyor as cv

    artifacts = root / "cv-artifacts"
    cv.configure(uri=f"sqlite:///{root / 'cv.db'}", artifacts=str(artifacts), project="bench")
    with cv.start_run():
        with Clock() as log:
            mv = cv.log_model(model, name="big-lgbm", input_example=X.head(5))
        first = folder_bytes(artifacts)
        with Clock() as log_again:
            cv.log_model(model, name="big-lgbm", input_example=X.head(5))
        added = folder_bytes(artifacts) - first
    with Clock() as load:
        loaded = cv.load_model(mv.uri)
    np.testing.assert_allclose(loaded.predict(X.head(1000)), model.predict(X.head(1000)))
    return {"log": log.seconds, "load": load.seconds, "log_again": log_again.seconds, "stored": first,
            "added_by_second_log": added, "model_bytes": mv.info["size"]}


def mlflow_roundtrip(model: Any, X: Any, root: Path, requirements: list[str] | None) -> dict[str, float]:
    """MLflow as a user calls it; ``requirements`` given skips its requirement inference."""
    import numpy as np

    mlflow = quiet_mlflow()
    # MLflow's schema hints (integer columns) are advice to its users, not results.
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
    lightgbm_flavor = mlflow.lightgbm
    tag = "given" if requirements else "inferred"
    mlflow.set_tracking_uri(f"sqlite:///{root / f'mlflow-{tag}.db'}")
    artifacts = root / f"mlflow-artifacts-{tag}"
    experiment = mlflow.create_experiment("bench", artifact_location=artifacts.as_uri())
    kwargs = {"input_example": X.head(5), "pip_requirements": requirements}
    with mlflow.start_run(experiment_id=experiment):
        with Clock() as log:
            info = lightgbm_flavor.log_model(model, name="model", **kwargs)
        first = folder_bytes(artifacts)
        with Clock() as log_again:
            lightgbm_flavor.log_model(model, name="model-again", **kwargs)
        added = folder_bytes(artifacts) - first
    with Clock() as load:
        loaded = lightgbm_flavor.load_model(info.model_uri)
    np.testing.assert_allclose(loaded.predict(X.head(1000)), model.predict(X.head(1000)))
    return {"log": log.seconds, "load": load.seconds, "log_again": log_again.seconds, "stored": first,
            "added_by_second_log": added}


def listing(models: int, versions: int, root: Path, repeats: int = 5) -> dict[str, float]:
    from conveyor.stores.metadata.sql.store import SqlMetadataStore

    store = SqlMetadataStore(f"sqlite:///{root / 'listing.db'}")
    digest = "blake3:" + "0" * 64
    with Clock() as populate:
        for m in range(models):
            for _ in range(versions):
                store.registry.create_version("bench", f"model-{m:05d}", flavour="lightgbm", format="native",
                                              package_digest=digest, signature=None, info={})
    store.registry.list_models("bench", max_results=100)  # warm-up
    times = []
    for _ in range(repeats):
        with Clock() as c:
            page = store.registry.list_models("bench", max_results=100)
        times.append(c.seconds)
    assert len(page) == min(100, models) and page[0].latest_version == versions
    store.close()
    return {"first_page_ms": statistics.median(times) * 1000, "populate_s": populate.seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~5 MB model and 100 x 20 versions")
    parser.add_argument("--trees", type=int, default=2100)
    parser.add_argument("--leaves", type=int, default=255)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--no-mlflow", action="store_true", help="measure Conveyor only")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.trees, args.models = 150, 100
    info = machine()
    print_machine(info)
    model, X = train(args.trees, args.leaves)
    with scratch("registry", root=os.environ.get("TMPDIR")) as root:
        cv_result = conveyor_roundtrip(model, X, root)
        ml_result = None if args.no_mlflow else mlflow_roundtrip(model, X, root, None)
        ml_given = None if args.no_mlflow else mlflow_roundtrip(model, X, root, ["lightgbm", "scikit-learn"])
        listed = listing(args.models, args.versions, root)
    mb = cv_result["model_bytes"] / 1e6
    print(f"model: {args.trees} trees x {args.leaves} leaves, package {mb:.1f} MB")

    def ml(key: str) -> float | None:
        return None if ml_result is None else ml_result[key]

    roundtrip_cv = cv_result["log"] + cv_result["load"]
    roundtrip_ml = None if ml_result is None else ml_result["log"] + ml_result["load"]
    rows = [
        Row("log_model", "s", cv_result["log"], ml("log"), False, "", None),
        Row("load_model", "s", cv_result["load"], ml("load"), False, "", None),
        Row("log + load round trip", "s", roundtrip_cv, roundtrip_ml, False, "faster than MLflow",
            None if roundtrip_ml is None else roundtrip_cv < roundtrip_ml),
        Row("log_model, MLflow given pip_requirements", "s", cv_result["log"],
            None if ml_given is None else ml_given["log"], False, "", None),
        Row("round trip, MLflow given pip_requirements", "s", roundtrip_cv,
            None if ml_given is None else ml_given["log"] + ml_given["load"], False, "faster than MLflow",
            None if ml_given is None else roundtrip_cv < ml_given["log"] + ml_given["load"]),
        Row("log the same model again", "s", cv_result["log_again"], ml("log_again"), False, "", None),
        Row("bytes added by the second log", "MB", cv_result["added_by_second_log"] / 1e6,
            None if ml_result is None else ml_result["added_by_second_log"] / 1e6, False,
            "no second upload", cv_result["added_by_second_log"] < 0.01 * cv_result["stored"]),
        Row(f"list_models first page ({args.models} x {args.versions})", "ms", listed["first_page_ms"], None,
            False, "< 50 ms", listed["first_page_ms"] < 50),
    ]
    print_table(rows)
    if args.json:
        dump_json(args.json, [Path(sys.executable).name, *sys.argv], info, rows,
                  {"model_mb": mb, "trees": args.trees, "leaves": args.leaves,
                   "listing_populate_s": listed["populate_s"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
