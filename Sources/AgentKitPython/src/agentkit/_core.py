"""The protocol core: framing, the handshake, and one reader thread that
hands every frame to the call or stream waiting for its correlation id.

Both the synchronous `Agent` and the asyncio `AsyncAgent` sit on this one
implementation: a unary call is a `concurrent.futures.Future` (asyncio wraps
it), a stream is a callback the reader thread calls with each item (a
`queue.Queue` puts it, or the event loop's call_soon_threadsafe).

Framing (PROTOCOL.md §2): a 4-byte big-endian length, then one serialized
`agentos.v1.Envelope`.
"""
from __future__ import annotations

import concurrent.futures
import socket
import struct
import sys
import threading
from typing import Callable, Dict, List, Optional, Tuple, Union

from google.protobuf.message import DecodeError

from ._proto import pb
from .errors import AgentOSError, ConnectionClosed, FrameTooLarge, VersionMismatch, code_name, from_frame

#: The protocol versions this client speaks (PROTOCOL.md §4).
MIN_PROTOCOL_VERSION = 1
MAX_PROTOCOL_VERSION = 1
#: The largest frame accepted from the kernel. Its frames are not size-checked
#: (big list answers), PROTOCOL.md asks for at least 16 MiB.
DEFAULT_MAX_FRAME_SIZE = 64 << 20
#: What the kernel accepts when its Welcome does not say.
KERNEL_DEFAULT_MAX_FRAME_SIZE = 16 << 20

_HEADER = struct.Struct(">I")

# What a stream's callback receives: ("chunk", pb.StreamChunk),
# ("end", reason: str) or ("error", AgentOSError). "end" and "error" are last.
Deliver = Callable[[str, object], None]


class _Call:
    __slots__ = ("future", "field")

    def __init__(self, field: str):
        self.field = field
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        # Running: nobody can cancel it under the reader's feet (an asyncio
        # wrapper's cancel then only detaches; `Connection.cancel` tells the kernel).
        self.future.set_running_or_notify_cancel()


class _Stream:
    __slots__ = ("deliver", "field")

    def __init__(self, field: str, deliver: Deliver):
        self.field = field
        self.deliver = deliver


def _closed(message: str, code: int = 0, detail: Optional[dict] = None) -> ConnectionClosed:
    return ConnectionClosed(code, ConnectionClosed.name, message, detail)


def _copy(error: ConnectionClosed) -> ConnectionClosed:
    # A fresh exception per waiter, so tracebacks do not pile up on one object.
    return type(error)(error.code, error.name, error.message, error.detail)


