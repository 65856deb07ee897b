"""What an automation is: its pipeline, its triggers, how it rolls out and when it rolls back.

An automation is written in ``conveyor.toml`` (or given as a dict to the API)::

    [[automation]]
    name = "bike-demand-retrain"
    pipeline = "examples/bikes/pipeline.py:release"
    data = { dataset = "bikes-raw", param = "path" }
    on = ["schedule:0 3 * * *", "new_data:bikes-raw", "drift:bike-demand > 0.3",
          "performance:bike-demand rmse > 1.2 * baseline", "manual"]
    promote = { model = "bike-demand", alias = "champion", gate = "examples/bikes/gate.toml",
                canary = { weight = 0.1, duration = "1h" } }
    rollback = { when = "rmse > 1.1 * previous or error_rate > 0.01", within = "24h" }

Everything is parsed and checked here, once, so a typo is refused when the
automation is stored, never at 3 a.m. when it fires. Errors name the field
(``automation[0].on[2]``) and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conveyor.core import validation as v
from conveyor.core.errors import InvalidArgument

#: Metrics the live rules can read: the prediction log's metrics and the error rate.
ERROR_RATE = "error_rate"
_DRIFT = re.compile(r"^(?P<monitor>[A-Za-z0-9][A-Za-z0-9_\-.]*)\s*(?:>=?\s*(?P<threshold>[0-9.]+))?\s*$")
_PERFORMANCE = re.compile(r"^(?P<monitor>[A-Za-z0-9][A-Za-z0-9_\-.]*)(?:\s+(?P<rule>.+))?$")
_OR = re.compile(r"\s+or\s+", re.IGNORECASE)
_PREVIOUS = re.compile(r"\bprevious(?:\.(?P<metric>[A-Za-z_][A-Za-z0-9_]*))?\b")


def duration_ms(text: object, field: str) -> int:
    """``"30m"``, ``"1h"``, ``"1d"`` → milliseconds (the units of monitor windows)."""
    from conveyor.monitoring.monitors import parse_window

    try:
        return parse_window(text)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message.replace("window", field, 1), field=field) from None


@dataclass(frozen=True)
class Trigger:
    """One entry of ``on``: what fires the automation."""

    kind: str  # schedule | new_data | drift | performance | manual
    text: str
    cron: str | None = None
    dataset: str | None = None
    monitor: str | None = None
    threshold: float | None = None  # drift: the share of drifted features
    rule: str | None = None  # performance: e.g. "rmse > 1.2 * baseline"

    @property
    def cursor(self) -> str:
        """The name under which the store keeps what this trigger last fired on."""
        return self.text

    @classmethod
    def parse(cls, text: object, field: str) -> Trigger:
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument(f"a trigger must be a non-empty string, got {text!r}", field=field)
        text = text.strip()
        kind, _, arg = (part.strip() for part in text.partition(":"))
        if kind == "manual" and not arg:
            return cls("manual", text)
        if kind == "schedule":
            from croniter import croniter

            if not croniter.is_valid(arg) or len(arg.split()) != 5:
                raise InvalidArgument(
                    f"{text!r}: the schedule must be a 5-field cron expression such as '0 3 * * *'", field=field
                )
            return cls("schedule", text, cron=arg)
        if kind == "new_data":
            try:
                return cls("new_data", text, dataset=v.check_name(arg, "dataset"))
            except InvalidArgument as exc:
                raise InvalidArgument(f"{text!r}: {exc.message}", field=field) from None
        if kind == "drift":
            match = _DRIFT.match(arg)
            threshold = float(match.group("threshold")) if match and match.group("threshold") else None
            if match is None or (threshold is not None and not 0 < threshold <= 1):
                raise InvalidArgument(
                    f"{text!r}: write drift:MONITOR or drift:MONITOR > SHARE with a share in (0, 1], "
                    "e.g. 'drift:bike-demand > 0.3'", field=field)
            return cls("drift", text, monitor=match.group("monitor"), threshold=threshold)
        if kind == "performance":
            match = _PERFORMANCE.match(arg)
            if match is None:
                raise InvalidArgument(
                    f"{text!r}: write performance:MONITOR [RULE], e.g. 'performance:bike-demand rmse > 1.2 * baseline'",
                    field=field)
            rule = match.group("rule")
            if rule is not None:
                _check_performance_rule(rule, f"{text!r}", field)
            return cls("performance", text, monitor=match.group("monitor"), rule=rule)
        raise InvalidArgument(
            f"unknown trigger {text!r}: use schedule:CRON, new_data:DATASET, drift:MONITOR > SHARE, "
            "performance:MONITOR RULE or manual", field=field)


def _check_performance_rule(rule: str, where: str, field: str) -> None:
    """The monitor's own check: one live metric and ``baseline``, e.g. ``rmse > 1.2 * baseline``."""
    from conveyor.monitoring.monitors import check_metric
    from conveyor.registry.rules import Rule

    says = f"{where}: the rule reads one live metric and 'baseline', e.g. 'rmse > 1.2 * baseline'"
    names = {name for _, name in Rule.parse(rule, field=field).metrics} - {"baseline"}
    if len(names) != 1:
        raise InvalidArgument(says, field=field)
    try:
        check_metric(names.pop(), rule)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{says}; {exc.message}", field=field) from None


