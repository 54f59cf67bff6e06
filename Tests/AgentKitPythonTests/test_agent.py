"""The synchronous API against a fake kernel: what goes on the wire, and
what comes back."""
from __future__ import annotations

import json
import struct
import threading
import time

import pytest

import agentkit
from agentkit._proto import pb
from fake_kernel import Err, FakeKernel


# -- the handshake -------------------------------------------------------

def test_handshake_sends_hello_and_parses_welcome(kernel, agent):
    assert len(kernel.hellos) == 1
    hello = kernel.hellos[0]
    assert (hello.min_version, hello.max_version) == (1, 1)
    assert hello.client == f"agentkit-python {agentkit.__version__}"
    assert kernel.frames[0].WhichOneof("body") == "hello"
    assert kernel.frames[0].request_id == 0
    assert agent.protocol_version == 1
    assert agent.kernel_version == "0.1.0"
    assert agent.welcome.kernel_pid == 4242
    assert agent.me == agentkit.AgentSelf("abcdef123456", "writer-1", ("python3", "writer.py"), {"MODE": "test"},
                                          "/srv/work")
    assert agent.identity == "writer-1"


def test_identity_is_the_child_path_under_a_supervisor(kernel, agent_fd, monkeypatch):
    monkeypatch.setenv("AGENTOS_CHILD_PATH", "duo/writer")
    with agentkit.connect(fd=agent_fd, client="custom 1.0") as agent:
        assert agent.identity == "duo/writer"
        assert agent.me.name == "writer-1"
    assert kernel.hellos[0].client == "custom 1.0"


def test_connect_reads_agentos_fd(kernel, agent_fd, monkeypatch):
    monkeypatch.setenv("AGENTOS_FD", str(agent_fd))
    with agentkit.connect() as agent:
        assert agent.me.id == "abcdef123456"


def test_connect_without_agentos_fd_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("AGENTOS_FD", raising=False)
    with pytest.raises(agentkit.AgentOSError) as caught:
        agentkit.connect()
    assert str(caught.value) == "not started by agentd: AGENTOS_FD is not set"


def test_version_mismatch_in_the_handshake(socketpair):
    refusal = pb.Envelope(error=pb.Error(code=pb.ERROR_CODE_VERSION_MISMATCH, message="no common version",
                                         detail={"kernel_min": "2", "kernel_max": "3"}))
    kernel = FakeKernel(socketpair[1], hello_reply=refusal)
    with pytest.raises(agentkit.VersionMismatch) as caught:
        agentkit.connect(fd=socketpair[0].detach())
    assert caught.value.code == 4
    assert caught.value.detail == {"kernel_min": "2", "kernel_max": "3"}
    kernel.close()


def test_a_welcome_with_a_version_this_client_does_not_speak(socketpair):
    kernel = FakeKernel(socketpair[1], welcome=pb.Welcome(version=2))
    with pytest.raises(agentkit.VersionMismatch) as caught:
        agentkit.connect(fd=socketpair[0].detach())
    assert "version 2" in str(caught.value)
    kernel.wait_until(lambda: kernel.eof)  # the client hung up
    kernel.close()


# -- request ids and errors ----------------------------------------------

def test_request_ids_count_up_from_one(kernel, agent):
    kernel.on("status", pb.StatusResponse(kernel_version="0.1.0", pid=7))
    for _ in range(3):
        assert agent.status().pid == 7
    assert [rid for rid, _, _ in kernel.requests] == [1, 2, 3]


