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
