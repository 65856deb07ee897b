"""Drawing a pipeline: plain text for a terminal, Mermaid and Graphviz DOT for docs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.core.errors import InvalidArgument
from conveyor.pipelines.graph import OutputRef, ParamRef

if TYPE_CHECKING:
    from conveyor.pipelines.graph import Pipeline

FORMATS = ("text", "mermaid", "dot")


def render(pipeline: Pipeline, format: str = "text") -> str:
    """The DAG in ``format`` (one of :data:`FORMATS`)."""
    if format not in FORMATS:
        raise InvalidArgument(
            f"unknown graph format {format!r}; expected one of {', '.join(FORMATS)}", field="format"
        )
    return {"text": _text, "mermaid": _mermaid, "dot": _dot}[format](pipeline)


def _edges(pipeline: Pipeline) -> list[tuple[str, str, str]]:
    edges = []
    for node in pipeline.nodes:
        for pname, binding in node.inputs:
            if isinstance(binding, OutputRef):
                edges.append((binding.node, node.name, pname))
    return edges


def _text(pipeline: Pipeline) -> str:
    params = ", ".join(p.name if p.required else f"{p.name}={p.default!r}" for p in pipeline.params)
    lines = [f"pipeline {pipeline.name}({params})  {len(pipeline)} steps"]
    for node in pipeline.nodes:
        sources = []
        for pname, binding in node.inputs:
            if isinstance(binding, OutputRef):
                suffix = f"[{binding.index}]" if node_outputs(pipeline, binding.node) > 1 else ""
                sources.append(f"{pname}<-{binding.node}{suffix}")
            elif isinstance(binding, ParamRef):
                sources.append(f"{pname}<-${binding.name}")
        opts = node.step.options
        flags = [f for f, on in (("no-cache", not opts.cache), (f"retries={opts.retries}", opts.retries)) if on]
        extra = f"  [{', '.join(flags)}]" if flags else ""
        lines.append(f"  {node.name}({', '.join(sources)}){extra}")
    return "\n".join(lines)


def node_outputs(pipeline: Pipeline, name: str) -> int:
    return pipeline.node(name).step.n_outputs


def _mermaid(pipeline: Pipeline) -> str:
    lines = ["flowchart TD"]
    for node in pipeline.nodes:
        lines.append(f'    {_ident(node.name)}["{node.name}"]')
    for src, dst, label in _edges(pipeline):
        lines.append(f"    {_ident(src)} -->|{label}| {_ident(dst)}")
    return "\n".join(lines)


def _dot(pipeline: Pipeline) -> str:
    lines = [f'digraph "{pipeline.name}" {{', "    rankdir=TB;", "    node [shape=box];"]
    for node in pipeline.nodes:
        lines.append(f'    "{node.name}";')
    for src, dst, label in _edges(pipeline):
        lines.append(f'    "{src}" -> "{dst}" [label="{label}"];')
    lines.append("}")
    return "\n".join(lines)


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)