@pytest.mark.parametrize("code, cls", [
    (pb.ERROR_CODE_INVALID_ARGUMENT, agentkit.InvalidArgument),
    (pb.ERROR_CODE_PERMISSION_DENIED, agentkit.PermissionDenied),
    (pb.ERROR_CODE_NOT_FOUND, agentkit.NotFound),
    (pb.ERROR_CODE_CONFLICT, agentkit.Conflict),
    (pb.ERROR_CODE_RESOURCE_EXHAUSTED, agentkit.ResourceExhausted),
    (pb.ERROR_CODE_SLOW_CONSUMER, agentkit.SlowConsumer),
])
def test_error_frames_raise_the_class_of_their_code(kernel, agent, code, cls):
    kernel.on("send", Err(code, "refused here", {"reason": "because"}))
    with pytest.raises(cls) as caught:
        agent.send("reviewer", json={"x": 1})
    error = caught.value
    assert isinstance(error, agentkit.AgentOSError)
    assert error.code == code
    assert error.name == pb.ErrorCode.Name(code)[len("ERROR_CODE_"):]
    assert error.message == "refused here"
    assert error.detail == {"reason": "because"}
    assert str(error) == f"{error.name}: refused here (reason=because)"


def test_an_unknown_error_code_is_the_base_class(kernel, agent):
    kernel.on("ready", Err(99, "from the future"))
    with pytest.raises(agentkit.AgentOSError) as caught:
        agent.ready()
    assert type(caught.value) is agentkit.AgentOSError
    assert (caught.value.code, caught.value.name) == (99, "CODE_99")


def test_a_connection_stays_usable_after_a_request_error(kernel, agent):
    kernel.on("mem_get", Err(pb.ERROR_CODE_PERMISSION_DENIED, "no grant"))
    with pytest.raises(agentkit.PermissionDenied):
        agent.memory.get("k", scope="shared/x")
    kernel.on("ready", pb.ReadyResponse())
    assert agent.ready() is None


# -- messages -------------------------------------------------------------

def test_send_json_text_and_bytes(kernel, agent):
    kernel.on("send", lambda rid, m: pb.SendResponse(id=f"m{rid}", to=m.to, depth=rid))
    sent = agent.send("duo/reviewer", json={"item": 1, "text": "é"})
    assert sent == agentkit.Sent("m1", "duo/reviewer", 1)
    agent.send("duo/reviewer", text="hello", type="event")
    agent.send("duo/reviewer", b"\x00\x01", content_type="application/x-raw", correlation_id="c-1")
    (_, first), (_, second), (_, third) = [kernel.wait_request("send", n) for n in (1, 2, 3)]
    assert first.to == "duo/reviewer" and first.type == "message" and first.content_type == "application/json"
    assert json.loads(first.payload) == {"item": 1, "text": "é"}
    assert (second.payload, second.type, second.content_type) == (b"hello", "event", "text/plain; charset=utf-8")
    assert (third.payload, third.content_type, third.correlation_id, third.end) == \
        (b"\x00\x01", "application/x-raw", "c-1", False)
    with pytest.raises(TypeError):
        agent.send("x", b"a", json=1)


def test_request_waits_for_the_response(kernel, agent):
    answer = pb.BusMessage(id="r1", to="writer-1", type="response", content_type="application/json",
                           payload=b'{"ok":true}', correlation_id="q1", sent_at_ns=5)
    setattr(answer, "from", "duo/reviewer")
    kernel.on("request", answer)
    response = agent.request("duo/reviewer", json={"item": 3}, timeout=2.5)
    _, request = kernel.wait_request("request")
    assert request.timeout_ms == 2500
    assert request.message.to == "duo/reviewer" and request.message.type == "request"
    assert json.loads(request.message.payload) == {"item": 3}
    assert response.json() == {"ok": True}
    assert response.sender == response.from_ == "duo/reviewer"
    assert (response.id, response.correlation_id, response.sent_at_ns) == ("r1", "q1", 5)


def test_request_timeout_from_the_kernel_is_a_timeout_error(kernel, agent):
    kernel.on("request", Err(pb.ERROR_CODE_CONFLICT, "no response within 1s", {"reason": "timeout"}))
    with pytest.raises(TimeoutError) as caught:
        agent.request("duo/reviewer", text="hi", timeout=1)
    assert isinstance(caught.value, agentkit.RequestTimeout)
    assert isinstance(caught.value, agentkit.Conflict)


