import AgentOSProtocol
import AgentOSStore
import NIOCore
import Synchronization

/// Frames on their way to one connection, with back-pressure.
///
/// Any task may `send`. Frames are appended to an outbox in the order they
/// are sent and framed by the event loop into one buffer per burst: one
/// write and one flush however many frames, and the order of frames is the
/// order of `send` calls. A producer is suspended while more than
/// `highWater` bytes are written but not yet on the socket, and resumes
/// below half of it. A live feed that cannot wait uses `offer` and
/// `whenRoom`; one whose reader falls too far behind is cut off by its own
/// bound (`BoundedSubscription`, `MailboxFeed`), not here.
final class OutboundQueue: Sendable {
    private let channel: any Channel
    private let highWater: Int

    private struct State {
        var pendingBytes = 0
        var pendingFrames = 0
        var closed = false
        var roomWaiters: [CheckedContinuation<Void, any Error>] = []
        /// Called once when there is room again (a live feed that stopped).
        var roomCallbacks: [@Sendable () -> Void] = []

        func hasRoom(_ highWater: Int) -> Bool {
            pendingBytes <= highWater / 2 && pendingFrames <= OutboundQueue.lowWaterFrames
        }
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        /// Frames not yet handed to the channel, and whether the event loop
        /// has a write of them scheduled.
        var outbox: [Outgoing] = []
        var writeScheduled = false
    }

    private let state = Mutex(State())

    /// A frame in the outbox: serialized by its producer, or (`sendLater`,
    /// `offer`) by the event loop when it writes the burst, so a thread that
    /// answers for many connections (the bus's commits) spends no time on it.
    private enum Outgoing {
        case bytes([UInt8])
        /// Counted in `pendingBytes` as `estimate` until it is encoded.
        case envelope(Envelope, estimate: Int)
        /// The frames the bus writes most, encoded by hand (`HotFrames`): a
        /// mailbox's message to its reader, or (`answer`) a request's
        /// response; a send's answer. Counted as `estimate` until encoded.
        case busMessage(correlationID: UInt64, MessageRecord, answer: Bool)
        case sendAnswer(correlationID: UInt64, Agentos_V1_SendResponse)

        var estimate: Int {
            switch self {
            case .bytes(let bytes): bytes.count
            case .envelope(_, let estimate): estimate
            case .busMessage(_, let message, _): message.payload.count + 128
            case .sendAnswer: 64
            }
        }
    }

    /// The connection's event loop.
    var eventLoop: any EventLoop { channel.eventLoop }

    init(channel: any Channel, highWater: Int) {
        self.channel = channel
        self.highWater = highWater
    }

    struct Closed: Error {}

    /// Writes one envelope, waiting first while too much is in flight.
    func send(_ envelope: Envelope) async throws {
        let bytes: [UInt8] = try envelope.serializedBytes()
        try await waitForRoom()
        guard enqueue(.bytes(bytes)) else { throw Closed() }
    }

    /// Writes without waiting: for small replies about the connection itself.
    func sendNow(_ envelope: Envelope) {
        guard let bytes: [UInt8] = try? envelope.serializedBytes() else { return }
        _ = enqueue(.bytes(bytes))
    }

    /// Writes without waiting, serialized on the event loop; `estimate`:
    /// its size, about (counted until it is encoded).
    func sendLater(_ envelope: Envelope, estimate: Int = 64) {
        _ = enqueue(.envelope(envelope, estimate: estimate))
    }

    /// A send's answer, as `sendLater`.
    func sendAnswerLater(correlationID: UInt64, _ answer: Agentos_V1_SendResponse) {
        _ = enqueue(.sendAnswer(correlationID: correlationID, answer))
    }

    /// A request's response to its requester, as `sendLater`.
    func sendRequestAnswerLater(correlationID: UInt64, _ response: MessageRecord) {
        _ = enqueue(.busMessage(correlationID: correlationID, response, answer: true))
    }

    /// A mailbox's message to its reader (a chunk of stream
    /// `correlationID`), serialized on the event loop, unless more than
    /// `maximumFrames` frames (or more than four times the high-water mark
    /// in bytes) are still on their way: for a live feed handed messages on
    /// the delivering thread, which cannot wait. False: not written (too
    /// far behind, or closed).
    func offerMessage(correlationID: UInt64, _ message: MessageRecord, maximumFrames: Int) -> Bool {
        enqueue(.busMessage(correlationID: correlationID, message, answer: false),
                unless: { $0.pendingFrames >= maximumFrames || $0.pendingBytes > 4 * self.highWater })
    }

    /// Frames waiting below which a stopped feed is called back.
    static let lowWaterFrames = 1_000

