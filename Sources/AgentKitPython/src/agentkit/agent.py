"""The synchronous agent API: `connect()` and `Agent`.

    import agentkit
    agent = agentkit.connect()              # the socket agentd gave it (AGENTOS_FD)
    agent.serve(lambda m: {"echo": m.json()})

Every method is thread-safe; calls from several threads run concurrently on
the one connection (a background thread reads the kernel's frames).
"""
from __future__ import annotations

import concurrent.futures
import os
import queue
import socket
import time
import uuid
from typing import Any, Callable, Iterator, Optional, Union

from ._api import UNSET, Calls, Ended, Seen, StreamState, encode_result
from ._core import DEFAULT_MAX_FRAME_SIZE, Connection
from ._proto import pb
from ._version import __version__
from .errors import AgentOSError, NotFound
from .models import Message, Sent

#: The environment variable holding the agent's socket fd (AgentEnvironment.socketFD).
FD_ENVIRONMENT = "AGENTOS_FD"
DEFAULT_CLIENT = f"agentkit-python {__version__}"

Handler = Callable[[Message], Any]


def _socket_for(fd: Union[int, socket.socket, None]) -> socket.socket:
    if isinstance(fd, socket.socket):
        return fd
    if fd is None:
        text = os.environ.get(FD_ENVIRONMENT, "")
        if not text:
            raise AgentOSError(0, "NOT_AN_AGENT", f"not started by agentd: {FD_ENVIRONMENT} is not set")
        try:
            fd = int(text)
        except ValueError:
            raise AgentOSError(0, "NOT_AN_AGENT", f"{FD_ENVIRONMENT}={text!r} is not a file descriptor number") from None
    try:
        return socket.socket(fileno=fd)
    except OSError as error:
        raise AgentOSError(0, "NOT_AN_AGENT", f"{FD_ENVIRONMENT}={fd} is not a usable socket: {error}") from None


def connect(fd: Union[int, socket.socket, None] = None, client: str = DEFAULT_CLIENT, *,
            timeout: Optional[float] = None, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
            handshake_timeout: Optional[float] = 30.0) -> "Agent":
    """Connects to the kernel and says hello. `fd` defaults to $AGENTOS_FD
    (a socket object is accepted too); `timeout` is the default limit, in
    seconds, of each call (None: wait as long as the kernel takes)."""
    sock = _socket_for(fd)
    connection = Connection(sock, client, max_frame_size=max_frame_size, handshake_timeout=handshake_timeout)
    return Agent(connection, timeout=timeout)


class Agent(Calls):
    """An agent's connection to its kernel. Attributes: `me` (AgentSelf: id,
    name, argv, env, work_dir), `identity` (its mailbox name), `welcome`,
    `memory` (see `Memory`). Use as a context manager to close it."""

    def __init__(self, connection: Connection, *, timeout: Optional[float] = None, seen: Optional[Seen] = None):
        self._conn = connection
        self._seen = seen if seen is not None else Seen()
        self.timeout = timeout
        self._init_identity(connection.welcome)

    def _exec(self, field, request, parse, timeout=None, none_if_not_found=False):
        timeout = self.timeout if timeout is None else timeout
        request_id, future = self._conn.start_call(field, request)
        try:
            response = future.result(timeout)
        except AgentOSError as error:
            if none_if_not_found and isinstance(error, NotFound):
                return None
            raise
        except (concurrent.futures.TimeoutError, TimeoutError):
            self._conn.cancel(request_id)
            raise TimeoutError(f"{field}: no answer from the kernel within {timeout} s (cancelled)") from None
        except BaseException:  # KeyboardInterrupt: tell the kernel to stop too
            self._conn.cancel(request_id)
            raise
        return parse(_result(field, response))

    # -- the mailbox ---------------------------------------------------

    def messages(self, accept: Optional[Callable[[Message], bool]] = None) -> "MessageStream":
        """The mailbox: what waits, oldest first, then what arrives (the
        `receive` stream), as `Message`s. A message already handed out by this
        process is skipped (delivery is at least once); ack what you handled.
        `accept` filters: messages it refuses are neither handed out nor
        remembered. Close the iterator (or use `with`) to cancel the stream."""
        return MessageStream(self._conn, "receive", pb.ReceiveRequest(), self._seen, accept)

    def serve(self, handler: Handler, on_message: Optional[Handler] = None,
              on_error: Optional[Callable[[Message, BaseException], Any]] = None,
              max_requests: Optional[int] = None) -> int:
        """Answers requests until the stream ends (or `max_requests` were
        answered; returns how many). For each message of type request:
        `handler(message)` returns bytes, a str or anything JSON-able, sent as
        the response (with `respond_later` when its requester waits, a refusal
        then logged while serving goes on; else waited for); then the request is acked (unless the response removed
        it: `acked_by_response`). Other messages go to
        `on_message` (if given) and are acked. If the handler raises, the
        exception propagates and the request stays unacked (it comes again
        after a restart), unless `on_error(message, exc)` is given: what it
        returns (if not None) is the response, and the request is acked."""
        answered = 0
        with self.messages() as inbox:
            for message in inbox:
                if message.type != "request":
                    if on_message is not None:
                        on_message(message)
                    self.ack(message)
                    continue
                try:
                    result = handler(message)
                except Exception as error:
                    if on_error is None:
                        raise
                    result = on_error(message, error)
                    if result is None:
                        self.ack(message)
                        continue
                data, content_type = encode_result(result)
                if message.acked_by_response:  # its requester waits; the response removes it
                    self.respond_later(message, data, content_type=content_type)
                else:  # stored: acked only once its response is safe
                    self.respond(message, data, content_type=content_type)
                    self.ack(message)
                answered += 1
                if max_requests is not None and answered >= max_requests:
                    break
        return answered

    # -- streams of messages -------------------------------------------

    def open_stream(self, to: str, stream_id: Optional[str] = None,
                    content_type: Optional[str] = None) -> "StreamWriter":
        """A stream of messages to `to` (type stream, correlation_id =
        `stream_id`, a new random id by default; use a request's id to answer
        it with a stream). `close()` sends the last chunk (end=True)."""
        return StreamWriter(self, to, stream_id or uuid.uuid4().hex, content_type)

    def read_stream(self, stream_id: str, timeout: Optional[float] = None) -> Iterator[Message]:
        """The chunks of stream `stream_id` from the mailbox, in order, up to
        and including the one with `end` set; each is acked once the consumer
        asks for the next (or at the end). `timeout`: at most this long between
        chunks (TimeoutError). Other messages are left for `messages()`;
        chunks this process already got from it are skipped (ack those)."""
        def accept(message: Message) -> bool:
            return message.type == "stream" and message.correlation_id == stream_id
        with self.messages(accept=accept) as inbox:
            while True:
                try:
                    chunk = inbox.next(timeout)
                except StopIteration:  # the kernel ended the receive stream
                    return
                yield chunk
                self.ack(chunk)
                if chunk.end:
                    return

    # -- topics --------------------------------------------------------

    def subscribe(self, pattern: str) -> "MessageStream":
        """Events of the topics matching `pattern` ("news.sports", "news.*",
        "news.**"), as they are published, as `Message`s (type event, `to` =
        the topic). Close it (or use `with`) to cancel. An agent needs
        capability://topic/PATTERN?action=subscribe."""
        return MessageStream(self._conn, "subscribe", pb.SubscribeRequest(pattern=pattern), None, None)

    # -- the connection ------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def close(self) -> None:
        """Closes the connection; calls in flight fail with ConnectionClosed."""
        self._conn.close()

    def __enter__(self) -> "Agent":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _result(field: str, response: "pb.Response"):
    body = response.WhichOneof("result")
    if body != field:
        raise AgentOSError(0, "PROTOCOL_ERROR", f"{field} was answered with {body or 'an empty response'}")
    return getattr(response, body)