def test_a_call_without_answer_times_out_and_is_cancelled(kernel, socketpair):
    kernel.on("tool_call", None)  # never answered
    agent = agentkit.connect(fd=socketpair[0].detach(), timeout=0.2)
    with pytest.raises(TimeoutError):
        agent.call_tool("file.read", {"path": "/x"})
    rid, _ = kernel.wait_request("tool_call")
    kernel.wait_cancel(rid)
    # A late answer is dropped; the connection goes on.
    kernel.respond(rid, "tool_call", pb.ToolCallResponse(call_id="late"))
    kernel.on("ready", pb.ReadyResponse())
    assert agent.ready() is None
    agent.close()


def _stream_of(kernel, rid, *messages):
    for fields in messages:
        kernel.chunk(rid, **fields)


def test_messages_skip_repeated_ids(kernel, agent):
    inbox = agent.messages()
    rid, _ = kernel.wait_request("receive")
    _stream_of(kernel, rid,
               dict(id="a", from_="op", type="message", payload=b"1"),
               dict(id="b", from_="op", type="message", payload=b"2"),
               dict(id="a", from_="op", type="message", payload=b"1"),
               dict(id="c", from_="op", type="message", payload=b"3"))
    kernel.end(rid, "kernel-shutdown")
    assert [m.id for m in inbox] == ["a", "b", "c"]
    assert inbox.end_reason == "kernel-shutdown"
    # A second receive (e.g. after a reconnect of the stream) re-delivers a
    # and b unacked: they were handed out already, only d is new.
    again = agent.messages()
    rid2, _ = kernel.wait_request("receive", 2)
    _stream_of(kernel, rid2, dict(id="a", type="message"), dict(id="b", type="message"),
               dict(id="d", type="message"))
    assert again.next(timeout=2).id == "d"
    again.close()
    kernel.wait_cancel(rid2)


def test_closing_the_mailbox_iterator_sends_cancel(kernel, agent):
    with agent.messages() as inbox:
        rid, _ = kernel.wait_request("receive")
        kernel.chunk(rid, id="x", type="message")
        assert next(inbox).id == "x"
        with pytest.raises(TimeoutError):
            inbox.next(timeout=0.05)
    kernel.wait_cancel(rid)
    assert list(inbox) == []


def test_ack_takes_messages_and_ids(kernel, agent):
    kernel.on("ack", lambda rid, m: pb.AckResponse(removed=len(m.ids)))
    message = agentkit.Message("m1", "op", "me", "message", "text/plain", b"")
    assert agent.ack(message, "m2", ["m3"]) == 3
    _, request = kernel.wait_request("ack")
    assert list(request.ids) == ["m1", "m2", "m3"]


def test_serve_responds_then_acks(kernel, agent):
    kernel.on("send", lambda rid, m: pb.SendResponse(id=f"s{rid}", to=m.to))
    kernel.on("ack", lambda rid, m: pb.AckResponse(removed=len(m.ids)))
    others = []
    result = {}

    def run():
        result["answered"] = agent.serve(lambda m: {"upper": m.json()["text"].upper()}, on_message=others.append)
    thread = threading.Thread(target=run)
    thread.start()
    rid, _ = kernel.wait_request("receive")
    kernel.chunk(rid, id="q1", from_="duo/boss", type="request", payload=b'{"text":"hi"}')
    kernel.chunk(rid, id="n1", from_="duo/boss", type="message", payload=b"note")
    kernel.chunk(rid, id="q1", from_="duo/boss", type="request", payload=b'{"text":"hi"}')  # a repeat
    kernel.wait_request("ack", 2)
    kernel.end(rid, "kernel-shutdown")
    thread.join(5)
    assert result["answered"] == 1
    assert [m.id for m in others] == ["n1"]
    assert kernel.calls() == ["receive", "send", "ack", "ack"]
    assert [f.quiet for f in kernel.frames if f.WhichOneof("body") == "request"
            and f.request.WhichOneof("call") == "send"] == [False], "a stored request's response is waited for"
    _, response = kernel.wait_request("send")
    assert (response.to, response.type, response.correlation_id) == ("duo/boss", "response", "q1")
    assert json.loads(response.payload) == {"upper": "HI"} and response.content_type == "application/json"
    assert [list(kernel.wait_request("ack", n)[1].ids) for n in (1, 2)] == [["q1"], ["n1"]]


