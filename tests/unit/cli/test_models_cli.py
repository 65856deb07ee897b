"""``conveyor models``: listings, promotion through a gate file, rollback and lineage from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result

import conveyor as cv
from conveyor.cli.main import cli

DATA = Path(__file__).resolve().parents[3] / "examples" / "data"
FEATURES = ["season", "hr", "workingday", "weathersit", "temp", "hum"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="conveyor")


@pytest.fixture
def registered(conveyor_home: Path, tmp_path: Path) -> dict[str, Any]:
    import lightgbm as lgb

    frame = pd.read_csv(DATA / "bike_sharing_hourly.csv").sample(n=2000, random_state=3)
    train, holdout = frame.iloc[:1500], frame.iloc[1500:]
    holdout_path = tmp_path / "holdout.csv"
    holdout[[*FEATURES, "cnt"]].to_csv(holdout_path, index=False)
    cv.set_project("bikes")
    train_ds = cv.data.log(train[[*FEATURES, "cnt"]], name="bikes-train")  # -> bikes-train@1
    with cv.start_run() as run:
        for n in (40, 2):
            model = lgb.LGBMRegressor(n_estimators=n, verbose=-1, random_state=0).fit(train[FEATURES], train["cnt"])
            cv.log_model(model, name="bike-demand", input_example=train[FEATURES].head(5),
                         datasets={"train": train_ds if n == 40 else "bikes-train@1"})
    cv.models.set_alias("bike-demand", "champion", 1)
    gate = tmp_path / "gate.toml"
    gate.write_text(f'rules = ["rmse <= champion.rmse * 0.98"]\ndataset = "{holdout_path}"\ntarget = "cnt"\n')
    return {"run": run.id, "gate": str(gate)}


def test_list_show_and_versions(registered: dict[str, Any]) -> None:
    result = invoke("models", "list")
    assert result.exit_code == 0, result.output
    assert "bike-demand" in result.output and "champion=v1" in result.output
    data = json.loads(invoke("models", "list", "--json").output)
    assert [m["name"] for m in data["models"]] == ["bike-demand"] and data["next_page_token"] is None
    shown = invoke("models", "show", "bike-demand")
    assert shown.exit_code == 0 and "latest       2" in shown.output
    versions = json.loads(invoke("models", "versions", "bike-demand", "--json").output)["versions"]
    assert [v["version"] for v in versions] == [2, 1] and versions[1]["aliases"] == ["champion"]
    assert versions[0]["run_id"] == registered["run"]


def test_promote_refused_by_the_gate_then_forced_then_rolled_back(registered: dict[str, Any]) -> None:
    refused = invoke("models", "promote", "bike-demand", "2", "--to", "champion", "--gate", registered["gate"])
    assert refused.exit_code == 8
    assert "refused by its gate" in refused.output and "[FAIL] rmse <= champion.rmse * 0.98" in refused.output
    assert cv.models.get_model("bike-demand").aliases == {"champion": 1}
    no_reason = invoke("models", "promote", "bike-demand", "2", "--gate", registered["gate"], "--force")
    assert no_reason.exit_code == 2 and "needs a reason" in no_reason.output
    forced = invoke("models", "promote", "bike-demand", "2", "--gate", registered["gate"], "--force",
                    "--reason", "hotfix for incident 7")
    assert forced.exit_code == 0 and "FORCED" in forced.output
    assert cv.models.get_model("bike-demand").aliases == {"champion": 2}
    back = invoke("models", "rollback", "bike-demand", "--alias", "champion")
    assert back.exit_code == 0 and "version 1" in back.output
    assert cv.models.get_model("bike-demand").aliases == {"champion": 1}


def test_lineage_prints_the_chain(registered: dict[str, Any]) -> None:
    result = invoke("models", "lineage", "models:/bike-demand/1")
    assert result.exit_code == 0, result.output
    assert f"run {registered['run']} --produced--> model_version models:/bike-demand/1" in result.output
    assert "dataset_version bikes-train@1 --train--> model_version models:/bike-demand/1" in result.output
    graph = json.loads(invoke("models", "lineage", "models:/bike-demand/1", "--json").output)
    assert {n["kind"] for n in graph["nodes"]} >= {"run", "dataset_version", "model_version"}


def test_errors_are_one_line_with_the_exit_code(registered: dict[str, Any]) -> None:
    missing = invoke("models", "show", "nope")
    assert missing.exit_code == 3 and missing.output.startswith("error: model 'nope' does not exist")
    bad = invoke("models", "lineage", "bike-demand/1")
    assert bad.exit_code == 2 and "not a model URI" in bad.output
