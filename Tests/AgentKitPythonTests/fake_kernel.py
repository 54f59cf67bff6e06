"""A fake kernel for the agentkit tests: one end of a socketpair, read by a
thread that answers the Hello with a Welcome and each request as the test
scripts it, and records every frame it gets."""
from __future__ import annotations

import socket
import struct
import threading
import time

from agentkit._proto import pb


def default_welcome() -> pb.Welcome:
    return pb.Welcome(version=1, kernel_version="0.1.0", kernel_pid=4242, max_frame_size=16 << 20,
                      role=pb.PEER_ROLE_AGENT,
                      agent=pb.AgentSelf(id="abcdef123456", name="writer-1", argv=["python3", "writer.py"],
                                         env={"MODE": "test"}, work_dir="/srv/work"))


class Err:
    """A handler's answer that is an Error frame."""

    def __init__(self, code: int, message: str = "", detail=None):
        self.code, self.message, self.detail = code, message, dict(detail or {})


class FakeKernel:
    def __init__(self, sock: socket.socket, welcome=None, hello_reply=None):
        self.sock = sock
        self.welcome = welcome or default_welcome()
        self.hello_reply = hello_reply  # an Envelope to answer the Hello with instead
        self.frames = []                # every Envelope received, in order
        self.requests = []              # (request_id, call, message)
        self.cancels = []               # request ids
        self.hellos = []
        self.handlers = {}              # call -> message | Err | callable(request_id, message)
        self.cond = threading.Condition()
        self.write_lock = threading.Lock()
        self.eof = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    # -- scripting -----------------------------------------------------

    def on(self, call: str, answer) -> None:
        """Answers every `call` request with `answer`: a protobuf message (the
        Response's field), an Err, None (no answer: the test sends it), or a
        callable(request_id, message) returning one of those."""
        self.handlers[call] = answer

    def send(self, envelope: pb.Envelope) -> None:
        self.send_raw(struct.pack(">I", envelope.ByteSize()) + envelope.SerializeToString())

    def send_raw(self, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(data)

    def respond(self, request_id: int, call: str, message) -> None:
        envelope = pb.Envelope(correlation_id=request_id)
        getattr(envelope.response, call).CopyFrom(message)
        self.send(envelope)

    def error(self, request_id: int, code: int, message: str = "", detail=None) -> None:
        self.send(pb.Envelope(correlation_id=request_id,
                              error=pb.Error(code=code, message=message, detail=dict(detail or {}))))

    def chunk(self, request_id: int, **fields) -> None:
        """A StreamChunk carrying BusMessage(**fields) ("from_" for from)."""
        if "from_" in fields:
            fields["from"] = fields.pop("from_")
        envelope = pb.Envelope(correlation_id=request_id)
        envelope.chunk.message.CopyFrom(pb.BusMessage(**fields))
        self.send(envelope)

    def end(self, request_id: int, reason: str = "eof") -> None:
        self.send(pb.Envelope(correlation_id=request_id, stream_end=pb.StreamEnd(reason=reason)))

    # -- waiting -------------------------------------------------------

    def wait_until(self, predicate, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the fake kernel waited in vain")
                self.cond.wait(left)

    def wait_request(self, call: str, n: int = 1, timeout: float = 5.0):
        """The n-th request of `call` (request_id, message), once it came."""
        def found():
            matching = [(rid, msg) for rid, c, msg in self.requests if c == call]
            return matching[n - 1] if len(matching) >= n else None
        return self.wait_until(found, timeout)

    def wait_cancel(self, request_id: int, timeout: float = 5.0) -> None:
        self.wait_until(lambda: request_id in self.cancels, timeout)

    def calls(self):
        with self.cond:
            return [c for _, c, _ in self.requests]

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # -- the thread ----------------------------------------------------

    def _read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = self.sock.recv(n - len(data))
            if not part:
                raise EOFError
            data += part
        return data

    def _run(self) -> None:
        try:
            while True:
                (n,) = struct.unpack(">I", self._read_exact(4))
                envelope = pb.Envelope.FromString(self._read_exact(n))
                self._handle(envelope)
        except (EOFError, OSError):
            pass
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _handle(self, envelope: pb.Envelope) -> None:
        body = envelope.WhichOneof("body")
        call, message = None, None
        with self.cond:
            self.frames.append(envelope)
            if body == "hello":
                self.hellos.append(envelope.hello)
            elif body == "cancel":
                self.cancels.append(envelope.cancel.request_id)
            elif body == "request":
                call = envelope.request.WhichOneof("call")
                message = getattr(envelope.request, call)
                self.requests.append((envelope.request_id, call, message))
            self.cond.notify_all()
        if body == "hello":
            self.send(self.hello_reply or pb.Envelope(welcome=self.welcome))
        elif body == "request":
            answer = self.handlers.get(call)
            if callable(answer):
                answer = answer(envelope.request_id, message)
            if isinstance(answer, Err):
                self.error(envelope.request_id, answer.code, answer.message, answer.detail)
            elif answer is not None and not envelope.quiet:  # as the kernel: a quiet call's success is not answered
                self.respond(envelope.request_id, call, answer)