def test_serve_leaves_a_failed_request_unacked(kernel, agent):
    def handler(message):
        raise ValueError("boom")
    thread_error = {}

    def run():
        try:
            agent.serve(handler)
        except ValueError as error:
            thread_error["e"] = error
    thread = threading.Thread(target=run)
    thread.start()
    rid, _ = kernel.wait_request("receive")
    kernel.chunk(rid, id="q1", from_="boss", type="request", payload=b"{}")
    thread.join(5)
    assert str(thread_error["e"]) == "boom"
    kernel.wait_cancel(rid)
    assert "ack" not in kernel.calls() and "send" not in kernel.calls()


def test_serve_with_on_error_responds_and_acks(kernel, agent):
    kernel.on("send", pb.SendResponse(id="s"))
    kernel.on("ack", pb.AckResponse(removed=1))
    done = threading.Thread(target=lambda: agent.serve(lambda m: 1 / 0, on_error=lambda m, e: f"failed: {e}",
                                                        max_requests=1))
    done.start()
    rid, _ = kernel.wait_request("receive")
    kernel.chunk(rid, id="q1", from_="boss", type="request")
    done.join(5)
    _, response = kernel.wait_request("send")
    assert response.payload == b"failed: division by zero" and response.type == "response"
    kernel.wait_cancel(rid)  # max_requests reached: the stream is cancelled


# -- streams of messages ------------------------------------------------------

def test_stream_writer_sends_chunks_then_the_end(kernel, agent):
    kernel.on("send", lambda rid, m: pb.SendResponse(id=f"s{rid}", to=m.to))
    with agent.open_stream("duo/reviewer", stream_id="st-1") as stream:
        stream.write(json={"part": 1})
        stream.write(text="two")
    assert stream.closed
    chunks = [kernel.wait_request("send", n)[1] for n in (1, 2, 3)]
    assert [(c.to, c.type, c.correlation_id, c.end) for c in chunks] == \
        [("duo/reviewer", "stream", "st-1", False)] * 2 + [("duo/reviewer", "stream", "st-1", True)]
    assert [c.payload for c in chunks] == [b'{"part":1}', b"two", b""]
    with pytest.raises(agentkit.AgentOSError):
        stream.write(b"late")
    assert agent.open_stream("x").stream_id != agent.open_stream("x").stream_id


def test_read_stream_collects_one_stream_and_acks_it(kernel, agent):
    kernel.on("ack", pb.AckResponse(removed=1))
    got = []
    reader = threading.Thread(target=lambda: got.extend(agent.read_stream("st-9", timeout=5)))
    reader.start()
    rid, _ = kernel.wait_request("receive")
    kernel.chunk(rid, id="1", type="stream", correlation_id="st-9", payload=b"a")
    kernel.chunk(rid, id="2", type="message", payload=b"not mine")
    kernel.chunk(rid, id="3", type="stream", correlation_id="other", payload=b"x")
    kernel.chunk(rid, id="4", type="stream", correlation_id="st-9", payload=b"b")
    kernel.chunk(rid, id="5", type="stream", correlation_id="st-9", payload=b"", end=True)
    reader.join(5)
    assert [(m.id, m.payload, m.end) for m in got] == [("1", b"a", False), ("4", b"b", False), ("5", b"", True)]
    assert [list(kernel.wait_request("ack", n)[1].ids) for n in (1, 2, 3)] == [["1"], ["4"], ["5"]]
    kernel.wait_cancel(rid)
    # What it skipped is still new to messages().
    inbox = agent.messages()
    rid2, _ = kernel.wait_request("receive", 2)
    kernel.chunk(rid2, id="2", type="message")
    assert inbox.next(timeout=2).id == "2"
    inbox.close()


