"""What runs where a step runs: in this process, a pool worker or a Ray task.

:func:`execute_step` is the one function every executor calls. It loads the
step by reference (module and name, or the file it was defined in), reads its
inputs from the artifact store, makes the step's child run the active run (so
``cv.log_metric`` inside the step just works), captures stdout/stderr, enforces
the timeout, checks and stores the outputs, and only then publishes the cache
entry. Nothing it returns is trusted by the runner without the run's status:
a worker that dies mid-step never reaches the line that marks the run finished.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.entities import Run, RunStatus
from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.core.ids import now_ms
from conveyor.pipelines.serializers import StoredValue, by_name, dump
from conveyor.pipelines.steps import Step

OUTPUTS_TAG = "conveyor.step.outputs"
CACHE_ENTRY_TAG = "conveyor.cache.entry"
ATTEMPTS_TAG = "conveyor.step.attempts"


class StepTimeout(Exception):
    """An attempt ran longer than the step's ``timeout``."""


@dataclass(frozen=True)
class StepRef:
    """Where to find a step: its module and qualified name, and the file as a fallback."""

    module: str
    qualname: str
    file: str | None = None

    @classmethod
    def of(cls, step: Step) -> StepRef:
        import inspect

        try:
            file = inspect.getsourcefile(step.fn)
        except TypeError:
            file = None
        return cls(step.module, step.qualname, file)


@dataclass(frozen=True)
class StepTask:
    """Everything a worker needs to run one attempt of one step; small and picklable."""

    ref: StepRef
    node: str
    run_id: str
    metadata_uri: str
    artifacts_uri: str
    inputs: Mapping[str, StoredValue]
    params: Mapping[str, Any]
    cache_key: str
    publish: bool  # write the cache entry when the outputs are stored
    timeout: float | None = None
    attempt: int = 1
    run: Run | None = None  # the step's run as the runner created it: attached, not resumed


@dataclass(frozen=True)
class StepOutcome:
    """What came back from a worker."""

    ok: bool
    outputs: tuple[StoredValue, ...] = ()
    error: str = ""
    traceback: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    started: int = 0
    ended: int = 0


def resolve_step(ref: StepRef) -> Step:
    """Import the step named by ``ref``; load its file when the module is not importable."""
    module = sys.modules.get(ref.module)
    if module is None:
        try:
            module = importlib.import_module(ref.module)
        except ImportError:
            if not ref.file:
                raise
            spec = importlib.util.spec_from_file_location(ref.module, ref.file)
            if spec is None or spec.loader is None:
                raise NotFound(f"cannot load step {ref.qualname!r} from {ref.file!r}") from None
            module = importlib.util.module_from_spec(spec)
            sys.modules[ref.module] = module
            spec.loader.exec_module(module)
    obj: Any = module
    for part in ref.qualname.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, Step):
        raise NotFound(
            f"{ref.module}.{ref.qualname} is not a @step; steps must be defined at module level"
        )
    return obj


def _configure(metadata_uri: str, artifacts_uri: str) -> None:
    from conveyor.core.settings import get_settings
    from conveyor.tracking import fluent

    settings = get_settings()
    if settings.metadata_uri != metadata_uri or settings.artifacts_uri != artifacts_uri:
        fluent.configure(uri=metadata_uri, artifacts=artifacts_uri)


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`StepTimeout` in this thread after ``seconds`` (main thread only)."""
    usable = seconds and threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise StepTimeout(f"the step ran longer than its timeout of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    outer, _ = signal.setitimer(signal.ITIMER_REAL, float(seconds or 0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # someone else's alarm (e.g. pytest-timeout) was pending: give it back
            left = outer - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def load_value(content: Any, stored: StoredValue) -> Any:
    """Read an output back (hash verified by the content store)."""
    return by_name(stored.serializer).load(content.get_bytes(stored.digest))


def split_outputs(step: Step, node: str, value: Any) -> list[Any]:
    """The step's return value as a list of outputs, each checked against its annotation."""
    from conveyor.pipelines.graph import check_value

    types_ = step.output_types
    if len(types_) == 1 and step.options.outputs is None:
        values = [value]
    else:
        if not isinstance(value, tuple | list) or len(value) != len(types_):
            got = f"{len(value)} values" if isinstance(value, tuple | list) else type(value).__name__
            raise InvalidArgument(
                f"step {node!r} must return {len(types_)} values, returned {got}", field=node
            )
        values = list(value)
    for i, (item, expected) in enumerate(zip(values, types_, strict=True)):
        where = f"{node} output" if len(values) == 1 else f"{node} output {i}"
        check_value(item, expected, where)
    return values


