"""The registry service: log, load, alias, promote through gates, roll back, trace lineage.

:class:`ModelRegistry` works on one project over the two stores: the metadata
store's ``registry`` for records, the content store for packages. The fluent
functions (``cv.log_model``, ``cv.models.*``) build one from the tracking
client and the current project.

Example::

    registry = ModelRegistry(store, content, project="bikes")
    mv = registry.log_model(model, "bike-demand", input_example=X.head(5), run_id=run.id)
    registry.promote("bike-demand", mv.version, to="champion", gate={...})
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.core import validation as v
from conveyor.core.errors import GateFailed, InvalidArgument, InvalidState
from conveyor.registry import datasets, package
from conveyor.registry import gate as gates
from conveyor.registry.package import LoadedModel
from conveyor.registry.signature import Signature
from conveyor.stores.artifacts.cas import ContentStore
from conveyor.stores.metadata.base import MetadataStore
from conveyor.stores.metadata.registry import (
    ARCHIVED,
    READY,
    GateEvaluation,
    ModelVersion,
    RegisteredModel,
)

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$")


def parse_model_uri(uri: object) -> tuple[str, str]:
    """``models:/NAME/3`` → ("NAME", "3"); ``models:/NAME@champion`` → ("NAME", "champion")."""
    match = _URI.match(uri) if isinstance(uri, str) else None
    if match is None:
        raise InvalidArgument(
            f"{uri!r} is not a model URI: use models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest",
            field="uri",
        )
    version = match.group("version") or match.group("alias")
    if match.group("version") and not (version.isdigit() or version == "latest"):
        raise InvalidArgument(f"{uri!r}: the version must be a number or 'latest'", field="uri")
    return match.group("name"), version


@dataclass(frozen=True)
class LineageGraph:
    """Nodes (``{"id", "kind", "label", ...}``) and edges (``{"src", "dst", "relation"}``)."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)

    def chain(self) -> list[str]:
        """One readable line per edge, sources first: what the CLI prints."""
        labels = {n["id"]: f"{n['kind']} {n['label']}" for n in self.nodes}
        return [f"{labels.get(e['src'], e['src'])} --{e['relation']}--> {labels.get(e['dst'], e['dst'])}"
                for e in self.edges]


