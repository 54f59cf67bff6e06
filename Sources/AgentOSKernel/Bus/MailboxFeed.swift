import AgentOSStore
import NIOCore
import Synchronization

/// One live reader of a mailbox (an agent's `receive` stream). What
/// arrives is buffered while the reader sends what was stored; once it has
/// caught up it installs a sink, and every later arrival is handed to the
/// sink on the delivering thread, in delivery order: no task wakes per
/// message. When the sink has no room (the reader's connection has too
/// much unwritten) arrivals are buffered again, in order, until the
/// connection says there is room. A reader more than `buffer` messages
/// behind is ended as overflowed.
final class MailboxFeed: Sendable {
    enum End: Sendable {
        case finished
        case overflowed
    }

    /// Takes one message; false when it has no room for it now.
    typealias Sink = @Sendable (MessageRecord) -> Bool
    /// Arranges for its argument to be called once there is room again.
    typealias Stalled = @Sendable (@escaping @Sendable () -> Void) -> Void

    let identity: String
    /// Set once, when the feed ends.
    let end = Handoff<End>()
    private let buffer: Int

    private struct State {
        var buffered = CircularBuffer<MessageRecord>()
        var sink: Sink?
        var stalled: Stalled?
        /// The sink had no room: arrivals wait in `buffered` until the
        /// connection calls back.
        var waitingForRoom = false
        var ended = false
    }

    private let state = Mutex(State())

    init(identity: String, buffer: Int) {
        self.identity = identity
        self.buffer = buffer
    }

    private enum Step {
        case done
        case waitForRoom(Stalled)
        case overflow
    }

    func deliver(_ message: MessageRecord) {
        let step = state.withLock { state -> Step in
            guard !state.ended else { return .done }
            if let sink = state.sink, let stalled = state.stalled, !state.waitingForRoom, state.buffered.isEmpty {
                if sink(message) { return .done }
                state.buffered.append(message)
                state.waitingForRoom = true
                return .waitForRoom(stalled)
            }
            guard state.buffered.count < buffer else { return Self.overflow(&state) }
            state.buffered.append(message)
            return .done
        }
        perform(step)
    }

    /// Hands what is buffered to `sink`, then every later arrival; when it
    /// has no room, `stalled` is asked to call back when it has.
    func redirect(to sink: @escaping Sink, stalled: @escaping Stalled) {
        state.withLock { state in
            state.sink = sink
            state.stalled = stalled
        }
        resume()
    }

    /// Hands the sink what is buffered, as far as it has room.
    private func resume() {
        let step = state.withLock { state -> Step in
            guard !state.ended, let sink = state.sink, let stalled = state.stalled else { return .done }
            state.waitingForRoom = false
            while let first = state.buffered.first {
                guard sink(first) else {
                    state.waitingForRoom = true
                    return .waitForRoom(stalled)
                }
                state.buffered.removeFirst()
            }
            return .done
        }
        perform(step)
    }

    private func perform(_ step: Step) {
        switch step {
        case .done: break
        case .waitForRoom(let stalled): stalled { [weak self] in self?.resume() }
        case .overflow: end.fulfil(.overflowed)
        }
    }

    private static func overflow(_ state: inout State) -> Step {
        state.ended = true
        state.sink = nil
        state.stalled = nil
        state.buffered.removeAll()
        return .overflow
    }

    func finish() {
        state.withLock { state in
            state.ended = true
            state.sink = nil
            state.stalled = nil
            state.buffered.removeAll()
        }
        end.fulfil(.finished)
    }
}
