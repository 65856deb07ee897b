"""Holdout data for evaluation and gates: frames, files, dataset-like objects; lineage links."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.registry import datasets


@dataclass(frozen=True)
class Snapshot:
    """A user's own dataset object: anything with to_pandas() is read through it."""

    frame: pd.DataFrame

    def to_pandas(self) -> pd.DataFrame:
        return self.frame


def test_frames_files_and_objects_load_the_same_rows(bikes: dict[str, Any], tmp_path: Path) -> None:
    holdout = bikes["holdout"]
    holdout.to_csv(tmp_path / "h.csv", index=False)
    holdout.to_parquet(tmp_path / "h.parquet", index=False)
    assert datasets.frame(holdout) is holdout
    for source in (str(tmp_path / "h.csv"), tmp_path / "h.parquet", (tmp_path / "h.parquet").as_uri(),
                   Snapshot(holdout)):
        loaded = datasets.frame(source)
        pd.testing.assert_frame_equal(loaded, holdout, check_dtype=False)


def test_bad_sources_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        datasets.frame(str(tmp_path / "missing.csv"), field="gate.dataset")
    assert info.value.field == "gate.dataset"
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(InvalidArgument, match="CSV or Parquet"):
        datasets.frame(str(tmp_path / "data.json"))
    with pytest.raises(InvalidArgument) as info:
        datasets.frame(42, field="data")
    assert info.value.field == "data"


def test_lineage_links_take_dataset_versions_and_refuse_other_things() -> None:
    @dataclass(frozen=True)
    class Version:
        id: str
        ref: str

    assert datasets.link(Version("f" * 32, "bikes@3"), "train") == ("f" * 32, {"ref": "bikes@3", "role": "train"})
    with pytest.raises(InvalidArgument) as info:
        datasets.link(pd.DataFrame({"a": [1]}), "valid")
    assert info.value.field == "datasets.valid"


def test_gates_and_lineage_read_versioned_datasets_by_reference(conveyor_home: Path, bikes: dict[str, Any]) -> None:
    """With the data service, "name@N" is a real dataset version: the gate scores on its rows."""
    import lightgbm as lgb

    import conveyor as cv
    from conveyor.core.errors import GateFailed

    cv.set_project("gates")
    holdout = cv.data.log(bikes["holdout"], name="bikes-holdout")
    train = cv.data.log(bikes["X"].assign(cnt=bikes["y"]), name="bikes-train")
    for trees in (40, 3):
        with cv.start_run():
            model = lgb.LGBMRegressor(n_estimators=trees, verbose=-1, random_state=0).fit(bikes["X"], bikes["y"])
            cv.log_model(model, name="bike-demand", input_example=bikes["X"].head(5), datasets={"train": train})
    cv.models.set_alias("bike-demand", "champion", version=1)
    gate = {"rules": ["rmse <= champion.rmse * 0.98"], "dataset": holdout.ref, "target": "cnt"}
    with pytest.raises(GateFailed) as info:  # 3 trees do not beat 40 on the versioned holdout
        cv.models.promote("bike-demand", version=2, to="champion", gate=gate)
    assert "bikes-holdout@1" in str(info.value.report)
    assert cv.models.get_version("bike-demand", 1).aliases == ("champion",)
    graph = cv.models.lineage("models:/bike-demand/2")
    assert any("bikes-train@1" in line for line in graph.chain())
    with pytest.raises(NotFound):
        cv.models.promote("bike-demand", version=2, to="champion", gate={**gate, "dataset": "bikes-holdout@9"})
