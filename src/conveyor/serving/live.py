"""The model version a deployment serves now, following its alias.

A :class:`LiveModel` resolves ``models:/NAME@champion`` (or a fixed version),
loads it (hashes verified before anything is unpickled), and, when it follows
an alias, checks the registry every ``poll`` seconds. When the alias has moved
(a promotion or a rollback) the new version is loaded on a background thread
and swapped in with one assignment: requests already running finish on the
version they started with, new ones get the new version, none fail.

A version that cannot be loaded (files missing or tampered, flavour not
installed) is refused with a log line, and the previous version keeps serving.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from conveyor.core.errors import NotFound
from conveyor.registry.service import ModelRegistry, parse_model_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """One loaded version: what a request predicts with from start to end."""

    name: str
    version: int
    model: Any  # registry LoadedModel: .predict(df), .signature, .metadata
    run_id: str | None
    info: dict[str, Any]


class Poller:
    """Calls :meth:`refresh` every ``poll`` seconds on a daemon thread, from :meth:`follow` to :meth:`stop`."""

    poll: float
    thread_name = "conveyor-poll"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> Any:
        raise NotImplementedError

    def polls(self) -> bool:
        """Whether there is anything to poll for."""
        return self.poll > 0

    def follow(self) -> None:
        if self._thread is not None or not self.polls():
            return
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class LiveModel(Poller):
    def __init__(self, registry: ModelRegistry, uri: str, *, poll: float = 5.0, weight_tag: str | None = None) -> None:
        super().__init__()
        self.registry = registry
        self.uri = uri
        self.name, ref = parse_model_uri(uri)
        self.follows = None if ref.isdigit() else ref  # an alias or "latest"
        self.poll = poll
        #: a model tag read on every check (the canary's share, set by an automation), and its value
        self.weight_tag = weight_tag
        self.weight: float | None = None
        self.current: Loaded | None = None
        self.last_error: str | None = None
        self.thread_name = f"conveyor-follow-{self.name}"
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.current is not None

    def refresh(self) -> bool:
        """Load the version the URI points to now, if it changed; True when swapped."""
        with self._lock:
            if self.weight_tag is not None:
                self.weight = self._read_weight()
            try:
                mv = self.registry.resolve(self.uri)
            except NotFound as exc:  # e.g. no challenger yet: normal between rollouts, said quietly
                self._failed(f"cannot resolve {self.uri}: {exc}", level=logging.INFO)
                return False
            except Exception as exc:
                self._failed(f"cannot resolve {self.uri}: {exc}")
                return False
            if self.current is not None and self.current.version == mv.version:
                return False
            try:
                model = self.registry.load(mv)
            except Exception as exc:  # tampered, missing, flavour not installed
                self._failed(f"{mv.uri} was not loaded: {exc}")
                return False
            previous = self.current
            self.current = Loaded(mv.name, mv.version, model, mv.run_id, dict(mv.info))
            self.last_error = None
        if previous is not None:
            log.warning("%s now serves version %d (was %d)", self.uri, mv.version, previous.version)
        return True

    def _read_weight(self) -> float | None:
        """The tag as a share in [0, 1]; ``None`` when absent or not a share (said once)."""
        assert self.weight_tag is not None
        try:
            text = self.registry.get_model(self.name).tags.get(self.weight_tag)
            value = float(text) if text is not None else None
        except NotFound:
            return None
        except ValueError:
            value = -1.0
        if value is not None and not 0.0 <= value <= 1.0:
            self._failed(f"tag {self.weight_tag} of {self.name} is not a share in [0, 1]; the canary gets no traffic",
                         level=logging.WARNING)
            return None
        return value

    def _failed(self, message: str, level: int = logging.ERROR) -> None:
        if message == self.last_error:
            return  # said once per problem, not once per poll
        self.last_error = message
        keeping = f"; still serving version {self.current.version}" if self.current else ""
        log.log(level, "%s%s", message, keeping)

    def polls(self) -> bool:
        """Check the alias every ``poll`` seconds (nothing to check for a fixed version, or with ``poll`` 0)."""
        return self.follows is not None and self.poll > 0
