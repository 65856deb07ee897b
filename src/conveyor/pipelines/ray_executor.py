"""Steps as Ray tasks: ``executor="ray"`` (local or ``RAY_ADDRESS``) or ``"ray://host:port"``.

Each step becomes one Ray task with the step's declared resources. Only the
small :class:`~conveyor.pipelines.worker.StepTask` travels through Ray; inputs
and outputs go through the artifact store, never through the driver. Ray's own
task retries are off: the runner retries, so attempts are counted and recorded.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar
from urllib.parse import urlsplit

from conveyor.core.errors import BackendUnavailable, InvalidArgument, MissingExtra
from conveyor.pipelines.executors import WorkerLost

T = TypeVar("T")
CONNECT_TIMEOUT = 3.0  # seconds to reach a ray:// address before giving up


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtra(
            "Ray is not installed; install it with: pip install 'conveyor-mlops[ray]'"
        ) from None
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT, *, field: str = "executor") -> None:
    """Fail in seconds, not minutes, when nothing listens at a ``ray://`` address."""
    parts = urlsplit(address)
    try:
        host, port = parts.hostname, parts.port or 10001
    except ValueError:
        raise InvalidArgument(f"{address!r} is not a ray://host:port address", field=field) from None
    if not host:
        raise InvalidArgument(f"{address!r} is not a ray://host:port address", field=field)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise BackendUnavailable(
            f"cannot reach the Ray cluster at {address}: {exc}; check the address and that "
            "the Ray head runs with its client server (ray start --head --ray-client-server-port)"
        ) from None


def connect(spec: str, *, field: str = "executor") -> Any:
    """The ``ray`` module, connected to ``spec`` (a ``ray://`` address) or else local Ray / ``RAY_ADDRESS``."""
    ray = _import_ray()
    address = spec if spec.startswith("ray://") else None
    if address is not None:
        check_reachable(address, field=field)
    if not ray.is_initialized():
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            if address is not None:
                ray.init(address=address, runtime_env={"env_vars": env})
            else:
                ray.init(include_dashboard=False, runtime_env={"env_vars": env})
        except ConnectionError as exc:
            raise BackendUnavailable(f"cannot connect to Ray at {address or 'local'}: {exc}") from None
    return ray


def open_ray_executor(spec: str) -> RayExecutor:
    """Connect to (or start) Ray for ``spec`` and return an executor over it."""
    return RayExecutor(connect(spec))


class RayExecutor:
    """Runs each call as a Ray task; ``resources`` maps cpus/gpus/memory onto Ray's options."""

    def __init__(self, ray: Any) -> None:
        self._ray = ray
        self._remote: dict[Callable[..., Any], Any] = {}
        totals = ray.cluster_resources()
        self._capacity = {"cpus": totals.get("CPU", 0.0), "gpus": totals.get("GPU", 0.0)}
        self.max_workers = max(1, int(self._capacity["cpus"]))

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Mapping[str, float] | None = None, **kwargs: Any
    ) -> Future[T]:
        wanted = dict(resources or {})
        for key in ("cpus", "gpus"):
            if wanted.get(key, 0) > self._capacity[key]:
                raise InvalidArgument(
                    f"the step asks for {wanted[key]:g} {key} but the Ray cluster has "
                    f"{self._capacity[key]:g}; it could never be scheduled",
                    field="resources",
                )
        options: dict[str, Any] = {
            "num_cpus": wanted.get("cpus", 1),
            "num_gpus": wanted.get("gpus", 0),
            "max_retries": 0,
        }
        if wanted.get("memory"):
            options["memory"] = int(wanted["memory"])
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(fn)
        ref = remote.options(**options).remote(*args, **kwargs)
        inner = ref.future()
        outer: Future[T] = Future()

        def relay(done: Future[Any]) -> None:
            exc = done.exception()
            if exc is None:
                outer.set_result(done.result())
            elif type(exc).__name__ in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError"):
                outer.set_exception(WorkerLost(f"the Ray worker died: {exc}"))
            else:
                outer.set_exception(exc)

        inner.add_done_callback(relay)
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None  # Ray stays up for the next run; ray.shutdown() is the owner's call
