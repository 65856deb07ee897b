"""The pipeline DAG as immutable values: nodes, bindings and :class:`Pipeline`.

A :class:`Pipeline` is checked when it is built (unique names, every input
bound, no cycles, matching annotations) and never changes afterwards. Combine
pipelines with ``+`` and cut them with :meth:`Pipeline.only`,
:meth:`Pipeline.upstream_of` and :meth:`Pipeline.downstream_of`; each returns
a new, again checked, pipeline::

    @pipeline
    def training(path: str, lr: float = 0.05):
        tr, va = split(features(load(path)))
        return evaluate(train(tr, lr=lr), va)

    training.graph("mermaid")
    training.upstream_of("train").run(path="data.csv")
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.errors import InvalidArgument
from conveyor.pipelines.steps import Handle, ParamHandle, Step, trace

_NO_DEFAULT: Any = inspect.Parameter.empty
_RESERVED = ("executor", "no_cache", "project", "order_by")


# ---------------------------------------------------------------- bindings


@dataclass(frozen=True)
class OutputRef:
    """Output ``index`` of node ``node``."""

    node: str
    index: int = 0


@dataclass(frozen=True)
class ParamRef:
    """The value of pipeline parameter ``name``."""

    name: str


@dataclass(frozen=True)
class Const:
    """A literal written in the pipeline function; kept as canonical JSON."""

    json: str

    @classmethod
    def of(cls, value: Any, where: str, expected: Any = Any) -> Const:
        check_value(value, expected, where)
        return cls(canonical_json(value, where))

    @property
    def value(self) -> Any:
        return json.loads(self.json)


Binding = OutputRef | ParamRef | Const


def canonical_json(value: Any, where: str) -> str:
    """``value`` as sorted, compact JSON, or an error naming ``where``."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"{where} must be JSON-serialisable (str, number, bool, None, list, dict): {exc}",
            field=where,
        ) from None


# ------------------------------------------------------------ type checks