# -- topics ---------------------------------------------------------------

def test_publish(kernel, agent):
    kernel.on("publish", pb.PublishResponse(id="e1", subscribers=3))
    assert agent.publish("news.sports", json={"score": 2}) == 3
    _, request = kernel.wait_request("publish")
    assert (request.topic, request.payload, request.content_type) == \
        ("news.sports", b'{"score":2}', "application/json")


def test_subscribe_yields_events_and_cancels_on_close(kernel, agent):
    with agent.subscribe("news.*") as events:
        rid, request = kernel.wait_request("subscribe")
        assert request.pattern == "news.*"
        kernel.chunk(rid, id="e1", from_="duo/reporter", to="news.sports", type="event", payload=b'{"n":1}')
        kernel.chunk(rid, id="e2", from_="duo/reporter", to="news.weather", type="event", payload=b'{"n":2}')
        first, second = next(events), next(events)
        assert (first.to, first.type, first.sender, first.json()) == ("news.sports", "event", "duo/reporter", {"n": 1})
        assert second.to == "news.weather"
    kernel.wait_cancel(rid)
    assert kernel.frames[-1].cancel.request_id == rid


def test_a_slow_consumer_error_ends_the_subscription(kernel, agent):
    events = agent.subscribe("news.**")
    rid, _ = kernel.wait_request("subscribe")
    kernel.chunk(rid, id="e1", to="news.a", type="event")
    kernel.error(rid, pb.ERROR_CODE_SLOW_CONSUMER, "fell behind")
    assert next(events).id == "e1"
    with pytest.raises(agentkit.SlowConsumer):
        next(events)
    assert list(events) == []


# -- memory ---------------------------------------------------------------

def _item(**fields):
    return pb.MemoryList(entries=[pb.MemoryItem(**fields)])


def test_memory_put_get_delete(kernel, agent):
    kernel.on("mem_put", lambda rid, m: _item(key=m.key, value=m.value, tags=m.tags, scope=m.scope,
                                                expires_at_ns=99))
    stored = agent.memory.put("item-1", {"words": 2}, scope="shared/duo", tags=["draft", "v1"], ttl=1.5)
    _, put = kernel.wait_request("mem_put")
    assert (put.scope, put.key, put.value, list(put.tags), put.ttl_ms) == \
        ("shared/duo", "item-1", '{"words":2}', ["draft", "v1"], 1500)
    assert stored.json() == {"words": 2} and stored.tags == ("draft", "v1") and stored.expires_at_ns == 99

    agent.memory.put("plain", "text")
    _, plain = kernel.wait_request("mem_put", 2)
    assert (plain.scope, plain.value, plain.ttl_ms) == ("long-term", "text", 0)

    kernel.on("mem_get", lambda rid, m: Err(pb.ERROR_CODE_NOT_FOUND, "no such key")
              if m.key == "missing" else _item(key=m.key, value="v", scope=m.scope))
    assert agent.memory.get("missing") is None
    assert agent.memory.get("here", scope="working").value == "v"
    _, get = kernel.wait_request("mem_get", 2)
    assert (get.key, get.scope) == ("here", "working")

    kernel.on("mem_delete", Err(pb.ERROR_CODE_NOT_FOUND, "gone"))
    assert agent.memory.delete("k") is None


