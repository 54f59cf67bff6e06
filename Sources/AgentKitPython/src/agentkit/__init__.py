"""agentkit: the Python SDK for agents run by Agent OS (agentd).

An agent started by agentd inherits a socket to the kernel (its fd in
AGENTOS_FD). `agentkit.connect()` says hello on it and returns an `Agent`:

    import agentkit

    agent = agentkit.connect()
    print(agent.me.name, agent.identity)
    agent.memory.put("greeting", "hello")
    agent.serve(lambda request: {"echo": request.json()})

`agentkit.aio` has the same API for asyncio. Errors from the kernel are
`agentkit.AgentOSError` subclasses (`agentkit.errors`).
"""
from ._version import __version__
from .agent import Agent, MessageStream, StreamWriter, connect
from .errors import (AgentOSError, Ambiguous, AlreadyExists, Conflict, ConnectionClosed, DuplicateRequestId,
                     FrameTooLarge, HandshakeRequired, HandshakeTimeout, Internal, InvalidArgument, InvalidPolicy,
                     MalformedFrame, ModelFailed, NotFound, NotRunning, PermissionDenied, ProgramNotExecutable, ProgramNotFound,
                     RequestTimeout, ResourceExhausted, ShuttingDown, SlowConsumer, SpawnFailed, UnknownMessage,
                     Unsupported, VersionMismatch)
from ._api import Memory
from .models import (GOAL_CONTENT_TYPE, AgentSelf, Capability, CheckResult, Checkpoint, Completion, Goal, MemoryItem,
                     Message, Sent, ToolCall, ToolInfo, ToolResult)

__all__ = [
    "__version__", "connect", "Agent", "Memory", "MessageStream", "StreamWriter",
    "GOAL_CONTENT_TYPE", "Goal", "AgentSelf", "Capability", "CheckResult", "Checkpoint", "Completion", "MemoryItem", "Message", "Sent", "ToolCall", "ToolInfo", "ToolResult",
    "AgentOSError", "Ambiguous", "AlreadyExists", "Conflict", "ConnectionClosed", "DuplicateRequestId",
    "FrameTooLarge", "HandshakeRequired", "HandshakeTimeout", "Internal", "InvalidArgument", "InvalidPolicy",
    "MalformedFrame", "ModelFailed", "NotFound", "NotRunning", "PermissionDenied", "ProgramNotExecutable", "ProgramNotFound",
    "RequestTimeout", "ResourceExhausted", "ShuttingDown", "SlowConsumer", "SpawnFailed", "UnknownMessage",
    "Unsupported", "VersionMismatch",
]