def _classes(annotation: Any) -> tuple[type, ...] | None:
    """Classes an annotation admits, or ``None`` when it cannot be checked."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return None
    if annotation is None or annotation is type(None):
        return (type(None),)
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        found: list[type] = []
        for arg in typing.get_args(annotation):
            classes = _classes(arg)
            if classes is None:
                return None
            found.extend(classes)
        return tuple(found)
    if origin is typing.Annotated:
        return _classes(typing.get_args(annotation)[0])
    target = origin or annotation
    if isinstance(target, type) and not _is_protocol(target):
        if target is float:
            return (float, int)
        if target is complex:
            return (complex, float, int)
        return (target,)
    return None


def _is_protocol(cls: type) -> bool:
    return bool(getattr(cls, "_is_protocol", False))


def check_compatible(provided: Any, expected: Any, where: str, what: str) -> None:
    """Raise when a value annotated ``provided`` can never be an ``expected``."""
    have, want = _classes(provided), _classes(expected)
    if have is None or want is None:
        return
    if any(issubclass(h, want) or issubclass(w, h) for h in have for w in want):
        return
    raise InvalidArgument(
        f"{where} expects {_type_name(expected)} but gets the {what}, "
        f"annotated {_type_name(provided)}",
        field=where,
    )


def check_value(value: Any, expected: Any, where: str) -> None:
    """Raise when ``value`` is not an instance of annotation ``expected``."""
    want = _classes(expected)
    if want is None or isinstance(value, want):
        return
    raise InvalidArgument(
        f"{where} expects {_type_name(expected)}, got {type(value).__name__} {_short(value)}",
        field=where,
    )


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Node:
    """One invocation of a step: its unique name and where each argument comes from."""

    name: str
    step: Step
    inputs: tuple[tuple[str, Binding], ...]

    @property
    def upstream(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for _, binding in self.inputs:
            if isinstance(binding, OutputRef):
                seen[binding.node] = None
        return tuple(seen)


@dataclass(frozen=True)
class Param:
    """A pipeline parameter, with its default when it has one."""

    name: str
    annotation: Any = Any
    default: Any = _NO_DEFAULT

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT


@dataclass(frozen=True)
class PipelineSource:
    """Where the pipeline function lives, so a resume or a worker can load it again."""

    module: str
    qualname: str
    file: str | None = None


@dataclass(frozen=True)
class Pipeline:
    """An immutable, checked DAG of step invocations."""

    name: str
    nodes: tuple[Node, ...]
    params: tuple[Param, ...] = ()
    outputs: tuple[OutputRef, ...] = ()
    source: PipelineSource | None = None
    _index: dict[str, Node] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Node] = {}
        for node in self.nodes:
            if node.name in index:
                raise InvalidArgument(
                    f"pipeline {self.name!r} has two steps named {node.name!r}", field=node.name
                )
            index[node.name] = node
        object.__setattr__(self, "_index", index)
        param_names = {p.name for p in self.params}
        for node in self.nodes:
            for pname, binding in node.inputs:
                where = f"{node.name}.{pname}"
                if isinstance(binding, OutputRef):
                    upstream = index.get(binding.node)
                    if upstream is None:
                        raise InvalidArgument(
                            f"{where} needs the output of step {binding.node!r}, "
                            f"which is not in pipeline {self.name!r}",
                            field=where,
                        )
                    if binding.index >= upstream.step.n_outputs:
                        raise InvalidArgument(
                            f"{where} needs output {binding.index} of {binding.node!r}, "
                            f"which has {upstream.step.n_outputs}",
                            field=where,
                        )
                elif isinstance(binding, ParamRef) and binding.name not in param_names:
                    raise InvalidArgument(
                        f"{where} needs pipeline parameter {binding.name!r}, which "
                        f"pipeline {self.name!r} does not have",
                        field=where,
                    )
        for ref in self.outputs:
            if ref.node not in index:
                raise InvalidArgument(
                    f"pipeline {self.name!r} returns the output of {ref.node!r}, which it does not run",
                    field="outputs",
                )
        order = _topological(self.nodes, index)
        object.__setattr__(self, "nodes", order)

    # -- reading ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def node(self, name: str) -> Node:
        try:
            return self._index[name]
        except KeyError:
            raise InvalidArgument(
                f"pipeline {self.name!r} has no step {name!r}; it has {', '.join(self._index)}",
                field="step",
            ) from None

    def downstream(self) -> dict[str, list[str]]:
        """Each node's direct consumers."""
        children: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for node in self.nodes:
            for parent in node.upstream:
                children[parent].append(node.name)
        return children

    # -- composing -------------------------------------------------------------

    def __add__(self, other: Pipeline) -> Pipeline:
        if not isinstance(other, Pipeline):
            return NotImplemented
        nodes = {n.name: n for n in self.nodes}
        for node in other.nodes:
            mine = nodes.get(node.name)
            if mine is not None and mine != node:
                raise InvalidArgument(
                    f"both pipelines have a step {node.name!r} but with different inputs",
                    field=node.name,
                )
            nodes[node.name] = node
        params = {p.name: p for p in self.params}
        for p in other.params:
            if p.name in params and params[p.name] != p:
                raise InvalidArgument(
                    f"both pipelines have parameter {p.name!r} with different defaults or types",
                    field=p.name,
                )
            params.setdefault(p.name, p)
        outputs = tuple(dict.fromkeys((*self.outputs, *other.outputs)))
        return Pipeline(f"{self.name}+{other.name}", tuple(nodes.values()), tuple(params.values()), outputs)

    def only(self, *names: str) -> Pipeline:
        """Just the named steps (their inputs must still be inside)."""
        for name in names:
            self.node(name)
        return self._subset(set(names), "only")

    def upstream_of(self, *names: str) -> Pipeline:
        """The named steps and everything they depend on."""
        keep: set[str] = set()
        stack = [self.node(n).name for n in names]
        while stack:
            name = stack.pop()
            if name not in keep:
                keep.add(name)
                stack.extend(self._index[name].upstream)
        return self._subset(keep, "upstream_of")

    def downstream_of(self, *names: str) -> Pipeline:
        """The named steps and everything that depends on them (inputs must be bound)."""
        children = self.downstream()
        keep: set[str] = set()
        stack = [self.node(n).name for n in names]
        while stack:
            name = stack.pop()
            if name not in keep:
                keep.add(name)
                stack.extend(children[name])
        return self._subset(keep, "downstream_of")

    def _subset(self, keep: set[str], how: str) -> Pipeline:
        nodes = tuple(n for n in self.nodes if n.name in keep)
        used = {b.name for n in nodes for _, b in n.inputs if isinstance(b, ParamRef)}
        return Pipeline(
            self.name,
            nodes,
            tuple(p for p in self.params if p.name in used),
            tuple(o for o in self.outputs if o.node in keep),
            self.source,
        )

    # -- showing ---------------------------------------------------------------

    def graph(self, format: str = "text") -> str:
        """The DAG as ``text``, ``mermaid`` or ``dot``."""
        from conveyor.pipelines.render import render

        return render(self, format)

    # -- running ---------------------------------------------------------------

    def run(
        self,
        *,
        executor: Any = None,
        no_cache: bool = False,
        project: str | None = None,
        **params: Any,
    ) -> Any:
        """Run every step and return a :class:`~conveyor.pipelines.results.PipelineRun`.

        Args:
            executor: ``"process"`` (default), ``"inprocess"``, ``"ray"``,
                ``"ray://host:port"`` or an object with the executor protocol.
            no_cache: run every step even when a cached result exists.
            project: the project the runs are recorded in (default: the current one).
            **params: the pipeline's parameters (JSON-serialisable).
        """
        from conveyor.pipelines.launch import run_pipeline

        return run_pipeline(self, params, executor=executor, no_cache=no_cache, project=project)

    def sweep(
        self,
        *,
        order_by: str | None = None,
        executor: Any = None,
        no_cache: bool = False,
        project: str | None = None,
        **grid: Any,
    ) -> list[Any]:
        """Run the grid of parameter values; a list value is swept, anything else is fixed.

        Trials run side by side on one executor and share cached upstream steps.
        ``order_by`` like ``"metrics.rmse"`` or ``"metrics.r2 DESC"`` sorts the returned runs.
        """
        from conveyor.pipelines.launch import sweep_pipeline

        return sweep_pipeline(
            self, grid, order_by=order_by, executor=executor, no_cache=no_cache, project=project
        )

    def resume(self, run_id: str, *, executor: Any = None) -> Any:
        """Run again the steps of ``run_id`` that failed or never ran."""
        from conveyor.pipelines.launch import resume_pipeline

        return resume_pipeline(run_id, pipeline=self, executor=executor)