def test_memory_search_list_share(kernel, agent):
    kernel.on("mem_search", pb.MemoryList(entries=[pb.MemoryItem(key="a", value="x", score=2.5),
                                                   pb.MemoryItem(key="b", value="y", score=1.0)]))
    found = agent.memory.search("alpha beta", scope="shared/duo", limit=5)
    assert [(i.key, i.score) for i in found] == [("a", 2.5), ("b", 1.0)]
    _, search = kernel.wait_request("mem_search")
    assert (search.query, search.scope, search.limit) == ("alpha beta", "shared/duo", 5)

    kernel.on("mem_list", pb.MemoryList())
    assert agent.memory.list(scope="context", limit=7) == []
    _, listing = kernel.wait_request("mem_list")
    assert (listing.scope, listing.limit) == ("context", 7)

    kernel.on("mem_share", _item(key="from/writer-1/notes", value="n", scope="long-term"))
    copy = agent.memory.share("notes", to="duo/reviewer")
    _, share = kernel.wait_request("mem_share")
    assert (share.key, share.to, share.scope) == ("notes", "duo/reviewer", "long-term")
    assert copy.key == "from/writer-1/notes"


def test_memory_quota_is_resource_exhausted(kernel, agent):
    kernel.on("mem_put", Err(pb.ERROR_CODE_RESOURCE_EXHAUSTED, "memory quota spent", {"reason": "memory-quota"}))
    with pytest.raises(agentkit.ResourceExhausted) as caught:
        agent.memory.put("k", "v")
    assert caught.value.code == 36 and caught.value.detail == {"reason": "memory-quota"}


# -- tools, checkpoints, capabilities ----------------------------------------

def test_tools_and_call_tool(kernel, agent):
    kernel.on("tools", pb.ToolList(tools=[pb.ToolInfo(name="file.read", capability_kind="file", action="read",
                                                      parameters_schema='{"type":"object"}', source="built-in")]))
    (tool,) = agent.tools()
    assert (tool.name, tool.capability_kind, tool.action, tool.source, tool.schema) == \
        ("file.read", "file", "read", "built-in", {"type": "object"})

    kernel.on("tool_call", pb.ToolCallResponse(call_id="c1", result_json='{"content":"hi","size":2}', is_error=False,
                                               grant_id="g1", duration_us=120, approved=True))
    result = agent.call_tool("file.read", {"path": "/srv/a.txt"})
    _, call = kernel.wait_request("tool_call")
    assert call.tool == "file.read" and json.loads(call.arguments_json) == {"path": "/srv/a.txt"}
    assert result == agentkit.ToolResult("c1", {"content": "hi", "size": 2}, False, "g1", 120, True)


def test_checkpoints(kernel, agent):
    kernel.on("save_checkpoint", lambda rid, m: pb.Checkpoint(path="duo/writer", saved_at_ns=1, size=len(m.data)))
    assert agent.save_checkpoint({"handled": 2, "ids": ["a"]}).size == len(b'{"handled":2,"ids":["a"]}')
    agent.save_checkpoint(b"\x00raw")
    agent.save_checkpoint("text")
    assert [kernel.wait_request("save_checkpoint", n)[1].data for n in (1, 2, 3)] == \
        [b'{"handled":2,"ids":["a"]}', b"\x00raw", b"text"]

    kernel.on("load_checkpoint", pb.Checkpoint())
    assert agent.load_checkpoint() is None and agent.load_checkpoint_json() is None
    kernel.on("load_checkpoint", pb.Checkpoint(path="duo/writer", saved_at_ns=10, data=b'{"handled":2}',
                                               agent_id="abc"))
    assert agent.load_checkpoint() == b'{"handled":2}'
    assert agent.load_checkpoint_json() == {"handled": 2}
    assert agent.load_checkpoint_info().agent_id == "abc"


def test_ready_capabilities_check(kernel, agent):
    kernel.on("ready", pb.ReadyResponse())
    assert agent.ready() is None
    kernel.on("my_capabilities", pb.CapabilityList(capabilities=[
        pb.CapabilityInfo(id="g1", uri="capability://memory/shared/duo?action=read,write", source="policy:duo/writer",
                          remaining_uses=4)]))
    (grant,) = agent.capabilities()
    assert (grant.id, grant.source, grant.remaining_uses) == ("g1", "policy:duo/writer", 4)
    kernel.on("cap_check", lambda rid, m: pb.CapExplainResponse(allowed=m.action == "read", grant_id="g1",
                                                                reasons=[] if m.action == "read" else ["no"]))
    assert agent.check("read", "file/srv/a.txt")
    denied = agent.check("write", "file/srv/a.txt")
    assert not denied and denied.reasons == ["no"]
    _, check = kernel.wait_request("cap_check")
    assert (check.action, check.resource) == ("read", "file/srv/a.txt")


