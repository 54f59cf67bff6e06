import AgentOSClient
import AgentOSProtocol
import Foundation
import SwiftProtobuf
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The agent's socket to the kernel, multiplexed: calls and streams run
/// concurrently, each under its own request id. One thread waits in
/// poll(2), hands each frame to the call or stream it answers, and runs the
/// jobs of tasks that prefer it (`LinkExecutor`); writers take a lock per
/// frame. Plain syscalls rather than an event loop: an agent has one
/// socket, and this keeps its start-up and dependencies small.
final class KernelLink: Sendable {
    private enum Waiter {
        case call(CheckedContinuation<KernelResponse.OneOf_Result, any Error>)
        /// A stream's chunks are handed over on the reader thread itself
        /// (already transformed: no extra task hop per message).
        case stream(yield: @Sendable (StreamChunk.OneOf_Item) -> Void, finish: @Sendable ((any Error)?) -> Void)
    }

    private struct State {
        var nextID: UInt64 = 1
        var waiters: [UInt64: Waiter] = [:]
        /// Requests written, and requests cancelled before they were: a
        /// Cancel can never overtake its request (the kernel would ignore it).
        var sent: Set<UInt64> = []
        var cancelled: Set<UInt64> = []
        /// Set once the connection is gone: every later call fails with it.
        var failure: AgentKitError?
    }

    let welcome: Welcome
    /// The socket thread, as an executor tasks may prefer.
    let executor: LinkExecutor
    private let fd: Int32
    private let state = Mutex(State())
    /// Frames on their way out. Every write is non-blocking: the socket
    /// thread must never block in write(2), or a kernel waiting for it to
    /// read (its own answers queued) would wait for ever. What does not go
    /// at once waits in `pending`, flushed by the socket thread when the
    /// socket takes more; the socket thread's own jobs always add to it, so
    /// all they write between two waits goes in one system call.
    private struct Writer {
        /// True once the descriptor is closed, so no write can reach a
        /// descriptor number the process has reused.
        var closed = false
        var pending: [UInt8] = []
    }

    private let writer = Mutex(Writer())
    /// Ids acked with `acknowledgeLater`: one ack call before the socket
    /// thread next writes.
    private let laterAcks = Mutex<[String]>([])

    /// Says hello on `fd` (blocking), then starts the reader thread.
    init(fd: Int32, client: String) throws(AgentKitError) {
        self.fd = fd
        executor = try LinkExecutor()
        var reader = FrameReader(maximumPayloadSize: Self.maximumFrame)
        do {
            try Self.writeAll(fd, try Envelope.hello(client: client).framed())
        } catch let error as AgentKitError {
            throw error
        } catch {
            throw AgentKitError(.protocolViolation, "cannot encode hello: \(error)")
        }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let reply = try Self.readEnvelope(fd, &reader, &buffer)
        switch reply.body {
        case .welcome(let welcome)?:
            self.welcome = welcome
        case .error(let error)?:
            throw AgentKitError(.kernel(error.code), error.message, detail: error.detail)
        default:
            throw AgentKitError(.protocolViolation, "the kernel answered hello with something other than welcome")
        }
        let leftover = reader
        Thread.detachNewThread { [self] in serve(leftover) }
    }

    /// The kernel is trusted; a bound still keeps a corrupt stream from
    /// asking for gigabytes.
    static let maximumFrame = 256 * 1024 * 1024
    /// The socket thread's name (in `ps -L`, `perf`, a debugger).
    static let threadName = "agentkit-link"
    /// Items a stream holds for a reader that has not taken them.
    static let streamBuffer = 10_000

    // MARK: Calls

