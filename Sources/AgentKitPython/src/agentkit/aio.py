"""The asyncio agent API: `await agentkit.aio.connect()` -> `AsyncAgent`.

    import asyncio, agentkit.aio

    async def main():
        async with await agentkit.aio.connect() as agent:
            async for message in agent.messages():
                ...

The same calls as `Agent`, as coroutines, and async iterators for
messages() and subscribe(). It is not a second protocol implementation: the
threaded core does the I/O and each answer is handed to the running loop
(asyncio.wrap_future, loop.call_soon_threadsafe).
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import time
import uuid
from typing import Any, AsyncIterator, Callable, Optional, Union

from ._api import UNSET, Calls, Ended, StreamState, encode_result
from ._core import DEFAULT_MAX_FRAME_SIZE
from ._proto import pb
from .agent import DEFAULT_CLIENT, Agent, _result
from .agent import connect as _connect_sync
from .errors import AgentOSError, NotFound
from .models import Message, Sent

__all__ = ["connect", "AsyncAgent", "AsyncMessageStream", "AsyncStreamWriter"]


async def connect(fd: Union[int, Any, None] = None, client: str = DEFAULT_CLIENT, *,
                  timeout: Optional[float] = None, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                  handshake_timeout: Optional[float] = 30.0) -> "AsyncAgent":
    """Connects and says hello (as `agentkit.connect`), without blocking the loop."""
    loop = asyncio.get_running_loop()
    agent = await loop.run_in_executor(None, functools.partial(
        _connect_sync, fd, client, timeout=timeout, max_frame_size=max_frame_size,
        handshake_timeout=handshake_timeout))
    return AsyncAgent(agent)


class AsyncAgent(Calls):
    """`Agent` for asyncio: every kernel call is a coroutine (memory's too);
    `messages()` and `subscribe()` are async iterators. `sync` is the
    underlying `Agent` (usable from other threads)."""

    def __init__(self, agent: Agent):
        self.sync = agent
        self._conn = agent._conn
        self._seen = agent._seen
        self._init_identity(agent.welcome)

    @property
    def timeout(self) -> Optional[float]:
        return self.sync.timeout

    async def _exec(self, field, request, parse, timeout=None, none_if_not_found=False):
        timeout = self.sync.timeout if timeout is None else timeout
        request_id, future = self._conn.start_call(field, request)
        try:
            response = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except AgentOSError as error:
            if none_if_not_found and isinstance(error, NotFound):
                return None
            raise
        except asyncio.TimeoutError:
            self._conn.cancel(request_id)
            raise TimeoutError(f"{field}: no answer from the kernel within {timeout} s (cancelled)") from None
        except BaseException:  # the task was cancelled: tell the kernel too
            self._conn.cancel(request_id)
            raise
        return parse(_result(field, response))

    # -- the mailbox ---------------------------------------------------

    def messages(self, accept: Optional[Callable[[Message], bool]] = None) -> "AsyncMessageStream":
        """The mailbox as an async iterator (see `Agent.messages`)."""
        return AsyncMessageStream(self._conn, "receive", pb.ReceiveRequest(), self._seen, accept)

    async def serve(self, handler: Callable[[Message], Any], on_message: Optional[Callable[[Message], Any]] = None,
                    on_error: Optional[Callable[[Message, BaseException], Any]] = None,
                    max_requests: Optional[int] = None) -> int:
        """As `Agent.serve`; the handler and callbacks may be coroutine functions."""
        answered = 0
        async with self.messages() as inbox:
            async for message in inbox:
                if message.type != "request":
                    if on_message is not None:
                        await _maybe_await(on_message(message))
                    await self.ack(message)
                    continue
                try:
                    result = await _maybe_await(handler(message))
                except Exception as error:
                    if on_error is None:
                        raise
                    result = await _maybe_await(on_error(message, error))
                    if result is None:
                        await self.ack(message)
                        continue
                data, content_type = encode_result(result)
                if message.acked_by_response:  # its requester waits; the response removes it
                    self.respond_later(message, data, content_type=content_type)
                else:  # stored: acked only once its response is safe
                    await self.respond(message, data, content_type=content_type)
                    await self.ack(message)
                answered += 1
                if max_requests is not None and answered >= max_requests:
                    break
        return answered

    def open_stream(self, to: str, stream_id: Optional[str] = None,
                    content_type: Optional[str] = None) -> "AsyncStreamWriter":
        """As `Agent.open_stream`; write and close are coroutines."""
        return AsyncStreamWriter(self, to, stream_id or uuid.uuid4().hex, content_type)

    async def read_stream(self, stream_id: str, timeout: Optional[float] = None) -> AsyncIterator[Message]:
        """As `Agent.read_stream`, an async iterator."""
        def accept(message: Message) -> bool:
            return message.type == "stream" and message.correlation_id == stream_id
        async with self.messages(accept=accept) as inbox:
            while True:
                try:
                    chunk = await inbox.next(timeout)
                except StopAsyncIteration:
                    return
                yield chunk
                await self.ack(chunk)
                if chunk.end:
                    return

    def subscribe(self, pattern: str) -> "AsyncMessageStream":
        """Topic events as an async iterator (see `Agent.subscribe`)."""
        return AsyncMessageStream(self._conn, "subscribe", pb.SubscribeRequest(pattern=pattern), None, None)

    # -- the connection ------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._conn.closed

    async def close(self) -> None:
        """Closes the connection; calls in flight fail with ConnectionClosed."""
        await asyncio.get_running_loop().run_in_executor(None, self.sync.close)

    async def __aenter__(self) -> "AsyncAgent":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class AsyncMessageStream:
    """An async iterator of `Message`s from a kernel stream. `await
    next(timeout)` waits at most `timeout` seconds (TimeoutError); `close()`
    (or leaving `async with`) sends Cancel."""

    def __init__(self, connection, field: str, request: Any, seen, accept):
        self._conn = connection
        self._loop = asyncio.get_running_loop()
        self._queue: "asyncio.Queue" = asyncio.Queue()
        self._state = StreamState(seen, accept)

        def deliver(kind: str, value: Any) -> None:  # on the reader thread
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
            except RuntimeError:
                pass  # the loop is closed: nobody is listening
        self.request_id = connection.start_stream(field, request, deliver)

    @property
    def end_reason(self) -> Optional[str]:
        return self._state.end_reason

    async def next(self, timeout: Optional[float] = None) -> Message:
        """The next message; StopAsyncIteration at the end, TimeoutError after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._state.done:
                raise StopAsyncIteration
            if self._queue.empty():
                self._conn.flush_acks()  # about to wait: acks made meanwhile go now
            try:
                if deadline is None:
                    kind, value = await self._queue.get()
                else:
                    kind, value = await asyncio.wait_for(self._queue.get(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise TimeoutError(f"no message within {timeout} s") from None
            try:
                message = self._state.take(kind, value)
            except Ended:
                raise StopAsyncIteration from None
            if message is not None:
                return message

    def __aiter__(self) -> "AsyncMessageStream":
        return self

    async def __anext__(self) -> Message:
        return await self.next()

    def close(self) -> None:
        """Cancels the stream (Cancel{request_id}); iteration then ends."""
        if not self._state.done:
            self._state.done = True
            self._conn.cancel(self.request_id)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "AsyncMessageStream":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class AsyncStreamWriter:
    """`StreamWriter` for asyncio: `await write(...)`, `await close()`, `async with`."""

    def __init__(self, agent: AsyncAgent, to: str, stream_id: str, content_type: Optional[str] = None):
        self._agent = agent
        self.to = to
        self.stream_id = stream_id
        self.content_type = content_type
        self.closed = False

    async def write(self, payload: Any = None, *, json: Any = UNSET, text: Optional[str] = None) -> Sent:
        if self.closed:
            raise AgentOSError(0, "STREAM_CLOSED", f"the stream {self.stream_id} to {self.to} is closed")
        return await self._agent.send(self.to, payload, json=json, text=text, content_type=self.content_type,
                                      type="stream", correlation_id=self.stream_id)

    async def close(self, payload: Any = None, *, json: Any = UNSET, text: Optional[str] = None) -> Optional[Sent]:
        if self.closed:
            return None
        self.closed = True
        return await self._agent.send(self.to, payload, json=json, text=text, content_type=self.content_type,
                                      type="stream", correlation_id=self.stream_id, end=True)

    async def __aenter__(self) -> "AsyncStreamWriter":
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            await self.close()
        except AgentOSError:
            if exc_type is None:
                raise
