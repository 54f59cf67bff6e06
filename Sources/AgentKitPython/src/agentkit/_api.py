"""What `Agent` and `AsyncAgent` share: each kernel call written once, as a
request to build and an answer to parse. The sync agent runs it and blocks;
the async agent returns a coroutine. Only the plumbing differs."""
from __future__ import annotations

import json as _json
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable as _IterableABC
from typing import Any, Callable, Iterable, List, Optional, Tuple

from ._proto import pb
from .errors import AgentOSError
from .models import (AgentSelf, Capability, CheckResult, Checkpoint, Completion, Goal, MemoryItem, Message, Sent,
                     ToolInfo, ToolResult)

#: Marks "no json= argument" (None is a JSON value).
UNSET: Any = object()

#: How many message ids `messages()` remembers to drop repeats (per process).
SEEN_CAPACITY = 10_000

DEFAULT_SCOPE = "long-term"


class Seen:
    """The ids of the last `capacity` messages handed to this process's code
    (delivery is at least once: a message not acked comes again)."""

    def __init__(self, capacity: int = SEEN_CAPACITY):
        self.capacity = capacity
        self._ids: "OrderedDict[str, None]" = OrderedDict()
        self._lock = threading.Lock()

    def first(self, message_id: str) -> bool:
        """True the first time an id is seen (and remembers it)."""
        if not message_id:
            return True
        with self._lock:
            if message_id in self._ids:
                self._ids.move_to_end(message_id)
                return False
            self._ids[message_id] = None
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)
            return True

    def __contains__(self, message_id: str) -> bool:
        with self._lock:
            return message_id in self._ids


def encode(payload: Any = None, json: Any = UNSET, text: Optional[str] = None,
           content_type: Optional[str] = None) -> Tuple[bytes, str]:
    """The bytes and content type of a payload given as one of payload=
    (bytes; a str is taken as text), json= (any JSON-able value) or text=."""
    given = sum(x is not None for x in (payload, text)) + (json is not UNSET)
    if given > 1:
        raise TypeError("give one of payload=, json= and text=")
    if json is not UNSET:
        return _json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), \
            content_type or "application/json"
    if text is not None or isinstance(payload, str):
        return (text if text is not None else payload).encode("utf-8"), content_type or "text/plain; charset=utf-8"
    if payload is None:
        return b"", content_type or ""
    return bytes(payload), content_type or "application/octet-stream"


def encode_result(result: Any) -> Tuple[bytes, str]:
    """A handler's return value as a response payload: bytes as they are, a
    str as text, anything else as JSON."""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return encode(payload=bytes(result))
    if isinstance(result, str):
        return encode(text=result)
    return encode(json=result)


def _checkpoint_bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    return _json.dumps(data, separators=(",", ":")).encode("utf-8")


def _ids(items: Iterable[Any]) -> List[str]:
    out: List[str] = []
    for item in items:
        if isinstance(item, Message):
            out.append(item.id)
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, _IterableABC):
            out.extend(_ids(item))
        else:
            raise TypeError(f"ack takes messages or ids, not {type(item).__name__}")
    return out


def _entry(answer: "pb.MemoryList") -> Optional[MemoryItem]:
    return MemoryItem._from(answer.entries[0]) if answer.entries else None


def _entries(answer: "pb.MemoryList") -> List[MemoryItem]:
    return [MemoryItem._from(e) for e in answer.entries]