class ModelRegistry:
    """Registered models of one project (see the module docstring)."""

    def __init__(self, store: MetadataStore, content: ContentStore, project: str) -> None:
        self.store = store
        self.records = store.registry
        self.content = content
        self.project = v.check_name(project, "project")

    # ------------------------------------------------------------- log / load

    def log_model(
        self,
        model: Any,
        name: str,
        *,
        input_example: Any = None,
        signature: Signature | Mapping[str, Any] | None = None,
        format: str | None = None,
        datasets: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Package ``model``, register it as the next version of ``name`` and link its lineage."""
        v.check_name(name, "model")
        v.check_tags(tags or {})
        if isinstance(signature, Mapping):
            signature = Signature.from_dict(signature)
        links = [(role, *_link(value, role)) for role, value in (datasets or {}).items()]
        run = self.store.get_run(run_id, with_artifacts=False) if run_id else None
        built = package.build(model, self.content, input_example=input_example, signature=signature, format=format)
        env = run.env if run else {}
        info = {
            "size": built.size, "python": built.manifest["python"],
            "requirements": built.manifest["requirements"],
            "runs_code_when_loaded": built.manifest["runs_code_when_loaded"],
            "code": env.get("git") or {},
            "environment": {k: env[k] for k in ("python", "packages_digest", "packages_count", "platform",
                                                "host") if k in env},
            "datasets": {role: attrs["ref"] for role, _, attrs in links},
        }
        mv = self.records.create_version(
            self.project, name, flavour=built.manifest["flavour"], format=built.manifest["model_format"],
            package_digest=built.digest, signature=built.manifest["signature"], info=info, run_id=run_id,
            description=description, tags=tags,
        )
        if run_id:
            self.store.add_lineage(("run", run_id), ("model_version", mv.id), "produced")
        for role, ident, attrs in links:
            self.store.add_lineage(("dataset_version", ident), ("model_version", mv.id), role, attrs)
        return mv

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        return self.records.get_version(self.project, name, version)

    def resolve(self, uri: str) -> ModelVersion:
        name, version = parse_model_uri(uri)
        return self.get_version(name, version)

    def load(self, uri_or_version: str | ModelVersion) -> LoadedModel:
        """A model ready to predict from ``models:/NAME/3``, ``models:/NAME@alias`` or ``models:/NAME/latest``."""
        mv = uri_or_version if isinstance(uri_or_version, ModelVersion) else self.resolve(uri_or_version)
        meta = {"name": mv.name, "version": mv.version, "uri": mv.uri, "run_id": mv.run_id,
                "status": mv.status, "aliases": list(mv.aliases), "registry": mv.info}
        return package.load(self.content, mv.package_digest, label=f"{mv.uri}", metadata=meta)

    # ------------------------------------------------------------ listing

    def get_model(self, name: str) -> RegisteredModel:
        return self.records.get_model(self.project, name)

    def list_models(self, max_results: int = 100, page_token: str | None = None) -> Any:
        return self.records.list_models(self.project, max_results=max_results, page_token=page_token)

    def search(self, query: str | None = None, *, tag: tuple[str, str] | None = None,
               max_results: int = 100, page_token: str | None = None) -> Any:
        return self.records.list_models(self.project, name_contains=query, tag=tag,
                                        max_results=max_results, page_token=page_token)

    def list_versions(self, name: str, *, include_archived: bool = True, max_results: int = 100,
                      page_token: str | None = None) -> Any:
        return self.records.list_versions(self.project, name, include_archived=include_archived,
                                          max_results=max_results, page_token=page_token)

    # ------------------------------------------------------------ changes

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        self.records.set_alias(self.project, name, alias, version)
        return self.get_version(name, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self.records.delete_alias(self.project, name, alias)

    def archive(self, name: str, version: int) -> ModelVersion:
        return self.records.set_status(self.project, name, version, ARCHIVED)

    def restore(self, name: str, version: int) -> ModelVersion:
        return self.records.set_status(self.project, name, version, READY)

    def delete_version(self, name: str, version: int) -> None:
        self.records.delete_version(self.project, name, version)

    def set_gate(self, name: str, gate: gates.Gate | Mapping[str, Any] | str | None) -> RegisteredModel:
        """Declare the gate every promotion of ``name`` runs (a Gate, a dict or a policy file)."""
        parsed = gates.as_gate(gate)
        return self.records.update_model(self.project, name, gate=parsed.to_dict() if parsed else {})

    def rollback(self, name: str, alias: str = "champion") -> ModelVersion:
        """Move ``alias`` back to its previous holder."""
        _, target = self.records.rollback_alias(self.project, name, alias)
        return self.get_version(name, target)

    def promote(
        self,
        name: str,
        version: int,
        to: str = "champion",
        *,
        gate: gates.Gate | Mapping[str, Any] | str | None = None,
        force: bool = False,
        reason: str | None = None,
        against: str | None = None,
    ) -> GateEvaluation:
        """Move alias ``to`` onto ``version`` if the gate passes (or ``force`` with a reason).

        The gate is ``gate`` if given, else the model's declared gate; with neither,
        only the must-haves run (signature against the current holder, validation of
        the training data). The candidate is
        compared with the holder of ``against`` (default: ``to`` itself), so a
        candidate can be made ``challenger`` only if it beats the ``champion``.
        The evaluation is recorded and audited whatever the verdict.

        Raises:
            GateFailed: a check failed; ``.report`` lists every check. Nothing moved.
        """
        if force and not (isinstance(reason, str) and reason.strip()):
            raise InvalidArgument("force=True needs a reason (it is written to the audit trail)", field="reason")
        candidate_mv = self.get_version(name, version)
        if candidate_mv.status == ARCHIVED:
            raise InvalidState(f"{name} version {version} is archived; restore it before promoting it")
        model = self.get_model(name)
        declared = model.gate or None
        spec = gates.as_gate(gate) if gate is not None else (gates.Gate.from_dict(declared) if declared else None)
        spec = spec or gates.Gate()
        if model.aliases.get(to) == candidate_mv.version:
            raise InvalidState(f"{name} version {version} already holds {to!r}")
        holder = model.aliases.get(against or to)
        if holder == candidate_mv.version:  # compared with itself: no champion to beat
            holder = None
        champion_mv = self.get_version(name, holder) if holder is not None else None
        if spec.dataset is not None or spec.latency_p95_ms is not None:
            candidate: Any = self.load(candidate_mv)
            champion: Any = self.load(champion_mv) if champion_mv is not None else None
        else:  # only the signatures are compared: the records hold them, no need to load
            candidate = _Signed.of(candidate_mv)
            champion = _Signed.of(champion_mv) if champion_mv is not None else None
        report = gates.run(spec, candidate, champion, training=datasets.training_data(self.store, candidate_mv.id))
        report["gate"] = "inline" if gate is not None else ("declared" if declared else "none")
        evaluation = self.records.record_gate(
            self.project, name, candidate_mv.version, to, champion_version=holder, passed=report["passed"],
            forced=force and not report["passed"], reason=(reason or "").strip(), report=report,
            move_alias=report["passed"] or force, against=against,
        )
        if not report["passed"] and not force:
            raise GateFailed(
                f"promotion of {name} version {version} to {to!r} refused by its gate"
                f"{f' (compared with version {holder})' if holder else ''}:\n{gates.format_report(report)}",
                report=report,
            )
        return evaluation

    def evaluations(self, name: str, version: int | None = None) -> list[GateEvaluation]:
        return self.records.list_gate_evaluations(self.project, name, version)

    # ------------------------------------------------------------ lineage

    def lineage(self, uri: str) -> LineageGraph:
        """The version, its run, datasets, code commit and environment as a graph."""
        mv = self.resolve(uri)
        node_id = f"model_version:{mv.id}"
        graph = LineageGraph(nodes=[{"id": node_id, "kind": "model_version", "label": mv.uri,
                                     "flavour": mv.flavour, "format": mv.format}])
        for edge in self.store.list_lineage(("model_version", mv.id), direction="in"):
            kind, ident = edge["src"]
            src = f"{kind}:{ident}"
            attrs = edge["attributes"] or {}
            label = attrs.get("ref") or ident
            graph.nodes.append({"id": src, "kind": kind, "label": label, **attrs})
            graph.edges.append({"src": src, "dst": node_id, "relation": edge["relation"]})
        code = mv.info.get("code") or {}
        run_node = f"run:{mv.run_id}" if mv.run_id else node_id
        if code.get("commit"):
            cid = f"commit:{code['commit']}"
            graph.nodes.append({"id": cid, "kind": "commit", "label": str(code["commit"])[:12], **code})
            graph.edges.append({"src": cid, "dst": run_node, "relation": "code"})
        environment = mv.info.get("environment") or {}
        if environment:
            eid = f"environment:{environment.get('packages_digest', 'python')}"
            label = f"python {environment.get('python', '?')}, {environment.get('packages_count', '?')} packages"
            graph.nodes.append({"id": eid, "kind": "environment", "label": label, **environment})
            graph.edges.append({"src": eid, "dst": run_node, "relation": "environment"})
        return graph


@dataclass(frozen=True)
class _Signed:
    """A version seen only through its signature (what a gate without data needs)."""

    signature: Signature | None

    @classmethod
    def of(cls, mv: ModelVersion) -> _Signed:
        return cls(Signature.from_dict(mv.signature) if mv.signature else None)


def _link(value: Any, role: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(role, str) or not role:
        raise InvalidArgument("dataset roles must be non-empty strings", field="datasets")
    return datasets.link(value, role)