@dataclass(frozen=True)
class Canary:
    """Live trial of the candidate before it becomes champion."""

    mode: str  # "canary": answers ``weight`` of the traffic; "shadow": gets a copy, answers nobody
    weight: float
    duration: str
    min_rows: int = 30  # labelled rows the candidate needs before it is judged
    patience: str | None = None  # how long to wait past ``duration`` for those rows (default: 2 × duration)

    @property
    def duration_ms(self) -> int:
        return duration_ms(self.duration, "canary.duration")

    @property
    def patience_ms(self) -> int:
        return duration_ms(self.patience, "canary.patience") if self.patience else 2 * self.duration_ms


@dataclass(frozen=True)
class Promote:
    """Where a candidate goes: through the gate to ``challenger``, then to ``alias``."""

    model: str
    alias: str = "champion"
    challenger: str = "challenger"
    gate: dict[str, Any] | None = None  # a Gate as data (a policy file is read when the spec is stored)
    canary: Canary | None = None
    #: when the candidate is kept, monitors of this model that compare against a version of the
    #: automation's dataset compare against the version the candidate was trained on
    rebase_monitors: bool = True


@dataclass(frozen=True)
class Clause:
    """One ``or`` part of a live rule, as a gate rule over ``candidate`` and ``champion`` tables."""

    text: str
    rule: str
    metric: str


@dataclass(frozen=True)
class Rollback:
    """When a rolled-out model is taken back: the rule, and how long it is watched."""

    when: str
    within: str
    clauses: tuple[Clause, ...]

    @property
    def within_ms(self) -> int:
        return duration_ms(self.within, "rollback.within")

    @property
    def metrics(self) -> list[str]:
        return sorted({c.metric for c in self.clauses})


