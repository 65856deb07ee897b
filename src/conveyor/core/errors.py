"""One error tree for all of Conveyor.

Every error a user can meet derives from :class:`ConveyorError` and knows the
HTTP status a server answers with and the exit code the CLI ends with. Where an
error resembles a builtin it subclasses that too, so ``except ValueError`` in
user code keeps working::

    ConveyorError
    ├── InvalidArgument (ValueError)           400 / exit 2
    │   ├── FilterSyntaxError                  400 / exit 2
    │   ├── UnsafePath                         400 / exit 2
    │   ├── ImmutableValue                     409 / exit 2
    │   └── PayloadTooLarge                    413 / exit 2
    ├── Unauthenticated (PermissionError)      401 / exit 8
    ├── PermissionDenied (PermissionError)     403 / exit 8
    ├── NotFound (LookupError)                 404 / exit 3
    ├── AlreadyExists                          409 / exit 2
    ├── InvalidState                           409 / exit 2
    │   ├── GateFailed                         409 / exit 8
    │   └── LeaseLost                          409 / exit 2
    ├── DataValidationFailed                   422 / exit 1
    ├── ArtifactCorrupted                      500 / exit 4
    ├── SchemaOutOfDate                        503 / exit 5
    ├── MissingExtra (ImportError)             501 / exit 6
    └── BackendUnavailable (ConnectionError)   503 / exit 7

Messages say what went wrong and what to do next.
"""

from __future__ import annotations

from typing import Any


class ConveyorWarning(UserWarning):
    """A warning raised by Conveyor; tests turn these into errors."""


def error_body(code: str, message: str, field: str | None = None, **details: Any) -> dict[str, Any]:
    """The JSON body of every Conveyor HTTP error: ``{"error": {"code", "message", "field", ...}}``."""
    error: dict[str, Any] = {"code": code, "message": message, "field": field}
    error.update(details)
    return {"error": error}


class ConveyorError(Exception):
    """Base of every Conveyor error."""

    http_status: int = 500
    exit_code: int = 1
    code: str = "CONVEYOR_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def details(self) -> dict[str, Any]:
        """What this error adds to its JSON body besides code, message and field."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body a server answers with: ``{"error": {"code", "message", "field", ...}}``."""
        return error_body(self.code, self.message, self.field, **self.details())


class InvalidArgument(ConveyorError, ValueError):
    """A value given by the caller is not acceptable; nothing was changed."""

    http_status = 400
    exit_code = 2
    code = "INVALID_ARGUMENT"


class FilterSyntaxError(InvalidArgument):
    """A search filter could not be parsed; the message gives the position."""

    code = "BAD_FILTER"

    def __init__(self, message: str, *, position: int, text: str) -> None:
        pointer = f"\n  {text}\n  {' ' * position}^"
        super().__init__(f"{message} (at position {position}){pointer}", field="filter")
        self.position = position
        self.text = text

    def details(self) -> dict[str, Any]:
        return {"position": self.position, "text": self.text}


class UnsafePath(InvalidArgument):
    """A path would escape its root (``..``, absolute path, symlink out)."""

    code = "UNSAFE_PATH"


class ImmutableValue(InvalidArgument):
    """An attempt to change something that is immutable once written (a param)."""

    http_status = 409
    code = "IMMUTABLE"


class PayloadTooLarge(InvalidArgument):
    """A request body is bigger than the server accepts."""

    http_status = 413
    code = "PAYLOAD_TOO_LARGE"


class Unauthenticated(ConveyorError, PermissionError):
    """No valid credentials: the token is missing, unknown, expired or revoked."""

    http_status = 401
    exit_code = 8
    code = "UNAUTHENTICATED"


class PermissionDenied(ConveyorError, PermissionError):
    """The caller is known but lacks the role this needs."""

    http_status = 403
    exit_code = 8
    code = "PERMISSION_DENIED"


class NotFound(ConveyorError, LookupError):
    """The named record does not exist."""

    http_status = 404
    exit_code = 3
    code = "NOT_FOUND"


class AlreadyExists(ConveyorError):
    """A record with this identity already exists."""

    http_status = 409
    exit_code = 2
    code = "ALREADY_EXISTS"


class InvalidState(ConveyorError):
    """The operation is not allowed in the record's current state."""

    http_status = 409
    exit_code = 2
    code = "INVALID_STATE"


class DataValidationFailed(ConveyorError):
    """Data failed the checks of a validation suite; ``report`` says which and why.

    Exit code 1, as a failed test run: the CLI's ``data validate`` and pipeline gates
    stop on it.
    """

    http_status = 422
    exit_code = 1
    code = "DATA_VALIDATION_FAILED"

    def __init__(self, message: str, *, report: Any) -> None:
        super().__init__(message, field="data")
        self.report = report

    def details(self) -> dict[str, Any]:
        to_dict = getattr(self.report, "to_dict", None)
        return {"report": to_dict()} if callable(to_dict) else {}
class GateFailed(InvalidState):
    """A promotion gate refused to move an alias; ``report`` holds every check."""

    exit_code = 8
    code = "GATE_FAILED"

    def __init__(self, message: str, *, report: dict[str, object]) -> None:
        super().__init__(message, field="gate")
        self.report = report

    def details(self) -> dict[str, Any]:
        return {"report": self.report}


class LeaseLost(InvalidState):
    """The agent lease named in a write is held by someone else now; nothing was written."""

    code = "LEASE_LOST"


class ArtifactCorrupted(ConveyorError):
    """Stored bytes do not match their content hash: tampered or truncated."""

    http_status = 500
    exit_code = 4
    code = "ARTIFACT_CORRUPTED"


class SchemaOutOfDate(ConveyorError):
    """The metadata database is older than this version of Conveyor."""

    http_status = 503
    exit_code = 5
    code = "SCHEMA_OUT_OF_DATE"


class MissingExtra(ConveyorError, ImportError):
    """A backend needs an optional dependency that is not installed."""

    http_status = 501
    exit_code = 6
    code = "MISSING_EXTRA"


class BackendUnavailable(ConveyorError, ConnectionError):
    """A database, object store or server could not be reached."""

    http_status = 503
    exit_code = 7
    code = "BACKEND_UNAVAILABLE"
