"""Parsing automations: every mistake is refused when stored, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor.automation import triggers
from conveyor.automation.spec import AutomationSpec, Trigger, load_file, parse_live_rule
from conveyor.core.errors import InvalidArgument

FULL = {
    "name": "bike-demand-retrain",
    "pipeline": "examples/bikes/pipeline.py:release",
    "data": {"dataset": "bikes-raw", "param": "path"},
    "on": ["schedule:0 3 * * *", "new_data:bikes-raw", "drift:bike-demand > 0.3",
           "performance:bike-demand rmse > 1.2 * baseline", "manual"],
    "promote": {"model": "bike-demand", "alias": "champion",
                "gate": {"rules": ["rmse <= champion.rmse * 1.02"], "dataset": "bikes-holdout@1", "target": "cnt"},
                "canary": {"weight": 0.1, "duration": "1h"}},
    "rollback": {"when": "rmse > 1.1 * previous or error_rate > 0.01", "within": "24h"},
    "cooldown": "30m",
}


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def test_the_issue_example_parses_and_round_trips(tmp_path: Path) -> None:
    spec = AutomationSpec.from_dict(FULL, base=tmp_path)
    assert [t.kind for t in spec.triggers] == ["schedule", "new_data", "drift", "performance", "manual"]
    drift = spec.triggers[2]
    assert (drift.monitor, drift.threshold) == ("bike-demand", 0.3)
    assert spec.triggers[3].rule == "rmse > 1.2 * baseline"
    assert spec.promote is not None and spec.promote.canary is not None
    assert spec.promote.canary.duration_ms == 3_600_000 and spec.promote.canary.weight == 0.1
    assert spec.rollback is not None and spec.rollback.within_ms == 86_400_000
    assert spec.rollback.metrics == ["error_rate", "rmse"]
    assert spec.cooldown_ms == 1_800_000
    # the pipeline path is made absolute against the file's folder: the agent may run elsewhere
    assert spec.pipeline == f"{tmp_path / 'examples/bikes/pipeline.py'}:release"
    again = AutomationSpec.from_dict(spec.to_dict())
    assert again == spec


def test_previous_means_the_replaced_model() -> None:
    clauses = parse_live_rule("rmse > 1.1 * previous or error_rate > 0.01", "rollback.when")
    assert [c.rule for c in clauses] == ["rmse > 1.1 * champion.rmse", "error_rate > 0.01"]
    assert [c.metric for c in clauses] == ["rmse", "error_rate"]
    assert parse_live_rule("mae > previous.mae + 5", "x")[0].rule == "mae > champion.mae + 5"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"on": ["schedule:0 3 * *"]}, "automation.on[0]", "5-field cron"),
        ({"on": ["schedule:61 * * * *"]}, "automation.on[0]", "cron"),
        ({"on": ["drift:bike-demand > 1.5"]}, "automation.on[0]", "(0, 1]"),
        ({"on": ["performance:bike-demand auc > 0.9"]}, "automation.on[0]", "one live metric"),
        ({"on": ["wednesdays"]}, "automation.on[0]", "unknown trigger"),
        ({"on": ["manual", "manual"]}, "automation.on", "twice"),
        ({"on": []}, "automation.on", "non-empty"),
        ({"name": "no spaces allowed"}, "automation.name", "automation"),
        ({"pipeline": "pipeline.py"}, "automation.pipeline", "FILE.py:NAME"),
        ({"rollback": {"when": "latency > 3"}}, "automation.rollback.when", "one live metric"),
        ({"rollback": {"within": "forever"}}, "automation.rollback.within", "positive number"),
        ({"promote": {"model": "m", "canary": {"weight": 2}}}, "automation.promote.canary.weight", "(0, 1]"),
        ({"promote": {"model": "m", "canary": {}, "shadow": {}}}, "automation.promote", "not both"),
        ({"promote": {"model": "m", "alias": "x", "challenger": "x"}}, "automation.promote", "differ"),
        ({"promote": {"model": "m", "gate": {"rules": ["rmse <=="]}}}, "automation.promote.gate", "rule"),
        ({"promote": {"model": "m", "colour": "red"}}, "automation.promote.colour", "unknown key"),
        ({"cooldown": "soon"}, "automation.cooldown", "cooldown"),
        ({"surprise": 1}, "automation.surprise", "unknown key"),
        ({"data": {"dataset": "d", "as": "blob"}}, "automation.data.as", "'path' or 'ref'"),
    ],
)
def test_mistakes_name_the_field(change: dict, field: str, words: str) -> None:
    spec = {k: val for k, val in FULL.items() if k != "rollback"} | change
    if "rollback" in change:
        spec["rollback"] = change["rollback"]
    with pytest.raises(InvalidArgument) as caught:
        AutomationSpec.from_dict(spec)
    assert caught.value.field == field, caught.value.message
    assert words in caught.value.message


def test_rollback_without_promote_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="needs promote"):
        AutomationSpec.from_dict({"name": "a", "pipeline": "p.py:x", "rollback": {"within": "1h"}})


def test_a_new_data_trigger_alone_feeds_the_path_parameter() -> None:
    spec = AutomationSpec.from_dict({"name": "a", "pipeline": "p.py:x", "on": ["new_data:bikes-raw"]})
    assert spec.data is not None and (spec.data.dataset, spec.data.param) == ("bikes-raw", "path")


def test_toml_file(tmp_path: Path) -> None:
    (tmp_path / "gate.toml").write_text('rules = ["rmse <= champion.rmse"]\ndataset = "holdout@1"\ntarget = "cnt"\n')
    (tmp_path / "conveyor.toml").write_text(
        '[[automation]]\nname = "a"\nproject = "bikes"\npipeline = "pipeline.py:release"\n'
        'on = ["manual"]\npromote = { model = "m", gate = "gate.toml" }\n'
        '[[automation]]\nname = "b"\npipeline = "pipeline.py:release"\n')
    (project, a), (no_project, b) = load_file(tmp_path / "conveyor.toml")
    assert (project, no_project) == ("bikes", None)
    assert a.promote is not None and a.promote.gate is not None
    assert a.promote.gate["rules"] == ["rmse <= champion.rmse"]  # the policy file is read once, when stored
    assert [t.kind for t in b.triggers] == ["manual"]
    (tmp_path / "bad.toml").write_text("[[automation]\n")
    with pytest.raises(InvalidArgument, match="not valid TOML"):
        load_file(tmp_path / "bad.toml")
    (tmp_path / "twice.toml").write_text('[[automation]]\nname="a"\npipeline="p.py:x"\n' * 2)
    with pytest.raises(InvalidArgument, match="twice"):
        load_file(tmp_path / "twice.toml")


def test_schedule_fires_once_for_the_newest_due_tick() -> None:
    t = Trigger.parse("schedule:0 3 * * *", "on")
    created = ms(2026, 11, 20, 12, 0)
    assert triggers.schedule(t, created, ms(2026, 11, 21, 2, 59)) is None  # not due yet
    wanted = triggers.schedule(t, created, ms(2026, 11, 21, 3, 0))
    assert wanted is not None and wanted.key == f"schedule:0 3 * * *@{ms(2026, 11, 21, 3, 0)}"
    assert wanted.cursor == ("schedule:0 3 * * *", ms(2026, 11, 21, 3, 0))
    assert triggers.schedule(t, ms(2026, 11, 21, 3, 0), ms(2026, 11, 21, 15, 0)) is None  # that tick fired


def test_missed_ticks_catch_up_once() -> None:
    """An agent down for three days runs the schedule once, for the newest tick, and says so."""
    t = Trigger.parse("schedule:0 3 * * *", "on")
    wanted = triggers.schedule(t, ms(2026, 11, 20, 3, 0), ms(2026, 11, 23, 15, 0))
    assert wanted is not None
    assert wanted.evidence == {"due": ms(2026, 11, 23, 3, 0), "missed": 2}
    assert "2 earlier runs missed" in wanted.reason and "run once" in wanted.reason


def test_the_example_file_is_valid() -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "conveyor.toml"
    [(project, spec)] = load_file(example)
    assert project == "bikes"
    assert Path(spec.pipeline.rpartition(":")[0]).is_file()  # resolved against the file, not the cwd
    assert spec.promote is not None and spec.promote.gate is not None
    assert spec.promote.gate["slices"][0]["by"] == "season"