class Memory:
    """`agent.memory`: the agent's memory (PROTOCOL.md §5.18). Scopes:
    "long-term" (default: kept across runs), "working", "context" (this run)
    and "shared/NAME" (needs capability://memory/shared/NAME). With an
    `AsyncAgent` every method is a coroutine."""

    def __init__(self, owner: "Calls"):
        self._owner = owner

    def put(self, key: str, value: Any, scope: str = DEFAULT_SCOPE, tags: Iterable[str] = (),
            ttl: Optional[float] = None):
        """Stores `value` (a str; anything else is stored as JSON) under `key`,
        replacing what was there; `ttl` in seconds forgets it after that long.
        Returns the stored `MemoryItem`."""
        if not isinstance(value, str):
            value = _json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        ttl_ms = 0 if not ttl else max(1, int(round(ttl * 1000)))
        request = pb.MemoryRequest(scope=scope, key=key, value=value, tags=list(tags), ttl_ms=ttl_ms)
        return self._owner._exec("mem_put", request, _entry)

    def get(self, key: str, scope: str = DEFAULT_SCOPE):
        """The entry under `key`, or None when there is none."""
        return self._owner._exec("mem_get", pb.MemoryRequest(scope=scope, key=key), _entry, none_if_not_found=True)

    def delete(self, key: str, scope: str = DEFAULT_SCOPE):
        """Removes `key`; returns the entry removed, or None when there was none."""
        return self._owner._exec("mem_delete", pb.MemoryRequest(scope=scope, key=key), _entry,
                                 none_if_not_found=True)

    def search(self, query: str, scope: str = DEFAULT_SCOPE, limit: int = 20):
        """Entries whose value or tags hold any of the query's words, best first."""
        return self._owner._exec("mem_search", pb.MemoryRequest(scope=scope, query=query, limit=limit), _entries)

    def list(self, scope: str = DEFAULT_SCOPE, limit: int = 20):
        """Entries of a scope, by key."""
        return self._owner._exec("mem_list", pb.MemoryRequest(scope=scope, limit=limit), _entries)

    def share(self, key: str, to: str, scope: str = DEFAULT_SCOPE):
        """Copies the entry `key` into the long-term memory of agent `to` (its
        team, or whom an agent message grant names), where it is
        `from/SENDER/KEY`. Returns the copy as the recipient has it."""
        return self._owner._exec("mem_share", pb.MemoryRequest(scope=scope, key=key, to=to), _entry)


