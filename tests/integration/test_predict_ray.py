"""``conveyor predict --ray``: batch scoring on a real local Ray instance, against the local chunked path."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import conveyor as cv
from conveyor.cli.main import cli
from conveyor.testing.ray import ray_local  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]
MODEL = "models:/bike-demand@champion"


@pytest.fixture
def champion(conveyor_home: Path, ray_local: Any) -> tuple[Any, pd.DataFrame]:  # noqa: F811
    import lightgbm as lgb

    bikes = pd.read_csv(DATA)
    cv.set_project("ray-predict")
    model = lgb.LGBMRegressor(n_estimators=20, verbose=-1, random_state=0).fit(bikes[FEATURES], bikes["cnt"])
    with cv.start_run():
        cv.log_model(model, name="bike-demand", input_example=bikes[FEATURES].head(5))
    cv.models.set_alias("bike-demand", "champion", version=1)
    cv.flush()
    return model, bikes


def predict(*args: str) -> Any:
    return CliRunner().invoke(cli, ["predict", MODEL, "--project", "ray-predict", *args])


def test_ray_scores_a_folder_row_for_row_like_the_local_path(champion: tuple[Any, pd.DataFrame],
                                                             tmp_path: Path) -> None:
    model, bikes = champion
    src = tmp_path / "in"
    src.mkdir()
    for i, start in enumerate(range(0, len(bikes), 4500)):
        bikes[FEATURES].iloc[start:start + 4500].to_parquet(src / f"part-{i}.parquet", index=False)
    one = tmp_path / "all.parquet"
    bikes[FEATURES].to_parquet(one, index=False)

    local = predict("--input", str(one), "--output", str(tmp_path / "local.parquet"), "--chunk-rows", "3000")
    assert local.exit_code == 0, local.output
    on_file = predict("--input", str(src), "--output", str(tmp_path / "ray.parquet"), "--chunk-rows", "3000",
                      "--ray")
    assert on_file.exit_code == 0, on_file.output
    assert f"{len(bikes):,} rows scored on Ray" in on_file.output
    on_folder = predict("--input", str(src), "--output", str(tmp_path / "ray-out"), "--chunk-rows", "3000",
                        "--ray")
    assert on_folder.exit_code == 0, on_folder.output

    expected = pd.read_parquet(tmp_path / "local.parquet")
    assert list(expected.columns) == [*FEATURES, "prediction"]
    assert np.allclose(expected["prediction"], model.predict(bikes[FEATURES]))
    single = pd.read_parquet(tmp_path / "ray.parquet")
    pd.testing.assert_frame_equal(single, expected)  # same columns, dtypes, order and values
    blocks = sorted((tmp_path / "ray-out").glob("*.parquet"))
    assert [b.name for b in blocks] == [f"part-{i:05d}.parquet" for i in range(4)]  # one per row group
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray-out"), expected)
    assert not list(tmp_path.glob(".*partial"))


def test_a_block_that_misses_a_column_fails_the_command_and_writes_nothing(
        champion: tuple[Any, pd.DataFrame], tmp_path: Path) -> None:
    _, bikes = champion
    src = tmp_path / "in"
    src.mkdir()
    bikes[FEATURES].head(2000).to_parquet(src / "a.parquet", index=False)
    bikes[FEATURES].iloc[2000:4000].drop(columns=["temp"]).to_parquet(src / "b.parquet", index=False)
    for out in ("bad.parquet", "bad-folder"):
        result = predict("--input", str(src), "--output", str(tmp_path / out), "--chunk-rows", "500", "--ray")
        assert result.exit_code == 2, result.output
        assert "temp" in result.output and "Traceback" not in result.output
        assert not (tmp_path / out).exists()
    assert not list(tmp_path.glob(".*partial"))


def test_a_tampered_package_is_refused_on_the_workers(champion: tuple[Any, pd.DataFrame], tmp_path: Path) -> None:
    from conveyor.registry.package import read_manifest
    from conveyor.stores.artifacts.cas import blob_key

    _, bikes = champion
    src = tmp_path / "in.parquet"
    bikes[FEATURES].head(1000).to_parquet(src, index=False)
    registry = cv.models.registry("ray-predict")
    _, files = read_manifest(registry.content, registry.resolve(MODEL).package_digest)
    for f in files:
        path = registry.content.backend.local_path(blob_key(f.digest))
        if not f.path.endswith(".json") and path is not None and path.exists():
            path.chmod(0o644)
            path.write_bytes(b"tampered" + path.read_bytes()[8:])
    result = predict("--input", str(src), "--output", str(tmp_path / "out.parquet"), "--ray")
    assert result.exit_code == 4, result.output
    assert "was not loaded" in result.output
    assert not (tmp_path / "out.parquet").exists()


def test_bad_ray_arguments_are_named(champion: tuple[Any, pd.DataFrame], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, bikes = champion
    src = tmp_path / "in.parquet"
    bikes[FEATURES].head(100).to_parquet(src, index=False)
    result = predict("--input", str(src), "--output", str(tmp_path / "o.parquet"), "--ray", "ray://127.0.0.1:1")
    assert result.exit_code == 7 and "cannot reach the Ray cluster" in result.output
    result = predict("--input", str(tmp_path / "nothing"), "--output", str(tmp_path / "o.parquet"), "--ray")
    assert result.exit_code == 3 and "nothing" in result.output
    (tmp_path / "taken").mkdir()
    result = predict("--input", str(src), "--output", str(tmp_path / "taken"), "--ray")
    assert result.exit_code == 2 and "exists" in result.output
    result = predict("--input", str(src), "--output", str(tmp_path / "o.parquet"), "--ray-actors", "2")
    assert result.exit_code == 2 and "--ray" in result.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    result = predict("--input", str(src), "--output", str(tmp_path / "o.parquet"), "--ray")
    assert result.exit_code == 6 and "pip install 'conveyor-mlops[ray]'" in result.output
    assert not (tmp_path / "o.parquet").exists()
