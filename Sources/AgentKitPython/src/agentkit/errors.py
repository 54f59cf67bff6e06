"""Errors: one exception class per kernel error code (PROTOCOL.md §8).

Every error the kernel sends is raised as an `AgentOSError` (or a subclass
chosen by its code), carrying `code` (the number), `name` (e.g.
"NOT_FOUND"), `message` (one line for people) and `detail` (a dict for
programs, e.g. {"reason": "mailbox-full"}). Codes this version does not know
are raised as `AgentOSError` itself: switch on `code`, not on the class, when
you need to be exhaustive.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Type


class AgentOSError(Exception):
    """An error frame from the kernel, or a failure of the connection."""

    code: int = 0
    name: str = "UNSPECIFIED"

    def __init__(self, code: Optional[int] = None, name: Optional[str] = None, message: str = "",
                 detail: Optional[Mapping[str, str]] = None):
        super().__init__(message)
        if code is not None:
            self.code = int(code)
        if name is not None:
            self.name = name
        self.message = message
        self.detail: Dict[str, str] = dict(detail or {})

    def __str__(self) -> str:
        # Errors of the kernel show their code's name; local ones (code 0) just say what happened.
        text = self.message or self.name
        if self.code and self.message and not isinstance(self, ConnectionClosed):
            text = f"{self.name}: {self.message}"
        if self.detail:
            text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(self.detail.items())) + ")"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, name={self.name!r}, message={self.message!r}, detail={self.detail!r})"

    def __reduce__(self):
        return (_rebuild, (type(self), self.code, self.name, self.message, self.detail))


def _rebuild(cls, code, name, message, detail):
    return cls(code, name, message, detail)


class ConnectionClosed(AgentOSError, ConnectionError):
    """The connection to the kernel is gone (the kernel stopped, closed it
    after a connection-level error, sent a frame over the size limit, or this
    process closed it). Every call in flight fails with it, and so does every
    call made afterwards. `code` is the connection-level error's code when the
    kernel sent one (e.g. 2 MALFORMED_FRAME), else 0."""

    name = "CONNECTION_CLOSED"


class FrameTooLarge(AgentOSError):
    code, name = 1, "FRAME_TOO_LARGE"


class MalformedFrame(AgentOSError):
    code, name = 2, "MALFORMED_FRAME"


class HandshakeRequired(AgentOSError):
    code, name = 3, "HANDSHAKE_REQUIRED"


class VersionMismatch(AgentOSError):
    """No common protocol version; detail has kernel_min and kernel_max."""
    code, name = 4, "VERSION_MISMATCH"


class HandshakeTimeout(AgentOSError):
    code, name = 5, "HANDSHAKE_TIMEOUT"


class SlowConsumer(AgentOSError):
    """A stream (receive, subscribe) fell too far behind and was ended; the
    connection stays. Receive again: what was not acked waits."""
    code, name = 6, "SLOW_CONSUMER"


class UnknownMessage(AgentOSError):
    code, name = 20, "UNKNOWN_MESSAGE"


class InvalidArgument(AgentOSError):
    code, name = 21, "INVALID_ARGUMENT"


class PermissionDenied(AgentOSError):
    """The call needs a capability the agent does not hold (or a role)."""
    code, name = 22, "PERMISSION_DENIED"


class NotFound(AgentOSError):
    code, name = 23, "NOT_FOUND"


class Ambiguous(AgentOSError):
    code, name = 24, "AMBIGUOUS"


class AlreadyExists(AgentOSError):
    code, name = 25, "ALREADY_EXISTS"


class ProgramNotFound(AgentOSError):
    code, name = 26, "PROGRAM_NOT_FOUND"


class ProgramNotExecutable(AgentOSError):
    code, name = 27, "PROGRAM_NOT_EXECUTABLE"


class SpawnFailed(AgentOSError):
    code, name = 28, "SPAWN_FAILED"


class NotRunning(AgentOSError):
    code, name = 29, "NOT_RUNNING"


class ShuttingDown(AgentOSError):
    code, name = 30, "SHUTTING_DOWN"


class Internal(AgentOSError):
    code, name = 31, "INTERNAL"


class DuplicateRequestId(AgentOSError):
    code, name = 32, "DUPLICATE_REQUEST_ID"


class Unsupported(AgentOSError):
    code, name = 33, "UNSUPPORTED"


class InvalidPolicy(AgentOSError):
    code, name = 34, "INVALID_POLICY"


class Conflict(AgentOSError):
    """The state forbids it; detail["reason"] says why (mailbox-full, timeout, ...)."""
    code, name = 35, "CONFLICT"


class ResourceExhausted(AgentOSError):
    """A quota or budget is spent (e.g. the memory quota); detail["reason"]."""
    code, name = 36, "RESOURCE_EXHAUSTED"


class ModelFailed(AgentOSError):
    """A model provider failed the call after the kernel's retries;
    detail["reason"]: rate_limited, overloaded, context_too_long,
    bad_response, timeout, unreachable, authentication, ...; detail["status"]
    the provider's HTTP status when there was one."""
    code, name = 37, "MODEL_FAILED"


class RequestTimeout(Conflict, TimeoutError):
    """`request()` got no response in time (the kernel's CONFLICT with
    detail reason "timeout"). It is both a `Conflict` and a `TimeoutError`."""


_BY_CODE: Dict[int, Type[AgentOSError]] = {
    cls.code: cls for cls in (
        FrameTooLarge, MalformedFrame, HandshakeRequired, VersionMismatch, HandshakeTimeout, SlowConsumer,
        UnknownMessage, InvalidArgument, PermissionDenied, NotFound, Ambiguous, AlreadyExists, ProgramNotFound,
        ProgramNotExecutable, SpawnFailed, NotRunning, ShuttingDown, Internal, DuplicateRequestId, Unsupported,
        InvalidPolicy, Conflict, ResourceExhausted, ModelFailed,
    )
}


def error_class(code: int) -> Type[AgentOSError]:
    """The exception class for an error code (AgentOSError when unknown)."""
    return _BY_CODE.get(int(code), AgentOSError)


def code_name(code: int) -> str:
    """The code's name without the ERROR_CODE_ prefix, e.g. 23 -> "NOT_FOUND"."""
    from ._proto import pb
    try:
        return pb.ErrorCode.Name(int(code))[len("ERROR_CODE_"):]
    except ValueError:
        cls = _BY_CODE.get(int(code))
        return cls.name if cls else f"CODE_{int(code)}"


def from_frame(error) -> AgentOSError:
    """The exception for an `agentos.v1.Error` message."""
    code = int(error.code)
    detail = dict(error.detail)
    cls = error_class(code)
    if cls is Conflict and detail.get("reason") == "timeout":
        cls = RequestTimeout
    return cls(code, code_name(code), error.message, detail)