class MessageStream:
    """An iterator of `Message`s from a kernel stream (the mailbox or a
    subscription). `next(timeout)` waits at most `timeout` seconds
    (TimeoutError). `close()` sends Cancel; so does leaving a `with` block.
    Iteration ends when the kernel ends the stream (`end_reason` says why);
    an error of the stream (SlowConsumer, ConnectionClosed) is raised."""

    def __init__(self, connection: Connection, field: str, request: Any, seen: Optional[Seen],
                 accept: Optional[Callable[[Message], bool]]):
        self._conn = connection
        self._queue: "queue.Queue" = queue.Queue()
        self._state = StreamState(seen, accept)
        self.request_id = connection.start_stream(field, request, lambda kind, value: self._queue.put((kind, value)))

    @property
    def end_reason(self) -> Optional[str]:
        return self._state.end_reason

    def next(self, timeout: Optional[float] = None) -> Message:
        """The next message; StopIteration at the end, TimeoutError after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._state.done:
                raise StopIteration
            if self._queue.empty():
                self._conn.flush_acks()  # about to wait: acks made meanwhile go now
            try:
                if deadline is None:
                    kind, value = self._queue.get()
                else:
                    kind, value = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no message within {timeout} s") from None
            try:
                message = self._state.take(kind, value)
            except Ended:
                raise StopIteration from None
            if message is not None:
                return message

    def __iter__(self) -> "MessageStream":
        return self

    def __next__(self) -> Message:
        return self.next()

    def close(self) -> None:
        """Cancels the stream (Cancel{request_id}); iteration then ends."""
        if not self._state.done:
            self._state.done = True
            self._conn.cancel(self.request_id)

    def __enter__(self) -> "MessageStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class StreamWriter:
    """Writes a stream of messages (type stream) to one recipient. Each
    `write` is one chunk; `close` sends the last one, with end=True (it may
    carry data too). A `with` block closes it."""

    def __init__(self, agent: Calls, to: str, stream_id: str, content_type: Optional[str] = None):
        self._agent = agent
        self.to = to
        self.stream_id = stream_id
        self.content_type = content_type
        self.closed = False

    def write(self, payload: Any = None, *, json: Any = UNSET, text: Optional[str] = None) -> Sent:
        """Sends one chunk."""
        if self.closed:
            raise AgentOSError(0, "STREAM_CLOSED", f"the stream {self.stream_id} to {self.to} is closed")
        return self._agent.send(self.to, payload, json=json, text=text, content_type=self.content_type,
                                type="stream", correlation_id=self.stream_id)

    def close(self, payload: Any = None, *, json: Any = UNSET, text: Optional[str] = None) -> Optional[Sent]:
        """Sends the last chunk (end=True); a second close does nothing."""
        if self.closed:
            return None
        self.closed = True
        return self._agent.send(self.to, payload, json=json, text=text, content_type=self.content_type,
                                type="stream", correlation_id=self.stream_id, end=True)

    def __enter__(self) -> "StreamWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close()
        except AgentOSError:
            if exc_type is None:
                raise
