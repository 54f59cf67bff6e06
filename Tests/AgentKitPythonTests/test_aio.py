"""agentkit.aio against the fake kernel (plain asyncio.run: no plugin needed)."""
from __future__ import annotations

import asyncio
import json

import pytest

import agentkit
import agentkit.aio
from agentkit._proto import pb
from fake_kernel import Err


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_connect_and_unary_calls(kernel, agent_fd):
    kernel.on("send", lambda rid, m: pb.SendResponse(id=f"s{rid}", to=m.to, depth=1))
    kernel.on("mem_get", Err(pb.ERROR_CODE_NOT_FOUND, "none"))
    kernel.on("load_checkpoint", pb.Checkpoint(saved_at_ns=3, data=b'{"handled":1}'))

    async def main():
        async with await agentkit.aio.connect(fd=agent_fd) as agent:
            assert agent.me.name == "writer-1" and agent.identity == "writer-1"
            sent = await agent.send("duo/reviewer", json={"a": 1})
            assert sent == agentkit.Sent("s1", "duo/reviewer", 1)
            assert await agent.memory.get("missing") is None
            assert await agent.load_checkpoint_json() == {"handled": 1}
            # Concurrent calls on one connection.
            many = await asyncio.gather(*(agent.send("x", text=str(i)) for i in range(5)))
            assert sorted(s.id for s in many) == [f"s{i}" for i in range(4, 9)]
        assert agent.closed
    run(main())
    assert kernel.hellos[0].client.startswith("agentkit-python ")


def test_errors_are_raised_in_the_coroutine(kernel, agent_fd):
    kernel.on("publish", Err(pb.ERROR_CODE_PERMISSION_DENIED, "needs capability://topic/x?action=publish"))

    async def main():
        agent = await agentkit.aio.connect(fd=agent_fd)
        with pytest.raises(agentkit.PermissionDenied) as caught:
            await agent.publish("x", json=1)
        assert caught.value.code == 22
        await agent.close()
    run(main())


def test_messages_async_iterator_deduplicates(kernel, agent_fd):
    async def main():
        agent = await agentkit.aio.connect(fd=agent_fd)
        inbox = agent.messages()
        rid, _ = await asyncio.get_running_loop().run_in_executor(None, kernel.wait_request, "receive")
        for mid in ("a", "b", "a", "c"):
            kernel.chunk(rid, id=mid, type="message", payload=mid.encode())
        kernel.end(rid, "kernel-shutdown")
        got = [m.id async for m in inbox]
        assert got == ["a", "b", "c"] and inbox.end_reason == "kernel-shutdown"
        await agent.close()
    run(main())


def test_subscribe_close_sends_cancel_and_timeout(kernel, agent_fd):
    async def main():
        agent = await agentkit.aio.connect(fd=agent_fd)
        loop = asyncio.get_running_loop()
        async with agent.subscribe("news.**") as events:
            rid, request = await loop.run_in_executor(None, kernel.wait_request, "subscribe")
            assert request.pattern == "news.**"
            kernel.chunk(rid, id="e1", to="news.a.b", type="event", payload=b'{"n":1}')
            event = await events.next(timeout=2)
            assert (event.to, event.json()) == ("news.a.b", {"n": 1})
            with pytest.raises(TimeoutError):
                await events.next(timeout=0.05)
        await loop.run_in_executor(None, kernel.wait_cancel, rid)
        await agent.close()
    run(main())


def test_a_call_timeout_raises_timeout_error_and_cancels(kernel, agent_fd):
    kernel.on("tool_call", None)

    async def main():
        agent = await agentkit.aio.connect(fd=agent_fd)
        with pytest.raises(TimeoutError):
            await agent.call_tool("file.read", {"path": "/a"}, timeout=0.1)
        rid, _ = kernel.wait_request("tool_call")
        await asyncio.get_running_loop().run_in_executor(None, kernel.wait_cancel, rid)
        await agent.close()
    run(main())


def test_a_cancelled_task_cancels_its_request(kernel, agent_fd):
    kernel.on("request", None)

    async def main():
        agent = await agentkit.aio.connect(fd=agent_fd)
        task = asyncio.ensure_future(agent.request("duo/reviewer", json={}))
        rid, _ = await asyncio.get_running_loop().run_in_executor(None, kernel.wait_request, "request")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.get_running_loop().run_in_executor(None, kernel.wait_cancel, rid)
        await agent.close()
    run(main())


def test_serve_with_an_async_handler_and_stream_writer(kernel, agent_fd):
    kernel.on("send", lambda rid, m: pb.SendResponse(id=f"s{rid}", to=m.to))
    kernel.on("ack", lambda rid, m: pb.AckResponse(removed=len(m.ids)))

    async def handler(message):
        await asyncio.sleep(0)
        return {"got": message.json()["item"]}

    async def main():
        agent = await agentkit.aio.connect(fd=agent_fd)
        serving = asyncio.ensure_future(agent.serve(handler, max_requests=1))
        rid, _ = await asyncio.get_running_loop().run_in_executor(None, kernel.wait_request, "receive")
        kernel.chunk(rid, id="q7", from_="duo/boss", type="request", payload=b'{"item":7}')
        assert await serving == 1
        async with agent.open_stream("duo/boss", stream_id="s-1") as stream:
            await stream.write(json=[1])
        await agent.close()
    run(main())
    sends = [m for _, c, m in kernel.requests if c == "send"]
    response, chunk, last = sends
    assert (response.type, response.correlation_id, json.loads(response.payload)) == ("response", "q7", {"got": 7})
    assert (chunk.type, chunk.correlation_id, chunk.end, last.end) == ("stream", "s-1", False, True)
    assert kernel.calls() == ["receive", "send", "ack", "send", "send"]


def test_pending_async_calls_fail_when_the_kernel_goes(kernel, agent_fd):
    kernel.on("tool_call", None)

    async def main():
        agent = await agentkit.aio.connect(fd=agent_fd)
        call = asyncio.ensure_future(agent.call_tool("x", {}))
        await asyncio.get_running_loop().run_in_executor(None, kernel.wait_request, "tool_call")
        kernel.close()
        with pytest.raises(agentkit.ConnectionClosed):
            await call
        inbox_error = None
        try:
            agent.messages()
        except agentkit.ConnectionClosed as error:
            inbox_error = error
        assert inbox_error is not None
    run(main())