def test_log_writes_a_prefixed_line_to_stderr(kernel, agent, capsys):
    agent.log("working on it", level="warn")
    assert capsys.readouterr().err == "writer-1 warn: working on it\n"


# -- the connection going away ------------------------------------------------

def _pending_call(agent, results):
    def run():
        try:
            agent.call_tool("shell.execute", {"command": "sleep 1"})
        except Exception as error:  # noqa: BLE001
            results.append(error)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_an_oversized_frame_fails_pending_calls(kernel, agent):
    kernel.on("tool_call", None)
    failures = []
    thread = _pending_call(agent, failures)
    kernel.wait_request("tool_call")
    inbox = agent.messages()
    kernel.wait_request("receive")
    kernel.send_raw(struct.pack(">I", (64 << 20) + 1))  # over the client's limit
    thread.join(5)
    (failure,) = failures
    assert isinstance(failure, agentkit.ConnectionClosed) and "over this client's limit" in str(failure)
    with pytest.raises(agentkit.ConnectionClosed):
        next(inbox)
    with pytest.raises(agentkit.ConnectionClosed):
        agent.ready()
    assert agent.closed
    kernel.wait_until(lambda: kernel.eof)  # the client hung up


def test_the_kernel_closing_fails_pending_calls(kernel, agent):
    kernel.on("tool_call", None)
    failures = []
    thread = _pending_call(agent, failures)
    kernel.wait_request("tool_call")
    kernel.close()
    thread.join(5)
    assert isinstance(failures[0], agentkit.ConnectionClosed)
    assert isinstance(failures[0], ConnectionError)
    with pytest.raises(agentkit.ConnectionClosed):
        agent.send("x", text="y")


def test_a_connection_level_error_closes(kernel, agent):
    kernel.on("tool_call", None)
    failures = []
    thread = _pending_call(agent, failures)
    kernel.wait_request("tool_call")
    kernel.error(0, pb.ERROR_CODE_MALFORMED_FRAME, "stream ended inside a frame")
    thread.join(5)
    (failure,) = failures
    assert isinstance(failure, agentkit.ConnectionClosed)
    assert failure.code == 2 and "MALFORMED_FRAME: stream ended inside a frame" in str(failure)


def test_a_frame_over_the_kernels_limit_is_refused_locally(socketpair):
    welcome = pb.Welcome(version=1, max_frame_size=1024, agent=pb.AgentSelf(name="small"))
    kernel = FakeKernel(socketpair[1], welcome=welcome)
    agent = agentkit.connect(fd=socketpair[0].detach())
    with pytest.raises(agentkit.FrameTooLarge):
        agent.send("x", b"z" * 2000)
    assert kernel.requests == []
    kernel.on("ready", pb.ReadyResponse())
    agent.ready()  # still open
    agent.close()
    kernel.close()


def test_close_fails_pending_calls(kernel, agent):
    kernel.on("tool_call", None)
    failures = []
    thread = _pending_call(agent, failures)
    kernel.wait_request("tool_call")
    agent.close()
    thread.join(5)
    assert isinstance(failures[0], agentkit.ConnectionClosed)
    assert "closed by this process" in str(failures[0])


