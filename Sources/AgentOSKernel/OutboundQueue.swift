import AgentOSProtocol
import NIOCore
import Synchronization

/// Frames waiting to be written to one connection, with back-pressure.
///
/// Producers `send` and are suspended while more than `highWater` bytes are
/// queued; the single writer task drains it in order. A live feed whose
/// reader falls behind is cut off by its `BoundedSubscription`, not here.
final class OutboundQueue: Sendable {
    let stream: AsyncStream<ByteBuffer>
    private let continuation: AsyncStream<ByteBuffer>.Continuation
    private let highWater: Int

    private struct State {
        var pendingBytes = 0
        var closed = false
        var waiters: [CheckedContinuation<Void, any Error>] = []
    }

    private let state = Mutex(State())

    init(highWater: Int) {
        (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
        self.highWater = highWater
    }

    struct Closed: Error {}

    /// Queues one envelope, waiting first while the queue is over its mark.
    func send(_ envelope: Envelope) async throws {
        let bytes: [UInt8] = try envelope.serializedBytes()
        try await waitForRoom()
        let accepted = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.pendingBytes += bytes.count
            return true
        }
        guard accepted else { throw Closed() }
        continuation.yield(ByteBuffer(bytes: bytes))
    }

    /// Queues without waiting: for replies about the connection itself.
    func sendNow(_ envelope: Envelope) {
        guard let bytes: [UInt8] = try? envelope.serializedBytes() else { return }
        let accepted = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.pendingBytes += bytes.count
            return true
        }
        if accepted { continuation.yield(ByteBuffer(bytes: bytes)) }
    }

    /// The writer reports each buffer it has handed to the channel.
    func written(_ count: Int) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.pendingBytes -= count
            guard state.pendingBytes <= highWater / 2 else { return [] }
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in ready { waiter.resume() }
    }

    /// No more frames: the writer drains what is queued and stops.
    func finish() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.closed = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        continuation.finish()
        for waiter in waiters { waiter.resume(throwing: Closed()) }
    }

    private func waitForRoom() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let result = state.withLock { state -> Bool? in
                if state.closed { return false }
                if state.pendingBytes <= highWater { return true }
                state.waiters.append(continuation)
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
