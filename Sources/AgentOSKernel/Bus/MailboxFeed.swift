import AgentOSStore
import Synchronization

/// One live reader of a mailbox (an agent's `receive` stream). What
/// arrives is buffered while the reader sends what was stored; once it has
/// caught up it installs a sink, and every later arrival is handed to the
/// sink on the delivering thread, in delivery order: no task wakes per
/// message. A reader more than `buffer` messages behind (buffered, or
/// refused by its sink) is ended as overflowed.
final class MailboxFeed: Sendable {
    enum End: Sendable {
        case finished
        case overflowed
    }

    /// Takes one message; false when the reader is too far behind to take it.
    typealias Sink = @Sendable (MessageRecord) -> Bool

    let identity: String
    /// Set once, when the feed ends.
    let end = Handoff<End>()
    private let buffer: Int

    private struct State {
        var buffered: [MessageRecord] = []
        var sink: Sink?
        var ended = false
    }

    private let state = Mutex(State())

    init(identity: String, buffer: Int) {
        self.identity = identity
        self.buffer = buffer
    }

    func deliver(_ message: MessageRecord) {
        let overflowed = state.withLock { state -> Bool in
            guard !state.ended else { return false }
            if let sink = state.sink {
                if sink(message) { return false }
            } else if state.buffered.count < buffer {
                state.buffered.append(message)
                return false
            }
            state.ended = true
            state.sink = nil
            state.buffered = []
            return true
        }
        if overflowed { end.fulfil(.overflowed) }
    }

    /// Hands what is buffered to `sink`, then every later arrival.
    func redirect(to sink: @escaping Sink) {
        let overflowed = state.withLock { state -> Bool in
            guard !state.ended else { return false }
            defer { state.buffered = [] }
            for message in state.buffered where !sink(message) {
                state.ended = true
                return true
            }
            state.sink = sink
            return false
        }
        if overflowed { end.fulfil(.overflowed) }
    }

    func finish() {
        state.withLock { state in
            state.ended = true
            state.sink = nil
            state.buffered = []
        }
        end.fulfil(.finished)
    }
}