def test_concurrent_calls_are_matched_by_correlation_id(kernel, agent):
    held = []

    def answer(rid, message):
        if message.key == "slow":
            held.append(rid)
            return None
        return _item(key=message.key, value=message.key.upper())
    kernel.on("mem_get", answer)
    out = {}
    slow = threading.Thread(target=lambda: out.setdefault("slow", agent.memory.get("slow")))
    slow.start()
    kernel.wait_until(lambda: held)
    assert agent.memory.get("fast").value == "FAST"
    kernel.respond(held[0], "mem_get", _item(key="slow", value="SLOW"))
    slow.join(5)
    assert out["slow"].value == "SLOW"


def test_many_threads_share_one_connection(kernel, agent):
    kernel.on("mem_get", lambda rid, m: _item(key=m.key, value=f"{m.key}@{rid}"))
    errors = []

    def worker(n):
        try:
            for i in range(50):
                key = f"t{n}-{i}"
                assert agent.memory.get(key).value.startswith(key + "@")
        except Exception as error:  # noqa: BLE001
            errors.append(error)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    ids = [rid for rid, _, _ in kernel.requests]
    assert sorted(ids) == list(range(1, 401))


def test_ack_later_batches_and_goes_when_the_reader_waits(kernel, agent):
    kernel.on("ack", lambda rid, m: pb.AckResponse(removed=len(m.ids)))
    kernel.on("receive", None)
    inbox = agent.messages()
    rid, _ = kernel.wait_request("receive")
    kernel.chunk(rid, id="a1", type="message")
    kernel.chunk(rid, id="a2", type="message")
    # Both delivered before the reader starts: a2 must be waiting for it.
    deadline = time.monotonic() + 5
    while inbox._queue.qsize() < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    first = next(inbox)
    agent.ack_later(first)
    agent.ack_later("x0")
    assert "ack" not in kernel.calls(), "nothing goes while the reader has work"
    assert next(inbox).id == "a2"   # a2 was waiting: the reader did not wait
    assert "ack" not in kernel.calls()
    with pytest.raises(TimeoutError):
        inbox.next(timeout=0.05)    # about to wait: the acks go, in one call
    _, request = kernel.wait_request("ack")
    assert list(request.ids) == ["a1", "x0"]
    # A full batch goes at once.
    agent.ack_later(*[f"m{i}" for i in range(agentkit._core.Connection.ACK_BATCH)])
    _, request = kernel.wait_request("ack", n=2)
    assert len(request.ids) == agentkit._core.Connection.ACK_BATCH
    assert all(f.quiet for f in kernel.frames if f.WhichOneof("body") == "request"
               and f.request.WhichOneof("call") == "ack"), "nobody waits for their answers"
    inbox.close()


def test_a_refused_quiet_response_is_logged_and_serving_goes_on(kernel, agent, capfd):
    kernel.on("send", Err(pb.ERROR_CODE_INVALID_ARGUMENT, "a payload of 2000000 bytes: at most 1048576"))
    kernel.on("ack", lambda rid, m: pb.AckResponse(removed=len(m.ids)))
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("answered", agent.serve(lambda m: "late",
                                                                                        max_requests=2)))
    thread.start()
    rid, _ = kernel.wait_request("receive")
    kernel.chunk(rid, id="q1", from_="boss", type="request", acked_by_response=True)  # its requester waits
    kernel.chunk(rid, id="q2", from_="boss", type="request", acked_by_response=True)
    thread.join(5)
    assert result["answered"] == 2
    kernel.wait_request("send", 2)  # serve returned without waiting for it: it may still be on its way
    sends = [request_id for request_id, call, _ in kernel.requests if call == "send"]
    assert len(sends) == 2
    err, deadline = "", time.monotonic() + 5
    while err.count("INVALID_ARGUMENT") < 2 and time.monotonic() < deadline:  # written by the reader thread
        time.sleep(0.01)
        err += capfd.readouterr().err
    for request_id in sends:
        assert f"agentkit: the kernel refused call {request_id}, which nothing waited for (a quiet send or ack, or " \
            "a call given up): INVALID_ARGUMENT: a payload of 2000000 bytes: at most 1048576" in err, err
    assert "ack" not in kernel.calls(), "their responses removed them"