    /// One request, answered by one response (or an error).
    func call(_ call: KernelRequest.OneOf_Call) async throws -> KernelResponse.OneOf_Result {
        let id = nextID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if let failure = register(id, .call(continuation)) {
                    continuation.resume(throwing: failure)
                    return
                }
                // Cancelled before it was registered: the handler found
                // nothing to mark, so it is checked here (later ones are
                // caught by `send`).
                if Task.isCancelled {
                    fail(remove(id), CancellationError())
                    return
                }
                send(id, call)
            }
        } onCancel: {
            cancel(id)
        }
    }

    /// A streaming request: its chunks, as `transform` makes them (nil:
    /// skipped), until the kernel ends it. Ending the iteration early sends
    /// Cancel, so the kernel stops the stream too.
    func stream<Element: Sendable>(_ call: KernelRequest.OneOf_Call,
                                   transform: @escaping @Sendable (StreamChunk.OneOf_Item) -> Element?)
        -> AsyncThrowingStream<Element, any Error> {
        let id = nextID()
        // Bounded, and never waited on: the reader thread must not stall for
        // one slow consumer (other calls' answers share the socket). A
        // consumer that falls this far behind loses the stream, as the
        // kernel's own subscriber queues do.
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Element.self, throwing: (any Error).self,
                                                                    bufferingPolicy: .bufferingOldest(Self.streamBuffer))
        continuation.onTermination = { [weak self] termination in
            guard let self else { return }
            if case .cancelled = termination {
                self.cancel(id)   // first: it writes Cancel only for a request written
                _ = self.remove(id)
            }
        }
        let waiter = Waiter.stream(yield: { [weak self] item in
            guard let element = transform(item), case .dropped = continuation.yield(element) else { return }
            self?.cancel(id)
            _ = self?.remove(id)
            continuation.finish(throwing: AgentKitError(.kernel(.slowConsumer),
                                                        "this stream fell more than \(Self.streamBuffer) messages behind its reader"))
        }, finish: { error in
            continuation.finish(throwing: error)
        })
        if let failure = register(id, waiter) {
            continuation.finish(throwing: failure)
        } else {
            send(id, call)
        }
        return stream
    }

    /// A send or ack that nothing waits for: written like any call, with
    /// the envelope's `quiet` (the kernel answers only a failure, which
    /// `dispatch` reports on standard error, the agent's log, as `send`
    /// does one that cannot be written).
    func sendQuietly(_ call: KernelRequest.OneOf_Call) {
        send(nextID(), call, quiet: true)
    }

    /// Acks `ids` without a caller waiting: they go as one quiet ack call
    /// with whatever the socket thread writes next. An ack that is lost
    /// leaves the message to be delivered again.
    func acknowledgeLater(_ ids: [String]) {
        let (first, count) = laterAcks.withLock { acks -> (Bool, Int) in
            defer { acks.append(contentsOf: ids) }
            return (acks.isEmpty, acks.count + ids.count)
        }
        if executor.isCurrent {
            // A reader working through a long burst: its acks go now and
            // then, not all after it, so its senders keep sending meanwhile.
            if count >= Self.ackBatch {
                sendLaterAcks()
                _ = flushPending()
            }
        } else if first {
            executor.wake()
        }
    }

    /// Acks queued on the socket thread that go without waiting for its
    /// jobs to end.
    static let ackBatch = 64
    /// Bytes the socket thread's jobs write that go without waiting for
    /// them to end.
    static let burstBytes = 16 * 1024

    /// On the socket thread: the acks queued by `acknowledgeLater`.
    private func sendLaterAcks() {
        let ids = laterAcks.withLock { acks -> [String] in
            defer { acks.removeAll(keepingCapacity: true) }
            return acks
        }
        guard !ids.isEmpty else { return }
        var request = Agentos_V1_AckRequest()
        request.ids = ids
        sendQuietly(.ack(request))
    }

    /// Ends the connection: pending calls and streams fail with
    /// `connectionClosed`; the reader thread closes the descriptor.
    func close() {
        writer.withLock { writer in
            if !writer.closed { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    // MARK: Internals

    private func nextID() -> UInt64 {
        state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
    }

    /// Registers a waiter, or returns why the connection cannot take one.
    private func register(_ id: UInt64, _ waiter: Waiter) -> AgentKitError? {
        state.withLock { state in
            if let failure = state.failure { return failure }
            state.waiters[id] = waiter
            return nil
        }
    }

    private func remove(_ id: UInt64) -> Waiter? {
        state.withLock { state in
            state.sent.remove(id)
            return state.waiters.removeValue(forKey: id)
        }
    }

    /// Writes the request, unless it was cancelled before it could be. A
    /// quiet one has no waiter and cannot be cancelled: nothing to track.
    private func send(_ id: UInt64, _ call: KernelRequest.OneOf_Call, quiet: Bool = false) {
        do {
            let bytes = try HotFrames.framedRequest(id: id, call, quiet: quiet)
                ?? Envelope.request(id: id, call, quiet: quiet).framed()
            let written = try writer.withLock { writer throws(AgentKitError) -> Bool in
                guard !writer.closed else { throw AgentKitError(.connectionClosed, "the connection to the kernel is closed") }
                let go = quiet || state.withLock { state -> Bool in
                    if state.cancelled.remove(id) != nil { return false }
                    state.sent.insert(id)
                    return true
                }
                if go { try write(bytes, &writer) }
                return go
            }
            if !written { fail(remove(id), CancellationError()) }
        } catch {
            let failure = error as? AgentKitError ?? AgentKitError(.encoding, "cannot encode the request: \(error)")
            if quiet {
                Self.report("a \(call.name) call nothing waited for was not sent: \(failure)")
            } else {
                fail(remove(id), failure)
            }
        }
    }

    /// Cancels a request: a Cancel frame if it was written, else it is
    /// never written (checked under the same lock as the write).
    private func cancel(_ id: UInt64) {
        var envelope = Envelope()
        envelope.cancel.requestID = id
        guard let bytes = try? envelope.framed() else { return }
        try? writer.withLock { writer throws(AgentKitError) in
            let written = state.withLock { state -> Bool in
                if state.sent.contains(id) { return true }
                if state.waiters[id] != nil { state.cancelled.insert(id) }
                return false
            }
            if written, !writer.closed { try write(bytes, &writer) }
        }
    }

    /// Writes `bytes` after what is pending: at once as far as the socket
    /// takes them without blocking, the rest left to the socket thread.
    /// On the socket thread itself, only queued (flushed before it waits).
    private func write(_ bytes: [UInt8], _ writer: inout Writer) throws(AgentKitError) {
        if executor.isCurrent || !writer.pending.isEmpty {
            writer.pending.append(contentsOf: bytes)
            if !executor.isCurrent {
                executor.wake()
            } else if writer.pending.count >= Self.burstBytes {
                // A long batch of jobs: what it wrote so far goes now (as
                // far as the socket takes it), so the kernel works meanwhile.
                Self.flush(fd, &writer)
            }
            return
        }
        let sent = try Self.sendSome(fd, bytes[...])
        if sent < bytes.count {
            writer.pending.append(contentsOf: bytes[sent...])
            executor.wake()
        }
    }

    /// On the socket thread: writes what is pending, as far as the socket
    /// takes it; true if some is left (wait until it takes more). A write
    /// that fails ends the connection (the read side then sees it end).
    private func flushPending() -> Bool {
        writer.withLock { writer in
            guard !writer.closed, !writer.pending.isEmpty else { return false }
            Self.flush(fd, &writer)
            return !writer.pending.isEmpty
        }
    }

    /// Writes what is pending as far as the socket takes it now.
    private static func flush(_ fd: Int32, _ writer: inout Writer) {
        do {
            let sent = try sendSome(fd, writer.pending[...])
            writer.pending.removeFirst(sent)
        } catch {
            writer.pending = []
            shutdown(fd, Int32(SHUT_RDWR))
        }
    }

    /// As much of `bytes` as the socket takes now (MSG_DONTWAIT).
    private static func sendSome(_ fd: Int32, _ bytes: ArraySlice<UInt8>) throws(AgentKitError) -> Int {
        do {
            return try FrameSocket.send(fd, bytes, flags: Int32(MSG_DONTWAIT))
        } catch {
            throw AgentKitError(error)
        }
    }

    private func fail(_ waiter: Waiter?, _ error: any Error) {
        switch waiter {
        case .call(let continuation)?: continuation.resume(throwing: error)
        case .stream(_, let finish)?: finish(error)
        case nil: break
        }
    }

    /// The socket thread: frames to their calls and streams, and the
    /// executor's jobs, until the connection ends (then the executor hands
    /// its jobs to the global one).
    private func serve(_ initial: FrameReader) {
        Thread.current.name = Self.threadName
        executor.adoptCurrentThread()
        var reader = initial
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var failure = AgentKitError(.connectionClosed, "the kernel closed the connection")
        reading: while true {
            do {
                while let envelope = try Self.nextEnvelope(&reader) { dispatch(envelope) }
            } catch {
                failure = error
                break
            }
            // One batch of jobs, then the socket again (without waiting
            // while jobs wait): a task that keeps queueing itself cannot
            // keep the answers it waits for unread.
            let ran = executor.runJobs()
            sendLaterAcks()
            let blocked = flushPending()
            let sleep = !ran && executor.prepareToSleep()
            var fds = [pollfd(fd: fd, events: Int16(POLLIN) | (blocked ? Int16(POLLOUT) : 0), revents: 0),
                       pollfd(fd: executor.wakeRead, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, sleep ? -1 : 0)
            if sleep { executor.awake() }
            if ready < 0 {
                if errno == EINTR { continue }
                failure = AgentKitError(.system, "poll on the kernel socket: \(String(cString: strerror(errno)))")
                break
            }
            guard fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            switch count {
            case 1...:
                reader.append(buffer[0..<count])
            case 0:
                break reading
            default:
                if errno == EINTR || errno == EAGAIN { continue }
                failure = AgentKitError(.system, "read from the kernel socket: \(String(cString: strerror(errno)))")
                break reading
            }
        }
        let (waiters, reason) = state.withLock { state -> ([Waiter], AgentKitError) in
            let reason = state.failure ?? failure
            state.failure = reason
            defer { state.waiters = [:] }
            return (Array(state.waiters.values), reason)
        }
        writer.withLock { writer in
            writer.closed = true
            writer.pending = []
            Glibc.close(fd)
        }
        for waiter in waiters { fail(waiter, reason) }
        // The thread ends; tasks that prefer it run on the global executor.
        executor.retire()
    }

    /// The next whole envelope among the bytes read, if there is one.
    private static func nextEnvelope(_ reader: inout FrameReader) throws(AgentKitError) -> Envelope? {
        do {
            return try FrameSocket.nextEnvelope(&reader)
        } catch {
            throw AgentKitError(error)
        }
    }

    private func dispatch(_ envelope: Envelope) {
        let id = envelope.correlationID
        switch envelope.body {
        case .response(let response)?:
            guard case .call(let continuation)? = remove(id) else { return }
            if let result = response.result {
                continuation.resume(returning: result)
            } else {
                continuation.resume(throwing: AgentKitError(.protocolViolation, "an empty response to request \(id)"))
            }
        case .chunk(let chunk)?:
            let waiter = state.withLock { $0.waiters[id] }
            if case .stream(let yield, _)? = waiter, let item = chunk.item { yield(item) }
        case .streamEnd?:
            switch remove(id) {
            case .stream(_, let finish)?: finish(nil)
            case .call(let continuation)?: continuation.resume(throwing: CancellationError())
            case nil: break
            }
        case .error(let error)?:
            let failure = AgentKitError(.kernel(error.code), error.message, detail: error.detail)
            if id == 0 {
                // About the connection itself: the kernel closes it next;
                // every call still waiting fails with the kernel's reason.
                state.withLock { $0.failure = $0.failure ?? failure }
                close()
            } else if let waiter = remove(id) {
                fail(waiter, failure)
            } else {
                // A quiet call's failure (or one of a call given up): nobody to throw it to.
                Self.report("the kernel refused call \(id), which nothing waited for (a quiet send or ack, "
                            + "or a call given up): \(failure)")
            }
        default:
            break
        }
    }

    /// A line on standard error, the agent's log.
    private static func report(_ line: String) {
        FileHandle.standardError.write(Data("agentkit: \(line)\n".utf8))
    }

    private static func readEnvelope(_ fd: Int32, _ reader: inout FrameReader,
                                     _ buffer: inout [UInt8]) throws(AgentKitError) -> Envelope {
        do {
            return try FrameSocket.readEnvelope(fd, &reader, &buffer)
        } catch {
            throw AgentKitError(error)
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(AgentKitError) {
        do {
            try FrameSocket.write(fd, bytes)
        } catch {
            throw AgentKitError(error)
        }
    }
}