def parse_live_rule(text: object, field: str) -> tuple[Clause, ...]:
    """``"rmse > 1.1 * previous or error_rate > 0.01"`` → clauses; ``previous`` is the model it replaced."""
    from conveyor.monitoring.monitors import METRIC_TASKS
    from conveyor.registry.rules import METRIC_ALIASES, Rule

    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"the rule must be a non-empty string, got {text!r}", field=field)
    clauses = []
    for part in _OR.split(text.strip()):
        bare = {METRIC_ALIASES.get(n, n) for n in re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", _PREVIOUS.sub("", part))}
        live = sorted(bare & {*METRIC_TASKS, ERROR_RATE})
        if len(live) != 1:
            raise InvalidArgument(
                f"{part!r} must read one live metric ({', '.join([*METRIC_TASKS, ERROR_RATE])}), "
                f"e.g. 'rmse > 1.1 * previous'", field=field)
        metric = live[0]
        rewritten = _PREVIOUS.sub(lambda m, metric=metric: f"champion.{m.group('metric') or metric}", part)
        rule = Rule.parse(rewritten, field=field)
        unknown = {name for _, name in rule.metrics} - {*METRIC_TASKS, ERROR_RATE}
        if unknown:
            raise InvalidArgument(f"{part!r} reads {', '.join(sorted(unknown))}, which the live log does not have",
                                  field=field)
        clauses.append(Clause(part.strip(), rewritten.strip(), metric))
    return tuple(clauses)


#: The rule used when an automation says nothing: a candidate that fails requests is not kept.
DEFAULT_ROLLBACK = "error_rate > 0.01"


@dataclass(frozen=True)
class DataInput:
    """The dataset whose new versions feed the pipeline, and the pipeline parameter that receives it."""

    dataset: str
    param: str = "path"
    as_: str = "path"  # "path": a verified local checkout; "ref": the text "name@N"


@dataclass(frozen=True)
class AutomationSpec:
    """One automation, parsed and checked."""

    name: str
    pipeline: str
    triggers: tuple[Trigger, ...]
    params: dict[str, Any] = field(default_factory=dict)
    data: DataInput | None = None
    promote: Promote | None = None
    rollback: Rollback | None = None
    cooldown: str | None = None
    executor: str | None = None
    alerts: tuple[str, ...] = ()

    @property
    def cooldown_ms(self) -> int:
        return duration_ms(self.cooldown, "cooldown") if self.cooldown else 0

    def to_dict(self) -> dict[str, Any]:
        """The form the store keeps and :meth:`from_dict` reads back (the ``on`` list as written)."""
        out: dict[str, Any] = {"name": self.name, "pipeline": self.pipeline, "on": [t.text for t in self.triggers],
                               "params": dict(self.params)}
        if self.data is not None:
            out["data"] = {"dataset": self.data.dataset, "param": self.data.param, "as": self.data.as_}
        if self.promote is not None:
            promote = asdict(self.promote)
            trial = promote.pop("canary")
            if trial is not None:
                mode = trial.pop("mode")
                promote[mode] = {k: val for k, val in trial.items() if val is not None}
            out["promote"] = {k: val for k, val in promote.items() if val is not None}
        if self.rollback is not None:
            out["rollback"] = {"when": self.rollback.when, "within": self.rollback.within}
        for key in ("cooldown", "executor"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.alerts:
            out["alerts"] = list(self.alerts)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "automation", base: Path | None = None) -> AutomationSpec:
        """Parse and check one automation; ``base`` is the folder relative paths (gate files) start from."""
        return _Parser(data, where, base or Path.cwd()).spec()


class _Parser:
    KNOWN = {"name", "pipeline", "on", "params", "data", "promote", "rollback", "cooldown", "executor", "alerts",
             "project"}

    def __init__(self, data: Mapping[str, Any], where: str, base: Path) -> None:
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"{where} must be a table, got {type(data).__name__}", field=where)
        self.data, self.where, self.base = data, where, base

    def f(self, *names: str | int) -> str:
        return self.where + "".join(f"[{n}]" if isinstance(n, int) else f".{n}" for n in names)

    def table(self, value: Any, name: str, known: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise InvalidArgument(f"{self.f(name)} must be a table, got {value!r}", field=self.f(name))
        extra = sorted(set(value) - known)
        if extra:
            raise InvalidArgument(f"{self.f(name)} has unknown key(s) {', '.join(extra)} "
                                  f"(known: {', '.join(sorted(known))})", field=self.f(name, extra[0]))
        return value

    def text(self, value: Any, *names: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidArgument(f"{self.f(*names)} must be a non-empty string, got {value!r}", field=self.f(*names))
        return value.strip()

    def spec(self) -> AutomationSpec:
        d = self.data
        extra = sorted(set(d) - self.KNOWN)
        if extra:
            raise InvalidArgument(f"{self.where} has unknown key(s) {', '.join(extra)} "
                                  f"(known: {', '.join(sorted(self.KNOWN))})", field=self.f(extra[0]))
        name = self.text(d.get("name"), "name")
        try:
            v.check_name(name, "automation")
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field=self.f("name")) from None
        pipeline = self.text(d.get("pipeline"), "pipeline")
        where, sep, attr = pipeline.rpartition(":")
        if not sep or not where or not attr:
            raise InvalidArgument(f"{self.f('pipeline')} must be FILE.py:NAME or module:NAME, got {pipeline!r}",
                                  field=self.f("pipeline"))
        if (where.endswith(".py") or "/" in where) and not Path(where).is_absolute():
            pipeline = f"{self.base / where}:{attr}"  # the agent may run from another folder
        on = d.get("on", ["manual"])
        if isinstance(on, str):
            on = [on]
        if not isinstance(on, list) or not on:
            raise InvalidArgument(f"{self.f('on')} must be a non-empty list of triggers", field=self.f("on"))
        triggers = tuple(Trigger.parse(t, self.f("on", i)) for i, t in enumerate(on))
        if len({t.text for t in triggers}) != len(triggers):
            raise InvalidArgument(f"{self.f('on')} lists a trigger twice", field=self.f("on"))
        params = d.get("params", {})
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise InvalidArgument(f"{self.f('params')} must be a table of pipeline parameters", field=self.f("params"))
        data = self.data_input(d["data"]) if "data" in d else None
        if data is None:
            data = next((DataInput(t.dataset) for t in triggers if t.kind == "new_data" and t.dataset), None)
        promote = self.promote(d["promote"]) if "promote" in d else None
        rollback = self.rollback(d["rollback"]) if "rollback" in d else None
        if rollback is not None and promote is None:
            raise InvalidArgument(f"{self.f('rollback')} needs promote (there is nothing to roll back)",
                                  field=self.f("rollback"))
        cooldown = d.get("cooldown")
        if cooldown is not None:
            duration_ms(cooldown, self.f("cooldown"))
        executor = d.get("executor")
        if executor is not None:
            executor = self.text(executor, "executor")
        alerts = d.get("alerts", [])
        if isinstance(alerts, str) or not isinstance(alerts, list) or not all(isinstance(a, str) for a in alerts):
            raise InvalidArgument(f"{self.f('alerts')} must be a list of channel specs such as 'webhook=https://...'",
                                  field=self.f("alerts"))
        return AutomationSpec(name=name, pipeline=pipeline, triggers=triggers, params=dict(params), data=data,
                              promote=promote, rollback=rollback, cooldown=cooldown, executor=executor,
                              alerts=tuple(alerts))

    def data_input(self, value: Any) -> DataInput:
        t = self.table(value, "data", {"dataset", "param", "as"})
        dataset = self.text(t.get("dataset"), "data", "dataset")
        v.check_name(dataset, "dataset")
        param = self.text(t.get("param", "path"), "data", "param")
        as_ = t.get("as", "path")
        if as_ not in ("path", "ref"):
            raise InvalidArgument(f"{self.f('data', 'as')} must be 'path' or 'ref', got {as_!r}",
                                  field=self.f("data", "as"))
        return DataInput(dataset, param, as_)

    def promote(self, value: Any) -> Promote:
        from conveyor.registry import gate as gates
        from conveyor.registry.service import parse_model_uri

        t = self.table(value, "promote", {"model", "alias", "challenger", "gate", "canary", "shadow",
                                          "rebase_monitors"})
        model = self.text(t.get("model"), "promote", "model")
        try:
            v.check_name(model, "model")
            alias = v.check_name(t.get("alias", "champion"), "alias")
            challenger = v.check_name(t.get("challenger", "challenger"), "alias")
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field=self.f("promote")) from None
        if alias == challenger:
            raise InvalidArgument(f"{self.f('promote')}: alias and challenger must differ", field=self.f("promote"))
        parse_model_uri(f"models:/{model}@{alias}")
        gate_value = t.get("gate")
        gate: dict[str, Any] | None = None
        if gate_value is not None:
            if isinstance(gate_value, str) and not Path(gate_value).is_absolute():
                gate_value = str(self.base / gate_value)
            try:
                parsed = gates.as_gate(gate_value)
            except InvalidArgument as exc:
                raise InvalidArgument(f"{self.f('promote', 'gate')}: {exc.message}",
                                      field=self.f("promote", "gate")) from None
            gate = parsed.to_dict() if parsed is not None else None
        if "canary" in t and "shadow" in t:
            raise InvalidArgument(f"{self.f('promote')}: a canary or a shadow, not both", field=self.f("promote"))
        trial = None
        for mode in ("canary", "shadow"):
            if mode in t:
                trial = self.canary(t[mode], mode)
        rebase = t.get("rebase_monitors", True)
        if not isinstance(rebase, bool):
            raise InvalidArgument(f"{self.f('promote', 'rebase_monitors')} is true or false, got {rebase!r}",
                                  field=self.f("promote", "rebase_monitors"))
        return Promote(model=model, alias=alias, challenger=challenger, gate=gate, canary=trial,
                       rebase_monitors=rebase)

    def canary(self, value: Any, mode: str) -> Canary:
        c = self.table(value, f"promote.{mode}", {"weight", "duration", "min_rows", "patience"})
        weight = c.get("weight", 0.1 if mode == "canary" else 0.0)
        if mode == "canary" and (isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1):
            raise InvalidArgument(f"{self.f('promote', mode, 'weight')} must be in (0, 1], got {weight!r}",
                                  field=self.f("promote", mode, "weight"))
        duration = self.text(c.get("duration", "1h"), "promote", mode, "duration")
        duration_ms(duration, self.f("promote", mode, "duration"))
        min_rows = c.get("min_rows", 30)
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
            raise InvalidArgument(f"{self.f('promote', mode, 'min_rows')} must be a positive integer",
                                  field=self.f("promote", mode, "min_rows"))
        patience = c.get("patience")
        if patience is not None:
            duration_ms(patience, self.f("promote", mode, "patience"))
        return Canary(mode, float(weight), duration, min_rows, patience)

    def rollback(self, value: Any) -> Rollback:
        t = self.table(value, "rollback", {"when", "within"})
        when = self.text(t.get("when", DEFAULT_ROLLBACK), "rollback", "when")
        clauses = parse_live_rule(when, self.f("rollback", "when"))
        within = self.text(t.get("within", "24h"), "rollback", "within")
        duration_ms(within, self.f("rollback", "within"))
        return Rollback(when, within, clauses)


def load_file(path: str | Path) -> list[tuple[str | None, AutomationSpec]]:
    """Every ``[[automation]]`` of a TOML file as ``(project or None, spec)``."""
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidArgument(f"{str(path)!r} does not exist", field="file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path.name} is not valid TOML: {exc}", field="file") from None
    entries = data.get("automation", [])
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument(f"{path.name} has no [[automation]] table", field="automation")
    out: list[tuple[str | None, AutomationSpec]] = []
    for i, entry in enumerate(entries):
        spec = AutomationSpec.from_dict(entry, where=f"automation[{i}]", base=path.resolve().parent)
        project = entry.get("project")
        if project is not None:
            v.check_name(project, "project")
        out.append((project, spec))
    names = [s.name for _, s in out]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"{path.name} defines an automation name twice", field="automation")
    return out