def _topological(nodes: Sequence[Node], index: Mapping[str, Node]) -> tuple[Node, ...]:
    """Nodes ordered so each comes after its inputs (stable); a cycle is an error."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    order: list[Node] = []
    for start in nodes:
        if state.get(start.name):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start.name, iter(start.upstream))]
        state[start.name] = 1
        path = [start.name]
        while stack:
            name, parents = stack[-1]
            parent = next(parents, None)
            if parent is None:
                stack.pop()
                path.pop()
                state[name] = 2
                order.append(index[name])
            elif state.get(parent) == 1:
                cycle = [*path[path.index(parent) :], parent]
                raise InvalidArgument(
                    f"the steps form a cycle: {' -> '.join(reversed(cycle))}", field=parent
                )
            elif not state.get(parent):
                state[parent] = 1
                path.append(parent)
                stack.append((parent, iter(index[parent].upstream)))
    return tuple(order)


# ---------------------------------------------------------------- @pipeline


def pipeline(fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Trace ``fn`` once into a :class:`Pipeline`.

    The function's parameters become the pipeline's parameters; inside it, only
    step calls happen (its body runs once, at decoration, with placeholders).
    What it returns (a step output or a tuple of them) becomes the run's outputs.
    """

    def build(f: Callable[..., Any]) -> Pipeline:
        try:
            hints = typing.get_type_hints(f)
        except Exception:  # unresolved names: check nothing
            hints = {}
        params: list[Param] = []
        for p in inspect.signature(f).parameters.values():
            if p.name in _RESERVED:
                raise InvalidArgument(
                    f"pipeline {f.__name__!r}: parameter name {p.name!r} is reserved by "
                    f"run()/sweep() ({', '.join(_RESERVED)}); rename it",
                    field=p.name,
                )
            if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise InvalidArgument(
                    f"pipeline {f.__name__!r}: *args/**kwargs are not supported", field=p.name
                )
            annotation = hints.get(p.name, Any)
            if p.default is not _NO_DEFAULT:
                check_value(p.default, annotation, f"{f.__name__}.{p.name}")
                canonical_json(p.default, f"{f.__name__}.{p.name}")
            params.append(Param(p.name, annotation, p.default))
        tracer, result = trace(f, {p.name: ParamHandle(p.name, p.annotation) for p in params})
        outputs = _outputs_of(result, f.__name__)
        file = inspect.getsourcefile(f)
        return Pipeline(
            name or f.__name__,
            tuple(tracer.nodes),
            tuple(params),
            outputs,
            PipelineSource(f.__module__, f.__qualname__, file),
        )

    return build(fn) if fn is not None else build


def _outputs_of(result: Any, name: str) -> tuple[OutputRef, ...]:
    if result is None:
        return ()
    items = result if isinstance(result, tuple | list) else (result,)
    refs = []
    for item in items:
        if not isinstance(item, Handle):
            raise InvalidArgument(
                f"pipeline {name!r} may return step outputs (or a tuple of them), "
                f"not {type(item).__name__}",
                field="return",
            )
        refs.append(OutputRef(item.node, item.index))
    return tuple(refs)