class Calls:
    """The kernel calls common to `Agent` and `AsyncAgent`. Subclasses give
    `_exec(field, request, parse, timeout=None, none_if_not_found=False)`."""

    _seen: Seen

    def _exec(self, field: str, request: Any, parse: Callable[[Any], Any], timeout: Optional[float] = None,
              none_if_not_found: bool = False):  # pragma: no cover - overridden
        raise NotImplementedError

    # -- who am I ------------------------------------------------------

    def _init_identity(self, welcome: "pb.Welcome") -> None:
        self.welcome = welcome
        self.me: Optional[AgentSelf] = AgentSelf._from(welcome.agent) if welcome.HasField("agent") else None
        name = self.me.name if self.me else os.environ.get("AGENTOS_AGENT_NAME", "")
        #: The agent's mailbox name: its policy path under a supervisor, else its name.
        self.identity: str = os.environ.get("AGENTOS_CHILD_PATH") or name
        self.memory = Memory(self)

    @property
    def kernel_version(self) -> str:
        return self.welcome.kernel_version

    @property
    def protocol_version(self) -> int:
        return self.welcome.version

    def log(self, text: str, level: str = "info") -> None:
        """Writes one line to stderr (the agent's log), prefixed with its identity."""
        sys.stderr.write(f"{self.identity or 'agent'} {level}: {text}\n")
        sys.stderr.flush()

    # -- messages ------------------------------------------------------

    def send(self, to: str, payload: Any = None, *, json: Any = UNSET, text: Optional[str] = None,
             content_type: Optional[str] = None, type: str = "message", correlation_id: str = "",
             end: bool = False):
        """Puts a message in the mailbox of `to` (an agent name or id, or a
        policy path). Give the payload as payload= (bytes), json= or text=.
        `type`: message, request, response, event or stream. Returns `Sent`."""
        data, ctype = encode(payload, json, text, content_type)
        request = pb.SendRequest(to=to, payload=data, content_type=ctype, type=type, correlation_id=correlation_id,
                                 end=end)
        return self._exec("send", request, lambda r: Sent(r.id, r.to, r.depth))

    def request(self, to: str, payload: Any = None, *, json: Any = UNSET, text: Optional[str] = None,
                content_type: Optional[str] = None, timeout: Optional[float] = 30.0):
        """Sends a request to `to` and waits for its response (a `Message`).
        No response within `timeout` seconds: `RequestTimeout` (a Conflict
        and a TimeoutError). The kernel allows at most 10 minutes."""
        data, ctype = encode(payload, json, text, content_type)
        timeout_ms = 0 if timeout is None else min(600_000, max(1, int(timeout * 1000)))
        request = pb.BusRequest(message=pb.SendRequest(to=to, payload=data, content_type=ctype, type="request"),
                                timeout_ms=timeout_ms)

        def parse(answer):
            message = Message._from(answer)
            self._seen.first(message.id)  # taken out of the mailbox: messages() must not hand it out too
            return message
        # The kernel answers at the deadline; wait a little longer for that answer.
        return self._exec("request", request, parse, timeout=None if timeout is None else timeout + 5.0)

    def ack(self, *messages: Any):
        """Removes handled messages (Message objects or ids) from the mailbox;
        returns how many were removed. Unacked messages come again at the
        next receive."""
        return self._exec("ack", pb.AckRequest(ids=_ids(messages)), lambda r: r.removed)

    def ack_later(self, *messages: Any) -> None:
        """Acks handled messages (Message objects or ids) without waiting for
        the kernel's answer: they go together in one ack call, when 64 wait,
        before this agent's next call, when its mailbox reader next waits for
        a message, or when it closes. A
        sender is answered once its message is acked or stored, so a reader
        that acks promptly keeps its senders moving. A lost ack is not
        reported: the message then comes again (with the same id)."""
        self._conn.ack_later(_ids(messages))

    def respond(self, message: Message, payload: Any = None, *, json: Any = UNSET, text: Optional[str] = None,
                content_type: Optional[str] = None):
        """Answers a request: a message of type response to its sender, with
        correlation_id = the request's id."""
        return self.send(message.sender, payload, json=json, text=text, content_type=content_type,
                         type="response", correlation_id=message.id)

    def respond_later(self, message: Message, payload: Any = None, *, json: Any = UNSET, text: Optional[str] = None,
                      content_type: Optional[str] = None) -> None:
        """Answers a request without waiting for the kernel's answer (a quiet
        send): the kernel answers only if it refuses the response (a payload
        over the limit, say), and that is written to stderr (the agent's
        log); one that comes after its requester gave up is dropped, as any
        late response is. For a request its requester waits for
        (`acked_by_response`), whose response also removes it; answer a
        stored request with respond(), then ack it, so that it stays in the
        mailbox until its response is safe. serve() does both."""
        data, ctype = encode(payload, json, text, content_type)
        self._conn.send_quietly("send", pb.SendRequest(to=message.sender, payload=data, content_type=ctype,
                                                       type="response", correlation_id=message.id))

    def publish(self, topic: str, payload: Any = None, *, json: Any = UNSET, text: Optional[str] = None,
                content_type: Optional[str] = None):
        """Hands an event to the live subscribers of `topic` (nothing is
        stored); returns how many subscriptions it reached. An agent needs
        capability://topic/TOPIC?action=publish."""
        data, ctype = encode(payload, json, text, content_type)
        request = pb.PublishRequest(topic=topic, payload=data, content_type=ctype)
        return self._exec("publish", request, lambda r: r.subscribers)

    # -- tools ---------------------------------------------------------

    def tools(self):
        """The kernel's tool registry, as a list of `ToolInfo`."""
        return self._exec("tools", pb.ToolListRequest(), lambda r: [ToolInfo._from(t) for t in r.tools])

    def call_tool(self, name: str, arguments: Optional[dict] = None, timeout: Optional[float] = None):
        """Calls a tool (checked against the agent's grants; may wait for an
        operator's approval). Returns a `ToolResult`; a tool that ran and
        failed has is_error set, a refused call raises (PermissionDenied, ...)."""
        request = pb.ToolCallRequest(tool=name, arguments_json=_json.dumps(arguments or {}))
        return self._exec("tool_call", request, ToolResult._from, timeout=timeout)

    # -- models ----------------------------------------------------------

    def complete(self, model: str, messages: Iterable[Any], *, system: str = "", tools: Iterable[Any] = (),
                 tool_choice: str = "auto", max_tokens: int = 1024, temperature: Optional[float] = None,
                 stop: Iterable[str] = (), timeout: Optional[float] = None):
        """Asks a model ("PROVIDER:MODEL") through the kernel, which holds the
        keys and needs capability://model/PROVIDER:MODEL?action=complete.
        `messages`: dicts {"role": "user"|"assistant"|"tool", "content": ...,
        "tool_calls": [{"id", "name", "arguments"}], "tool_call_id", "is_error"}
        (a str is a user message); `tools`: `ToolInfo`s or dicts {"name",
        "description", "parameters"}. Returns a `Completion`; raises
        ModelFailed (provider), ResourceExhausted (budget), PermissionDenied."""
        request = pb.ModelCompleteRequest(model=model, system=system, tool_choice=tool_choice,
                                          max_tokens=max_tokens, stop=list(stop))
        if temperature is not None:
            request.temperature = temperature
        if timeout is not None:
            request.timeout_ms = max(1, int(timeout * 1000))
        for message in messages:
            if isinstance(message, str):
                message = {"role": "user", "content": message}
            wire = request.messages.add(role=message.get("role", "user"), content=message.get("content") or "",
                                        tool_call_id=message.get("tool_call_id", ""),
                                        is_error=bool(message.get("is_error", False)))
            for call in message.get("tool_calls") or ():
                arguments = call.get("arguments", "{}")
                wire.tool_calls.add(id=call["id"], name=call["name"],
                                    arguments_json=arguments if isinstance(arguments, str) else _json.dumps(arguments))
        for tool in tools:
            if isinstance(tool, ToolInfo):
                request.tools.add(name=tool.name, description=tool.description, parameters_schema=tool.parameters_schema)
            else:
                parameters = tool.get("parameters", {"type": "object"})
                request.tools.add(name=tool["name"], description=tool.get("description", ""),
                                  parameters_schema=parameters if isinstance(parameters, str) else _json.dumps(parameters))
        wait = None if timeout is None else timeout + 5.0
        return self._exec("model_complete", request, Completion._from, timeout=wait)

    # -- goals -----------------------------------------------------------

    def goal(self, goal_id: str):
        """The goal the scheduler gave this agent (its id from `--goal ID`,
        or from a goal message in the mailbox), as a `Goal`."""
        return self._exec("goal_get", pb.GoalRequest(id=goal_id), Goal._from)

    def finish_goal(self, goal_id: str, result: str, failed: bool = False):
        """Ends the goal with its result (or as failed)."""
        return self._exec("goal_finish", pb.GoalFinishRequest(id=goal_id, result=result, failed=failed), Goal._from)

    # -- supervision ---------------------------------------------------

    def ready(self):
        """Tells the supervisor the start is finished (readiness: notify)."""
        return self._exec("ready", pb.ReadyRequest(), lambda r: None)

    def save_checkpoint(self, data: Any):
        """Stores the child's checkpoint (bytes as given, a str as UTF-8,
        anything else as JSON; at most 1 MiB). Returns a `Checkpoint`."""
        return self._exec("save_checkpoint", pb.SaveCheckpointRequest(data=_checkpoint_bytes(data)),
                          Checkpoint._from)

    def load_checkpoint(self):
        """The last checkpoint's bytes (saved by any earlier run), or None."""
        return self._exec("load_checkpoint", pb.LoadCheckpointRequest(),
                          lambda r: bytes(r.data) if r.saved_at_ns else None)

    def load_checkpoint_json(self):
        """The last checkpoint parsed as JSON, or None when there is none."""
        return self._exec("load_checkpoint", pb.LoadCheckpointRequest(),
                          lambda r: _json.loads(bytes(r.data).decode("utf-8")) if r.saved_at_ns else None)

    def load_checkpoint_info(self):
        """The last checkpoint as a `Checkpoint` (path, time, data), or None."""
        return self._exec("load_checkpoint", pb.LoadCheckpointRequest(),
                          lambda r: Checkpoint._from(r) if r.saved_at_ns else None)

    # -- capabilities and status ---------------------------------------

    def capabilities(self):
        """The grants the agent holds, as a list of `Capability`."""
        return self._exec("my_capabilities", pb.MyCapabilitiesRequest(),
                          lambda r: [Capability._from(c) for c in r.capabilities])

    def check(self, action: str, resource: str):
        """May the agent do `action` on `resource` ("KIND/RESOURCE", e.g.
        "file/srv/data/a.txt")? A `CheckResult`, true when allowed (an allowed
        check counts as a use of the grant)."""
        return self._exec("cap_check", pb.CapCheckRequest(action=action, resource=resource), CheckResult._from)

    def status(self):
        """The kernel's status (the protobuf `StatusResponse`)."""
        return self._exec("status", pb.StatusRequest(), lambda r: r)


class Ended(Exception):
    """The kernel ended a stream (StreamEnd)."""


def stream_chunk_message(chunk: "pb.StreamChunk") -> Optional[Message]:
    return Message._from(chunk.message) if chunk.WhichOneof("item") == "message" else None


class StreamState:
    """The bookkeeping of one receive or subscribe stream, shared by the sync
    and async iterators: the kernel's items in, Messages (or the end) out."""

    def __init__(self, seen: Optional[Seen], accept: Optional[Callable[[Message], bool]]):
        self.seen = seen
        self.accept = accept
        self.done = False
        #: Why the kernel ended the stream ("cancelled", "kernel-shutdown", ...), once it has.
        self.end_reason: Optional[str] = None

    def take(self, kind: str, value: Any) -> Optional[Message]:
        """A Message to hand out, or None to skip; raises `Ended` at the end
        and the error of a failed stream."""
        if kind == "chunk":
            message = stream_chunk_message(value)
            if message is None or (self.accept is not None and not self.accept(message)):
                return None
            if self.seen is not None and not self.seen.first(message.id):
                return None
            return message
        self.done = True
        if kind == "end":
            self.end_reason = value
            raise Ended(value)
        assert isinstance(value, AgentOSError)
        raise value