def store_outputs(content: Any, node: str, values: list[Any]) -> tuple[StoredValue, ...]:
    stored = []
    for i, value in enumerate(values):
        where = f"output {i} of step {node!r}" if len(values) > 1 else f"output of step {node!r}"
        name, data = dump(value, where)
        digest = content.put_bytes(data)
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        stored.append(StoredValue(digest, name, len(data), kind))
    return tuple(stored)


def encode_outputs(outputs: tuple[StoredValue, ...]) -> str:
    return json.dumps([[o.digest, o.serializer, o.size, o.type] for o in outputs], separators=(",", ":"))


def decode_outputs(text: str) -> tuple[StoredValue, ...]:
    return tuple(StoredValue(*item) for item in json.loads(text))


def execute_step(task: StepTask) -> StepOutcome:
    """Run one attempt of one step; never raises for a failure of the step itself."""
    started = now_ms()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outputs = _execute(task)
            ok, error, tb = True, "", ""
        except BaseException as exc:  # the user's code may raise anything, SystemExit included
            if isinstance(exc, KeyboardInterrupt):
                raise
            ok, outputs, error = False, (), f"{type(exc).__name__}: {exc}"
            tb = traceback.format_exc()
    messages = tuple(str(w.message) for w in caught if issubclass(w.category, UserWarning))
    return StepOutcome(ok, outputs, error, tb, messages, started, now_ms())


def _execute(task: StepTask) -> tuple[StoredValue, ...]:
    from conveyor.tracking import fluent

    _configure(task.metadata_uri, task.artifacts_uri)
    step = resolve_step(task.ref)
    content = fluent.client().content
    kwargs = dict(task.params)
    for name, item in task.inputs.items():
        kwargs[name] = load_value(content, item)
    out, err = io.StringIO(), io.StringIO()
    # A fresh run is RUNNING already: attach it. A retry resumes the run its last attempt ended.
    if task.run is not None and task.attempt == 1:
        active = fluent.attach_run(task.run)
    else:
        active = fluent.start_run(run_id=task.run_id, nested=True)
    with active:  # an exception ends the run FAILED (KILLED for Ctrl-C)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _deadline(task.timeout):
                value = step.fn(**kwargs)
        finally:
            for name, text in (("stdout", out.getvalue()), ("stderr", err.getvalue())):
                if text:
                    fluent.log_text(text, f"logs/{name}-attempt{task.attempt}.txt", run_id=task.run_id)
        values = split_outputs(step, task.node, value)
        stored = store_outputs(content, task.node, values)
        tags = {OUTPUTS_TAG: encode_outputs(stored), ATTEMPTS_TAG: str(task.attempt)}
        if task.publish:
            tags[CACHE_ENTRY_TAG] = task.cache_key
        # Outputs, cache entry, lineage and FINISHED in one transaction: none exists without the others.
        fluent.finish_run(
            RunStatus.FINISHED, run_id=task.run_id, tags=tags,
            inputs=[("artifact", d) for d in dict.fromkeys(v.digest for v in task.inputs.values())],
            outputs=[("artifact", d) for d in dict.fromkeys(v.digest for v in stored)],
        )
    return stored