    /// Calls `body` once, when what waits falls to half the high-water mark
    /// and `lowWaterFrames` frames (at once if it has); never if the
    /// connection ends first.
    func whenRoom(_ body: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.closed { return false }
            if state.hasRoom(highWater) { return true }
            state.roomCallbacks.append(body)
            return false
        }
        if now { body() }
    }

    /// Whether a producer would be let through without waiting.
    var hasRoom: Bool {
        state.withLock { !$0.closed && $0.pendingBytes <= highWater }
    }

    /// Waits until everything written so far is on the socket (or failed),
    /// at most `milliseconds`: used before closing after an error frame.
    func drain(milliseconds: Int64) async {
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(milliseconds))
            self.releaseDrainWaiters()
        }
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.pendingBytes == 0 && state.pendingFrames == 0 { return true }
                state.drainWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
        timer.cancel()
    }

    /// No more frames; waiting producers fail with `Closed`.
    func finish() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.closed = true
            state.roomCallbacks.removeAll()
            defer { state.roomWaiters.removeAll() }
            return state.roomWaiters
        }
        for waiter in waiters { waiter.resume(throwing: Closed()) }
    }

    private func enqueue(_ frame: Outgoing, unless full: (State) -> Bool = { _ in false }) -> Bool {
        let schedule = state.withLock { state -> Bool? in
            guard !state.closed, !full(state) else { return nil }
            state.pendingBytes += frame.estimate
            state.pendingFrames += 1
            state.outbox.append(frame)
            defer { state.writeScheduled = true }
            return !state.writeScheduled
        }
        guard let schedule else { return false }
        if schedule { channel.eventLoop.execute { self.writeOutbox() } }
        return true
    }

    /// On the event loop: every frame in the outbox, framed into one
    /// buffer: one write and one flush for the burst, however many frames.
    private func writeOutbox() {
        let outgoing = state.withLock { state -> [Outgoing] in
            state.writeScheduled = false
            defer { state.outbox = [] }
            return state.outbox
        }
        guard !outgoing.isEmpty else { return }
        // What the estimates missed, now that the envelopes are encoded.
        var correction = 0
        // (An envelope that cannot be encoded is dropped: never, for the
        // messages the kernel builds itself.)
        let payloads = outgoing.compactMap { frame -> [UInt8]? in
            switch frame {
            case .bytes(let bytes):
                return bytes
            case .envelope(let envelope, _):
                let bytes: [UInt8]? = try? envelope.serializedBytes()
                correction += (bytes?.count ?? 0) - frame.estimate
                return bytes
            case .busMessage(let correlationID, let message, let answer):
                let fields = Bus.hotFields(message)
                let bytes = answer ? HotFrames.requestAnswer(correlationID: correlationID, message: fields)
                    : HotFrames.chunk(correlationID: correlationID, message: fields)
                correction += bytes.count - frame.estimate
                return bytes
            case .sendAnswer(let correlationID, let answer):
                let bytes = HotFrames.sendAnswer(correlationID: correlationID, id: answer.id, to: answer.to,
                                                 depth: answer.depth)
                correction += bytes.count - frame.estimate
                return bytes
            }
        }
        if correction != 0 { state.withLock { $0.pendingBytes += correction } }
        let bytes = payloads.reduce(0) { $0 + $1.count }
        var buffer = channel.allocator.buffer(capacity: bytes + payloads.count * Frame.headerSize)
        for payload in payloads { buffer.writeFrame(payload) }
        let frames = outgoing.count
        channel.writeAndFlush(buffer).whenComplete { _ in
            self.written(bytes: bytes, frames: frames)
        }
    }

    private func written(bytes: Int, frames: Int) {
        typealias Released = (room: [CheckedContinuation<Void, any Error>], callbacks: [@Sendable () -> Void],
                              drained: [CheckedContinuation<Void, Never>])
        let released = state.withLock { state -> Released in
            state.pendingBytes -= bytes
            state.pendingFrames -= frames
            var released: Released = ([], [], [])
            if state.pendingBytes <= highWater / 2 {
                released.room = state.roomWaiters
                state.roomWaiters.removeAll()
            }
            if state.hasRoom(highWater) {
                released.callbacks = state.roomCallbacks
                state.roomCallbacks.removeAll()
            }
            if state.pendingBytes == 0 && state.pendingFrames == 0 {
                released.drained = state.drainWaiters
                state.drainWaiters.removeAll()
            }
            return released
        }
        for waiter in released.room { waiter.resume() }
        for callback in released.callbacks { callback() }
        for waiter in released.drained { waiter.resume() }
    }

    private func releaseDrainWaiters() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.drainWaiters.removeAll() }
            return state.drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits while more than `highWater` bytes are on their way (what a
    /// producer that answers later calls first, to keep back-pressure).
    func waitForRoom() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let result = state.withLock { state -> Bool? in
                if state.closed { return false }
                if state.pendingBytes <= highWater { return true }
                state.roomWaiters.append(continuation)
                return nil
            }
            switch result {
            case true?: continuation.resume()
            case false?: continuation.resume(throwing: Closed())
            case nil: break
            }
        }
    }
}

/// A counting limit on requests in flight on one connection: when it is
/// reached the connection stops reading, pushing back on the client.
final class InflightLimit: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    init(_ limit: Int) {
        state = Mutex(State(available: limit))
    }

    func acquire() async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if state.available > 0 {
                    state.available -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    func release() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume()
    }
}

/// Sends of one connection accepted but not yet stored: past `limit` the
/// connection stops reading until one is, so a sender that pipelines
/// cannot queue more in the kernel than its share.
final class SendWindow: Sendable {
    private let open = Mutex(0)
    let limit: Int

    init(limit: Int = 256) {
        self.limit = limit
    }

    /// Counts one more; true when the window is now over its limit.
    func opened() -> Bool {
        open.withLock { count in
            count += 1
            return count > limit
        }
    }

    func closed() {
        open.withLock { $0 -= 1 }
    }

    var isFull: Bool { open.withLock { $0 >= limit } }
}
