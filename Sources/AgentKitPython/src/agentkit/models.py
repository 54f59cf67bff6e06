"""Plain data classes for what the kernel answers (built from the protobuf
messages, so callers never need the generated code)."""
from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ._proto import pb


@dataclass(frozen=True)
class AgentSelf:
    """What the kernel told the agent about itself in the Welcome."""
    id: str
    name: str
    argv: Tuple[str, ...]
    env: Dict[str, str]
    work_dir: str

    @classmethod
    def _from(cls, m: "pb.AgentSelf") -> "AgentSelf":
        return cls(m.id, m.name, tuple(m.argv), dict(m.env), m.work_dir)


@dataclass(frozen=True)
class Message:
    """One message of the bus (a mailbox message, a stream chunk or a topic
    event). `sender` is the sender's identity (also readable as `from_`);
    `payload` is raw bytes: use `.json()` or `.text()`."""
    id: str
    sender: str
    to: str
    type: str
    content_type: str
    payload: bytes
    correlation_id: str = ""
    sent_at_ns: int = 0
    end: bool = False
    #: A request whose requester waits: responding removes it, no ack needed.
    acked_by_response: bool = False

    @property
    def from_(self) -> str:
        """The sender's identity (the wire's `from`)."""
        return self.sender

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return _json.loads(self.payload.decode("utf-8")) if self.payload else None

    def text(self) -> str:
        """The payload as UTF-8 text."""
        return self.payload.decode("utf-8")

    @classmethod
    def _from(cls, m: "pb.BusMessage") -> "Message":
        return cls(m.id, getattr(m, "from"), m.to, m.type, m.content_type, bytes(m.payload),
                   m.correlation_id, m.sent_at_ns, m.end, m.acked_by_response)


@dataclass(frozen=True)
class Sent:
    """A message the kernel accepted: its id, the mailbox it went to and how
    many messages wait there now."""
    id: str
    to: str
    depth: int


@dataclass(frozen=True)
class MemoryItem:
    """One memory entry. `score` is set by search (BM25, higher is better)."""
    key: str
    value: str
    tags: Tuple[str, ...] = ()
    scope: str = ""
    created_at_ns: int = 0
    updated_at_ns: int = 0
    expires_at_ns: int = 0
    score: float = 0.0

    def json(self) -> Any:
        """The value parsed as JSON."""
        return _json.loads(self.value)

    @classmethod
    def _from(cls, m: "pb.MemoryItem") -> "MemoryItem":
        return cls(m.key, m.value, tuple(m.tags), m.scope, m.created_at_ns, m.updated_at_ns,
                   m.expires_at_ns, m.score)


@dataclass(frozen=True)
class ToolInfo:
    """A tool of the kernel's registry; `schema` is its parameters' JSON Schema."""
    name: str
    description: str
    capability_kind: str
    action: str
    parameters_schema: str
    source: str

    @property
    def schema(self) -> Dict[str, Any]:
        return _json.loads(self.parameters_schema) if self.parameters_schema else {}

    @classmethod
    def _from(cls, m: "pb.ToolInfo") -> "ToolInfo":
        return cls(m.name, m.description, m.capability_kind, m.action, m.parameters_schema, m.source)


@dataclass(frozen=True)
class ToolResult:
    """A tool call's answer. `is_error`: the tool ran and failed, `result`
    (the parsed result object) says why."""
    call_id: str
    result: Any
    is_error: bool
    grant_id: str
    duration_us: int
    approved: bool

    @classmethod
    def _from(cls, m: "pb.ToolCallResponse") -> "ToolResult":
        try:
            result = _json.loads(m.result_json) if m.result_json else None
        except ValueError:
            result = m.result_json
        return cls(m.call_id, result, m.is_error, m.grant_id, m.duration_us, m.approved)


@dataclass(frozen=True)
class Checkpoint:
    """A saved checkpoint's record (`data` only when loaded)."""
    path: str
    saved_at_ns: int
    size: int
    agent_id: str
    data: bytes = b""

    @classmethod
    def _from(cls, m: "pb.Checkpoint") -> "Checkpoint":
        return cls(m.path, m.saved_at_ns, m.size, m.agent_id, bytes(m.data))


@dataclass(frozen=True)
class Capability:
    """A grant the agent holds; its `id` is the agent's handle for it."""
    id: str
    uri: str
    source: str
    parent_id: str = ""
    uses: int = 0
    remaining_uses: Optional[int] = None
    needs_approval: bool = False

    @classmethod
    def _from(cls, m: "pb.CapabilityInfo") -> "Capability":
        remaining = m.remaining_uses if m.HasField("remaining_uses") else None
        return cls(m.id, m.uri, m.source, m.parent_id, m.uses, remaining, m.needs_approval)


@dataclass(frozen=True)
class CheckResult:
    """The kernel's answer to `check(action, resource)`; true when allowed."""
    allowed: bool
    grant_id: str = ""
    needs_approval: bool = False
    reasons: List[str] = field(default_factory=list)
    check_ns: int = 0

    def __bool__(self) -> bool:
        return self.allowed

    @classmethod
    def _from(cls, m: "pb.CapExplainResponse") -> "CheckResult":
        return cls(m.allowed, m.grant_id, m.needs_approval, list(m.reasons), m.check_ns)


@dataclass(frozen=True)
class ToolCall:
    """A tool call a model asked for: the tool's registry name and its
    arguments as JSON text (what the model wrote when it is not an object)."""
    id: str
    name: str
    arguments_json: str

    def arguments(self) -> Any:
        """The arguments parsed (raises ValueError when the model wrote no JSON)."""
        return _json.loads(self.arguments_json) if self.arguments_json else {}

    def message(self) -> Dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments_json}


@dataclass(frozen=True)
class Completion:
    """A model's answer through the kernel's gateway, with what it cost."""
    call_id: str
    model: str
    provider_model: str
    content: str
    tool_calls: Tuple[ToolCall, ...]
    stop_reason: str
    input_tokens: int
    output_tokens: int
    cost_microdollars: int
    attempts: int

    def message(self) -> Dict[str, Any]:
        """The assistant turn to append to the conversation."""
        return {"role": "assistant", "content": self.content, "tool_calls": [c.message() for c in self.tool_calls]}

    @classmethod
    def _from(cls, m: "pb.ModelCompletion") -> "Completion":
        return cls(m.call_id, m.model, m.provider_model, m.content,
                   tuple(ToolCall(c.id, c.name, c.arguments_json) for c in m.tool_calls), m.stop_reason,
                   m.usage.input_tokens, m.usage.output_tokens, m.usage.cost_microdollars, m.attempts)


#: The content type of a goal handed to a running agent (agentctl submit --agent).
GOAL_CONTENT_TYPE = "application/vnd.agentos.goal+json"


@dataclass(frozen=True)
class Goal:
    """A goal from the kernel's scheduler."""
    id: str
    text: str
    priority: int
    state: str
    result: str
    attempts: int

    @classmethod
    def _from(cls, m: "pb.GoalInfo") -> "Goal":
        return cls(m.id, m.text, m.priority, m.state, m.result, m.attempts)