class Connection:
    """One handshaken connection to the kernel (normally the agent's socketpair).

    Thread-safe: requests may be started from any thread; writes are
    serialized by a lock; request ids are 1, 2, 3, ... and never reused.
    """

    def __init__(self, sock: socket.socket, client: str, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 handshake_timeout: Optional[float] = 30.0):
        self._sock = sock
        self._max_frame_size = max_frame_size
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending: Dict[int, Union[_Call, _Stream]] = {}
        self._later_acks: List[str] = []
        self._next_id = 1
        self._closed: Optional[ConnectionClosed] = None
        try:
            self.welcome: pb.Welcome = self._handshake(client, handshake_timeout)
        except BaseException:
            sock.close()
            raise
        self.kernel_max_frame_size = self.welcome.max_frame_size or KERNEL_DEFAULT_MAX_FRAME_SIZE
        self._reader = threading.Thread(target=self._read_loop, name="agentkit-reader", daemon=True)
        self._reader.start()

    # -- the handshake ---------------------------------------------------

    def _handshake(self, client: str, timeout: Optional[float]) -> pb.Welcome:
        hello = pb.Envelope(hello=pb.Hello(min_version=MIN_PROTOCOL_VERSION, max_version=MAX_PROTOCOL_VERSION,
                                           client=client))
        self._sock.settimeout(timeout)
        try:
            self._sock.sendall(self._frame(hello))
            reply = self._read_envelope()
        except socket.timeout:
            raise AgentOSError(0, "HANDSHAKE_TIMEOUT", f"no welcome from the kernel within {timeout} s") from None
        except _FrameOverLimit as error:
            raise _closed(f"the kernel announced a frame of {error.size} bytes during the handshake, over this "
                          f"client's limit of {self._max_frame_size}") from None
        except _BadPayload as error:
            raise _closed(f"the kernel answered the hello with a frame that is not an Envelope ({error})") from None
        except (EOFError, OSError) as error:
            raise _closed(f"the kernel closed the connection during the handshake ({error or 'end of stream'})") from None
        finally:
            if self._sock.fileno() >= 0:
                self._sock.settimeout(None)
        body = reply.WhichOneof("body")
        if body == "error":
            raise from_frame(reply.error)
        if body != "welcome":
            raise AgentOSError(0, "PROTOCOL_ERROR", f"the kernel answered the hello with {body or 'an empty envelope'}")
        welcome = reply.welcome
        if not MIN_PROTOCOL_VERSION <= welcome.version <= MAX_PROTOCOL_VERSION:
            raise VersionMismatch(4, "VERSION_MISMATCH", f"the kernel chose protocol version {welcome.version}; this "
                               f"client speaks {MIN_PROTOCOL_VERSION}-{MAX_PROTOCOL_VERSION}")
        return welcome

    # -- frames ------------------------------------------------------------

    @staticmethod
    def _frame(envelope: pb.Envelope) -> bytes:
        payload = envelope.SerializeToString()
        return _HEADER.pack(len(payload)) + payload

    def _recv_exact(self, n: int) -> bytes:
        buffer = bytearray(n)
        view = memoryview(buffer)
        got = 0
        while got < n:
            k = self._sock.recv_into(view[got:], n - got)
            if k == 0:
                raise EOFError("end of stream" if got == 0 else "end of stream inside a frame")
            got += k
        return bytes(buffer)

    def _read_envelope(self) -> pb.Envelope:
        (n,) = _HEADER.unpack(self._recv_exact(4))
        if n > self._max_frame_size:
            raise _FrameOverLimit(n)
        payload = self._recv_exact(n) if n else b""
        try:
            return pb.Envelope.FromString(payload)
        except DecodeError as error:
            raise _BadPayload(str(error)) from None

    def send(self, envelope: pb.Envelope) -> None:
        """Writes one frame (under the write lock)."""
        frame = self._frame(envelope)
        if len(frame) - 4 > self.kernel_max_frame_size:
            raise FrameTooLarge(1, "FRAME_TOO_LARGE", f"a frame of {len(frame) - 4} bytes: the kernel accepts at most "
                                f"{self.kernel_max_frame_size}")
        with self._write_lock:
            if self._closed is not None:
                raise _copy(self._closed)
            try:
                self._sock.sendall(frame)
            except OSError as error:
                failure = _closed(f"writing to the kernel failed: {error}")
            else:
                return
        self._shutdown(failure)
        raise _copy(self._closed or failure)

    # -- calls and streams ---------------------------------------------

    def _send_request(self, field: str, request, entry: Optional[Union[_Call, _Stream]] = None) -> int:
        """Writes a request of call `field`, registered under `entry` (what
        its answers go to); without one, quiet: nothing waits for it."""
        if self._later_acks and field != "ack":
            self.flush_acks()  # acks made meanwhile go before the call
        with self._lock:
            if self._closed is not None:
                raise _copy(self._closed)
            request_id = self._next_id
            self._next_id += 1
            if entry is not None:
                self._pending[request_id] = entry
        envelope = pb.Envelope(request_id=request_id, quiet=entry is None)
        getattr(envelope.request, field).CopyFrom(request)
        try:
            self.send(envelope)
        except BaseException:
            with self._lock:
                self._pending.pop(request_id, None)
            raise
        return request_id

    def _start(self, entry: Union[_Call, _Stream], request: pb.Request) -> int:
        return self._send_request(entry.field, request, entry)

    def start_call(self, field: str, request) -> Tuple[int, concurrent.futures.Future]:
        """Sends a unary request (`field` names the Request's call, e.g.
        "mem_get"). The future's result is the `pb.Response`; its exception
        an `AgentOSError`."""
        call = _Call(field)
        return self._start(call, request), call.future

    def start_stream(self, field: str, request, deliver: Deliver) -> int:
        """Sends a streaming request; `deliver(kind, value)` is called from the
        reader thread for each item (it must not block)."""
        return self._start(_Stream(field, deliver), request)

    # Acks queued by ack_later go as one call once this many wait.
    ACK_BATCH = 64

    def send_quietly(self, field: str, request) -> None:
        """Sends a send or ack call with the envelope's quiet flag: the
        kernel answers it only if it fails, and nothing waits for that
        answer; a failure is written to stderr (the agent's log)."""
        self._send_request(field, request)

    def ack_later(self, ids: List[str]) -> None:
        """Queues acks that nobody waits for: they go as one ack call once
        ACK_BATCH wait, before the next call this connection makes, when a
        mailbox reader of it is about to wait, or at close (flush_acks)."""
        with self._lock:
            self._later_acks.extend(ids)
            full = len(self._later_acks) >= self.ACK_BATCH
        if full:
            self.flush_acks()

    def flush_acks(self) -> None:
        """Sends the queued acks now, in one quiet call (a lost ack leaves
        its message to be delivered again)."""
        with self._lock:
            ids, self._later_acks = self._later_acks, []
        if not ids:
            return
        try:
            self.send_quietly("ack", pb.AckRequest(ids=ids))
        except AgentOSError:
            return

    def cancel(self, request_id: int) -> None:
        """Stops waiting for `request_id` and, if it was still in flight,
        sends Cancel{request_id} (PROTOCOL.md §5.1)."""
        with self._lock:
            entry = self._pending.pop(request_id, None)
        if entry is None or self._closed is not None:
            return
        try:
            self.send(pb.Envelope(cancel=pb.Cancel(request_id=request_id)))
        except AgentOSError:
            pass

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def close(self) -> None:
        """Closes the connection; whatever is in flight fails with ConnectionClosed."""
        self.flush_acks()
        self._shutdown(_closed("the connection was closed by this process"))
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=2.0)
        with self._write_lock:
            self._sock.close()

    # -- the reader thread ---------------------------------------------

    def _read_loop(self) -> None:
        failure: ConnectionClosed
        try:
            while True:
                self._dispatch(self._read_envelope())
        except _FrameOverLimit as error:
            failure = _closed(f"the kernel announced a frame of {error.size} bytes, over this client's limit of "
                              f"{self._max_frame_size}; closing")
        except _BadPayload as error:
            failure = _closed(f"the kernel sent a frame that is not an Envelope ({error}); closing")
        except _KernelClosing as error:
            failure = error.failure
        except EOFError as error:
            failure = _closed(f"the kernel closed the connection ({error})")
        except OSError as error:
            failure = _closed(f"reading from the kernel failed: {error}")
        except BaseException as error:  # a bug in a deliver callback: do not leave waiters hanging
            failure = _closed(f"the reader thread failed: {error!r}")
        self._shutdown(failure)
        with self._write_lock:  # nothing writes once closed: the fd can go
            self._sock.close()

    def _dispatch(self, envelope: pb.Envelope) -> None:
        body = envelope.WhichOneof("body")
        request_id = envelope.correlation_id
        if body == "error" and request_id == 0:
            error = envelope.error
            name = code_name(error.code)
            raise _KernelClosing(_closed(f"the kernel closed the connection: {name}: {error.message}",
                                         error.code, dict(error.detail)))
        with self._lock:
            entry = self._pending.get(request_id)
            if entry is None:
                if body == "error":  # nobody to raise it to: the agent's log has it
                    error = envelope.error
                    sys.stderr.write(f"agentkit: the kernel refused call {request_id}, which nothing waited for (a "
                                     f"quiet send or ack, or a call given up): {code_name(error.code)}: "
                                     f"{error.message}\n")
                return  # else a late frame of a call that was cancelled or timed out
            if body != "chunk":
                del self._pending[request_id]
        if isinstance(entry, _Call):
            if body == "response":
                entry.future.set_result(envelope.response)
            elif body == "error":
                entry.future.set_exception(from_frame(envelope.error))
            elif body == "stream_end":
                entry.future.set_exception(AgentOSError(0, "STREAM_ENDED", f"{entry.field} ended: "
                                                        f"{envelope.stream_end.reason or 'no reason'}"))
            elif body == "chunk":
                pass  # not expected for a unary call: ignored
            else:
                entry.future.set_exception(AgentOSError(0, "PROTOCOL_ERROR", f"{entry.field} was answered with {body}"))
        else:
            if body == "chunk":
                entry.deliver("chunk", envelope.chunk)
            elif body == "stream_end":
                entry.deliver("end", envelope.stream_end.reason)
            elif body == "error":
                entry.deliver("error", from_frame(envelope.error))
            else:
                entry.deliver("error", AgentOSError(0, "PROTOCOL_ERROR", f"the stream {entry.field} got {body}"))

    def _shutdown(self, failure: ConnectionClosed) -> None:
        with self._lock:
            if self._closed is not None:
                return
            self._closed = failure
            pending, self._pending = self._pending, {}
        # Unblocks the reader (recv) and any writer stuck in sendall.
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for entry in pending.values():
            if isinstance(entry, _Call):
                entry.future.set_exception(_copy(failure))
            else:
                try:
                    entry.deliver("error", _copy(failure))
                except Exception:
                    pass


class _FrameOverLimit(Exception):
    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


class _BadPayload(Exception):
    pass


class _KernelClosing(Exception):
    def __init__(self, failure: ConnectionClosed):
        super().__init__(failure.message)
        self.failure = failure
