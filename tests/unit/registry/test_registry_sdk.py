"""The registry as a user drives it through ``cv``: log, load, aliases, promotion gates, rollback, lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import conveyor as cv
from conveyor.core.errors import (
    ArtifactCorrupted,
    GateFailed,
    InvalidArgument,
    InvalidState,
    NotFound,
)
from conveyor.stores.artifacts.cas import blob_key
from conveyor.stores.metadata.sql.audit import iter_events

pytestmark = pytest.mark.usefixtures("conveyor_home")


def fit_lgbm(bikes: dict[str, Any], n: int, leaves: int = 15) -> Any:
    import lightgbm as lgb

    return lgb.LGBMRegressor(n_estimators=n, num_leaves=leaves, verbose=-1, random_state=0).fit(
        bikes["X"], bikes["y"])


def audit_actions() -> list[str]:
    with cv.client().store.engine.connect() as conn:  # type: ignore[attr-defined]
        return [e.action for e in iter_events(conn)]


def test_the_issue_example(bikes: dict[str, Any]) -> None:
    cv.set_project("bikes")
    train_ds = cv.data.log(bikes["X"].assign(cnt=bikes["y"]), name="bikes-train")
    cv.data.log(bikes["holdout"].iloc[:100], name="bikes-valid")
    valid_ds = cv.data.log(bikes["holdout"], name="bikes-valid")  # bikes-valid@2
    with cv.start_run() as run:
        model = fit_lgbm(bikes, 30)
        mv = cv.log_model(model, name="bike-demand", input_example=bikes["X"].head(5),
                          datasets={"train": train_ds, "valid": "bikes-valid@2"})
    assert (mv.version, mv.uri, mv.run_id) == (1, "models:/bike-demand/1", run.id)
    assert mv.flavour == "lightgbm" and mv.signature is not None
    loaded = cv.load_model("models:/bike-demand/1")
    np.testing.assert_allclose(loaded.predict(bikes["X"]), model.predict(bikes["X"]))
    assert loaded.signature is not None and loaded.signature.inputs.names == list(bikes["X"].columns)
    assert loaded.metadata["run_id"] == run.id and loaded.metadata["flavour"] == "lightgbm"
    cv.models.set_alias("bike-demand", "champion", version=1)
    assert cv.load_model("models:/bike-demand@champion").metadata["version"] == 1
    assert cv.load_model("models:/bike-demand/latest").metadata["version"] == 1

    graph = cv.models.lineage("models:/bike-demand/1")
    kinds = {n["kind"] for n in graph.nodes}
    assert {"model_version", "run", "dataset_version", "environment"} <= kinds
    relations = {(e["src"], e["relation"]) for e in graph.edges}
    assert (f"run:{run.id}", "produced") in relations
    assert (f"dataset_version:{train_ds.id}", "train") in relations
    assert (f"dataset_version:{valid_ds.id}", "valid") in relations
    assert any("bikes-train@1" in line and "--train-->" in line for line in graph.chain())


def test_promotion_gate_refuses_a_worse_model_with_a_report_and_changes_nothing(bikes: dict[str, Any]) -> None:
    cv.set_project("bikes")
    with cv.start_run():
        cv.log_model(fit_lgbm(bikes, 60, 31), name="bike-demand", input_example=bikes["X"].head(5))
        cv.log_model(fit_lgbm(bikes, 3, 4), name="bike-demand", input_example=bikes["X"].head(5))
    cv.models.promote("bike-demand", version=1, to="champion")  # no champion yet: nothing to beat
    gate = {"rules": ["rmse <= champion.rmse * 0.98", "r2 > 0.1"], "dataset": bikes["holdout"], "target": "cnt",
            "slices": [{"by": "season", "metric": "rmse", "max_worse": 0.05}]}
    before = audit_actions()
    with pytest.raises(GateFailed) as info:
        cv.models.promote("bike-demand", version=2, to="champion", gate=gate)
    report = info.value.report
    rules = {c["rule"]: c for c in report["checks"]}
    worse = rules["rmse <= champion.rmse * 0.98"]
    assert worse["passed"] is False and worse["value"] > worse["threshold"]
    assert rules["no season slice rmse worse than champion by more than 5.0%"]["passed"] is False
    assert rules["signature compatible with the champion's"]["passed"] is True
    assert "[FAIL] rmse <= champion.rmse * 0.98" in str(info.value)
    assert info.value.exit_code == 8
    assert cv.models.get_model("bike-demand").aliases == {"champion": 1}
    assert audit_actions()[len(before):] == ["gate.failed"]  # recorded, and nothing else changed
    recorded = cv.models.evaluations("bike-demand", 2)
    assert len(recorded) == 1 and recorded[0].passed is False and recorded[0].report["checks"]

    # the better model passes the same gate the other way round
    cv.models.set_alias("bike-demand", "champion", version=2)
    evaluation = cv.models.promote("bike-demand", version=1, to="champion", gate=gate)
    assert evaluation.passed and cv.models.get_model("bike-demand").aliases == {"champion": 1}


def test_forced_promotion_needs_a_reason_and_is_audited(bikes: dict[str, Any]) -> None:
    cv.set_project("bikes")
    for n in (60, 3):
        cv.log_model(fit_lgbm(bikes, n), name="bike-demand", input_example=bikes["X"].head(5))
    cv.models.set_alias("bike-demand", "champion", version=1)
    gate = cv.Gate(rules=["rmse <= champion.rmse"], dataset=bikes["holdout"], target="cnt")
    with pytest.raises(InvalidArgument) as info:
        cv.models.promote("bike-demand", version=2, to="champion", gate=gate, force=True)
    assert info.value.field == "reason"
    evaluation = cv.models.promote("bike-demand", version=2, to="champion", gate=gate, force=True,
                                   reason="incident 42: v1 leaks a feature")
    assert evaluation.forced and not evaluation.passed
    assert cv.models.get_model("bike-demand").aliases == {"champion": 2}
    assert audit_actions()[-2:] == ["gate.forced", "alias.promote"]
    rolled = cv.models.rollback("bike-demand", alias="champion")
    assert rolled.version == 1 and audit_actions()[-1] == "alias.rollback"


def test_declared_gate_from_a_policy_file_with_latency(bikes: dict[str, Any], tmp_path: Path) -> None:
    cv.set_project("bikes")
    holdout = tmp_path / "holdout.parquet"
    bikes["holdout"].to_parquet(holdout)
    policy = tmp_path / "gate.yaml"
    policy.write_text(f"gate:\n  rules: ['mae <= champion.mae']\n  dataset: {holdout}\n  target: cnt\n"
                      "  latency_p95_ms: 10000\n")
    for n in (10, 40):
        cv.log_model(fit_lgbm(bikes, n), name="bike-demand", input_example=bikes["X"].head(5))
    cv.models.set_gate("bike-demand", str(policy))
    cv.models.set_alias("bike-demand", "champion", version=1)
    evaluation = cv.models.promote("bike-demand", version=2)
    checks = {c["kind"]: c for c in evaluation.report["checks"]}
    assert evaluation.passed and evaluation.report["gate"] == "declared"
    assert checks["latency"]["value"] > 0 and checks["metric"]["value"] <= checks["metric"]["threshold"]
    assert evaluation.report["dataset"]["rows"] == len(bikes["holdout"])


def test_an_incompatible_signature_is_refused(bikes: dict[str, Any]) -> None:
    cv.set_project("bikes")
    cv.log_model(fit_lgbm(bikes, 10), name="bike-demand", input_example=bikes["X"].head(5))
    import lightgbm as lgb

    X = bikes["X"].assign(rain=bikes["X"]["hum"] * 2)
    other = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, bikes["y"])
    cv.log_model(other, name="bike-demand", input_example=X.head(5))
    cv.models.set_alias("bike-demand", "champion", version=1)
    with pytest.raises(GateFailed, match="input column 'rain' is not among the champion's inputs"):
        cv.models.promote("bike-demand", version=2)
    assert cv.models.get_model("bike-demand").aliases == {"champion": 1}


def test_bad_input_is_refused_and_changes_nothing(bikes: dict[str, Any]) -> None:
    cv.set_project("bikes")
    mv = cv.log_model(fit_lgbm(bikes, 5), name="bike-demand", input_example=bikes["X"].head(5))
    cv.log_model(fit_lgbm(bikes, 6), name="bike-demand", input_example=bikes["X"].head(5))
    for uri in ("bike-demand/1", "models:/bike-demand/one", "models:/"):
        with pytest.raises(InvalidArgument) as info:
            cv.load_model(uri)
        assert info.value.field == "uri"
    with pytest.raises(NotFound):
        cv.load_model("models:/bike-demand@champion")
    with pytest.raises(NotFound):
        cv.load_model("models:/nope/1")
    with pytest.raises(InvalidArgument, match="unexpected character") as info:
        cv.models.promote("bike-demand", 2, gate={"rules": ["rmse <= __import__('os')"], "dataset": bikes["holdout"],
                                                  "target": "cnt"})
    assert info.value.field == "gate.rules[0]"
    with pytest.raises(InvalidArgument, match="unknown gate key"):
        cv.models.promote("bike-demand", 2, gate={"rulez": []})
    cv.models.archive("bike-demand", 2)
    with pytest.raises(InvalidState, match="archived"):
        cv.models.set_alias("bike-demand", "champion", 2)
    with pytest.raises(InvalidState, match="archived"):
        cv.models.promote("bike-demand", 2)
    assert cv.models.get_model("bike-demand").aliases == {}
    # a tampered package is refused by load_model
    content = cv.client().content
    digest = cv.models.get_version("bike-demand", 1).package_digest
    from conveyor.registry.package import read_manifest

    manifest, _ = read_manifest(content, digest)
    stored = content.backend.local_path(blob_key(manifest["files"]["model/model.lgb.txt"]))
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes() + b"\n")
    with pytest.raises(ArtifactCorrupted, match="models:/bike-demand/1 was not loaded"):
        cv.load_model(mv.uri)


def test_evaluate_reports_metrics_overall_and_per_slice_and_logs_them(adult: dict[str, Any]) -> None:
    import lightgbm as lgb

    cv.set_project("census")
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1, random_state=0).fit(adult["X"], adult["y"])
    with cv.start_run() as run:
        result = cv.evaluate(model, adult["holdout"], target="label", task="classification", slices=["sex"])
    m = result.metrics
    assert set(m) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "ece"}
    assert 0.7 < m["accuracy"] <= 1 and 0.5 < m["roc_auc"] <= 1 and 0 <= m["ece"] < 0.2
    assert set(result.slices["sex"]) == {"Female", "Male"}
    logged = cv.get_run(run.id).metrics
    assert logged["accuracy"] == pytest.approx(m["accuracy"])
    assert logged["slice/sex/Male/f1"] == pytest.approx(result.slices["sex"]["Male"]["f1"])


def test_evaluate_regression_metrics(bikes: dict[str, Any]) -> None:
    model = fit_lgbm(bikes, 30)
    result = cv.evaluate(model, bikes["holdout"], target="cnt", slices=["season"])
    m = result.metrics
    err = model.predict(bikes["holdout"][bikes["X"].columns]) - bikes["holdout"]["cnt"]
    assert m["rmse"] == pytest.approx(float(np.sqrt((err**2).mean())))
    assert m["mae"] == pytest.approx(float(err.abs().mean()))
    assert 0.5 < m["r2"] < 1 and m["mape"] > 0
    assert sorted(result.slices["season"]) == ["1", "2", "3", "4"]


def test_lineage_includes_the_code_commit_and_environment_of_the_run(bikes: dict[str, Any]) -> None:
    cv.set_project("bikes")
    env = {"python": "3.11.9", "packages_digest": "blake3:" + "c" * 64, "packages_count": 120,
           "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "branch": "main", "dirty": False}}
    run = cv.client().store.create_run(project="bikes", name="from-ci", env=env)
    mv = cv.log_model(fit_lgbm(bikes, 5), name="bike-demand", input_example=bikes["X"].head(5), run_id=run.id)
    assert mv.info["code"]["commit"] == env["git"]["commit"]
    graph = cv.models.lineage(mv.uri)
    chain = graph.chain()
    assert f"commit 0123456789ab --code--> run {run.id}" in chain
    assert f"environment python 3.11.9, 120 packages --environment--> run {run.id}" in chain
    assert f"run {run.id} --produced--> model_version {mv.uri}" in chain


def test_a_registered_classifier_scores_like_the_object_it_was_logged_from(adult: dict[str, Any]) -> None:
    import lightgbm as lgb

    cv.set_project("census")
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1, random_state=0).fit(adult["X"], adult["y"])
    mv = cv.log_model(model, name="income", input_example=adult["X"].head(5))
    direct = cv.evaluate(model, adult["holdout"], target="label", task="classification", slices=["sex"])
    by_uri = cv.evaluate(mv.uri, adult["holdout"], target="label", task="classification", slices=["sex"])
    assert by_uri.metrics == pytest.approx(direct.metrics)
    assert by_uri.slices["sex"]["Female"] == pytest.approx(direct.slices["sex"]["Female"])
    with pytest.raises(InvalidArgument) as info:
        cv.evaluate(model, adult["holdout"], target="income_label", task="classification")
    assert info.value.field == "target"


def test_descriptions_and_tags_of_models_and_versions(bikes: dict[str, Any]) -> None:
    cv.set_project("bikes")
    cv.log_model(fit_lgbm(bikes, 5), name="bike-demand", input_example=bikes["X"].head(5),
                 description="first try", tags={"team": "forecast"})
    model = cv.models.update_model("bike-demand", description="hourly demand", tags={"owner": "ops"})
    assert model.description == "hourly demand" and model.tags == {"owner": "ops"}
    version = cv.models.update_version("bike-demand", 1, tags={"validated": "yes"})
    assert version.description == "first try" and version.tags == {"team": "forecast", "validated": "yes"}
    assert [m.name for m in cv.models.search("demand")] == ["bike-demand"]
    assert [m.name for m in cv.models.search(tag=("owner", "ops"))] == ["bike-demand"]
    assert list(cv.models.search("nothing-like-it")) == []
    assert audit_actions()[-2:] == ["model.update", "model_version.update"]


def test_a_classification_gate_with_auc_and_per_sex_slices(adult: dict[str, Any]) -> None:
    import lightgbm as lgb

    cv.set_project("census")
    strong = lgb.LGBMClassifier(n_estimators=40, verbose=-1, random_state=0).fit(adult["X"], adult["y"])
    weak = lgb.LGBMClassifier(n_estimators=1, num_leaves=2, verbose=-1, random_state=0).fit(
        adult["X"][["age"]].assign(**{c: 0 for c in adult["X"].columns if c != "age"}), adult["y"])
    for model in (strong, weak):
        cv.log_model(model, name="income", input_example=adult["X"].head(5))
    cv.models.set_alias("income", "champion", 1)
    gate = {"rules": ["auc >= champion.auc - 0.002", "log_loss <= champion.log_loss * 1.1"],
            "dataset": adult["holdout"], "target": "label", "task": "classification",
            "slices": [{"by": "sex", "metric": "auc", "max_worse": 0.01}]}
    with pytest.raises(GateFailed) as info:
        cv.models.promote("income", 2, gate=gate)
    checks = {c["rule"]: c for c in info.value.report["checks"]}
    auc = checks["auc >= champion.auc - 0.002"]
    assert auc["passed"] is False and auc["threshold"] == pytest.approx(
        info.value.report["metrics"]["champion"]["metrics"]["roc_auc"] - 0.002)
    sliced = checks["no sex slice roc_auc worse than champion by more than 1.0%"]
    assert sliced["passed"] is False and "sex=Female" in sliced["detail"] and "sex=Male" in sliced["detail"]
    assert cv.models.get_model("income").aliases == {"champion": 1}
