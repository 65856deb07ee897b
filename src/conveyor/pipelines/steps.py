"""Steps: plain functions that a pipeline wires together.

``@step`` wraps a function in a :class:`Step`. Called outside a pipeline it is
the function itself (handy in unit tests); called while a ``@pipeline`` function
is traced it runs nothing and records an invocation, returning handles that
stand for its future outputs::

    @step(retries=2, timeout="10m")
    def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]: ...

    tr, va = split(df)        # inside a pipeline: two handles, one per output
"""

from __future__ import annotations

import contextvars
import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from conveyor.core.errors import InvalidArgument

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_RESOURCE_KEYS = ("cpus", "gpus", "memory")


def parse_duration(value: float | int | str | None, field: str = "timeout") -> float | None:
    """Seconds from ``30``, ``"30s"``, ``"10m"``, ``"1.5h"`` or ``"250ms"``; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidArgument(f"{field} must be seconds or text like '10m'", field=field)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise InvalidArgument(
                f"{field} {value!r} is not a duration; write seconds or e.g. '90s', '10m', '2h'",
                field=field,
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidArgument(f"{field} must be positive, got {value!r}", field=field)
    return seconds


@dataclass(frozen=True)
class StepOptions:
    """How the runner treats a step; policy, never mechanism."""

    cache: bool = True
    retries: int = 0
    retry_delay: float = 1.0  # seconds before the first retry; doubles each time
    timeout: float | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # parameters naming files whose content goes into the cache key
    outputs: int | None = None  # number of outputs when the annotation does not say


class Step:
    """A function with runner options; see :func:`step`."""

    def __init__(self, fn: Callable[..., Any], options: StepOptions) -> None:
        if not inspect.isfunction(fn):
            raise InvalidArgument(f"@step needs a plain function, got {type(fn).__name__}", field="fn")
        self.fn = fn
        self.options = options
        self.name = fn.__name__
        self.module = fn.__module__
        self.qualname = fn.__qualname__
        self.signature = inspect.signature(fn)
        for name in options.files:
            if name not in self.signature.parameters:
                raise InvalidArgument(
                    f"step {self.name!r}: files= names {name!r}, which is not a parameter",
                    field="files",
                )
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self._hints: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<Step {self.module}.{self.qualname}>"

    @property
    def hints(self) -> dict[str, Any]:
        """Resolved annotations; empty when they cannot be resolved (then nothing is checked)."""
        if self._hints is None:
            try:
                self._hints = typing.get_type_hints(self.fn)
            except Exception:  # a name only imported under TYPE_CHECKING: check nothing
                self._hints = {}
        return self._hints

    @property
    def output_types(self) -> tuple[Any, ...]:
        """One annotation per output (``Any`` where none is given)."""
        ret = self.hints.get("return", Any)
        if self.options.outputs is not None:
            args = typing.get_args(ret) if typing.get_origin(ret) is tuple else ()
            if len(args) == self.options.outputs and Ellipsis not in args:
                return tuple(args)
            return (Any,) * self.options.outputs
        if typing.get_origin(ret) is tuple:
            args = typing.get_args(ret)
            if args and Ellipsis not in args and args != ((),):
                return tuple(args)
        return (ret,)

    @property
    def n_outputs(self) -> int:
        return len(self.output_types)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tracer = _tracer.get()
        if tracer is None:
            return self.fn(*args, **kwargs)
        return tracer.record(self, args, kwargs)


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    cache: bool = True,
    retries: int = 0,
    retry_delay: float | str = 1.0,
    timeout: float | str | None = None,
    resources: Mapping[str, float] | None = None,
    files: Sequence[str] = (),
    outputs: int | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    cache: bool = True,
    retries: int = 0,
    retry_delay: float | str = 1.0,
    timeout: float | str | None = None,
    resources: Mapping[str, float] | None = None,
    files: Sequence[str] = (),
    outputs: int | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make ``fn`` a pipeline step.

    Args:
        cache: reuse earlier outputs when the cache key matches.
        retries: extra attempts after a failure (backoff starts at ``retry_delay``, doubling).
        retry_delay: seconds (or text like ``"2s"``) before the first retry.
        timeout: seconds or text like ``"10m"``; an attempt running longer fails.
        resources: ``{"cpus": 2, "gpus": 1, "memory": 2e9}``, honoured by the Ray executor.
        files: names of parameters that hold file paths; the files' content hashes go
            into the cache key, so editing the file invalidates the step.
        outputs: how many outputs the step returns as a tuple, when its return
            annotation is not a ``tuple[...]`` of fixed length.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidArgument(f"retries must be a whole number >= 0, got {retries!r}", field="retries")
    if outputs is not None and (isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1):
        raise InvalidArgument(f"outputs must be a whole number >= 1, got {outputs!r}", field="outputs")
    res = dict(resources or {})
    for key, value in res.items():
        if key not in _RESOURCE_KEYS:
            raise InvalidArgument(
                f"unknown resource {key!r}; expected one of {', '.join(_RESOURCE_KEYS)}",
                field="resources",
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidArgument(f"resource {key!r} must be a number >= 0", field="resources")
    delay = parse_duration(retry_delay, "retry_delay") if retry_delay not in (0, 0.0) else 0.0
    options = StepOptions(
        cache=bool(cache),
        retries=retries,
        retry_delay=delay or 0.0,
        timeout=parse_duration(timeout, "timeout"),
        resources=res,
        files=tuple(files),
        outputs=outputs,
    )
    if fn is not None:
        return Step(fn, options)
    return lambda f: Step(f, options)


# ----------------------------------------------------------------- tracing


@dataclass(frozen=True)
class Handle:
    """Stands for output ``index`` of node ``node`` while a pipeline is traced."""

    node: str
    index: int
    annotation: Any = Any

    def __bool__(self) -> bool:
        raise InvalidArgument(
            f"the output of step {self.node!r} is not known while the pipeline is traced; "
            "branch inside a step instead",
            field=self.node,
        )

    def __iter__(self) -> Any:
        raise InvalidArgument(
            f"step {self.node!r} has one output; annotate it as tuple[A, B] "
            "(or pass @step(outputs=N)) to unpack it",
            field=self.node,
        )


@dataclass(frozen=True)
class ParamHandle:
    """Stands for pipeline parameter ``name`` while a pipeline is traced."""

    name: str
    annotation: Any = Any

    def __bool__(self) -> bool:
        raise InvalidArgument(
            f"pipeline parameter {self.name!r} has no value while the pipeline is traced; "
            "pass it to a step and decide there",
            field=self.name,
        )


class Tracer:
    """Collects the step invocations of one pipeline function."""

    def __init__(self) -> None:
        from conveyor.pipelines.graph import Node

        self._node_cls = Node
        self.nodes: list[Any] = []
        self._names: dict[str, int] = {}

    def record(self, step_: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from conveyor.pipelines.graph import Const, OutputRef, ParamRef, check_compatible

        count = self._names.get(step_.name, 0) + 1
        self._names[step_.name] = count
        name = step_.name if count == 1 else f"{step_.name}_{count}"
        try:
            bound = step_.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgument(f"step {name!r}: {exc}", field=name) from None
        bound.apply_defaults()
        inputs: list[tuple[str, Any]] = []
        for pname, value in bound.arguments.items():
            kind = step_.signature.parameters[pname].kind
            if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise InvalidArgument(
                    f"step {name!r}: *args/**kwargs parameters are not supported in steps",
                    field=f"{name}.{pname}",
                )
            expected = step_.hints.get(pname, Any)
            where = f"{name}.{pname}"
            if isinstance(value, Handle):
                check_compatible(value.annotation, expected, where, f"output of {value.node!r}")
                inputs.append((pname, OutputRef(value.node, value.index)))
            elif isinstance(value, ParamHandle):
                check_compatible(value.annotation, expected, where, f"parameter {value.name!r}")
                inputs.append((pname, ParamRef(value.name)))
            elif isinstance(value, tuple) and any(isinstance(v, Handle) for v in value):
                raise InvalidArgument(
                    f"step {name!r}: argument {pname!r} is a tuple of outputs; unpack it first",
                    field=where,
                )
            else:
                inputs.append((pname, Const.of(value, where, expected)))
        node = self._node_cls(name=name, step=step_, inputs=tuple(inputs))
        self.nodes.append(node)
        types = step_.output_types
        handles = tuple(Handle(name, i, t) for i, t in enumerate(types))
        return handles if step_.options.outputs is not None or len(handles) > 1 else handles[0]


_tracer: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar("conveyor_tracer", default=None)


def trace(fn: Callable[..., Any], params: Mapping[str, ParamHandle]) -> tuple[Tracer, Any]:
    """Call ``fn`` with placeholder parameters and return the recorded nodes and its result."""
    tracer = Tracer()
    token = _tracer.set(tracer)
    try:
        result = fn(**params)
    finally:
        _tracer.reset(token)
    return tracer, result
