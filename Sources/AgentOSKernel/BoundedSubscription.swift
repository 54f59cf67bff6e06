import Synchronization

/// A live feed to one reader with a bounded buffer. A reader that falls
/// more than `buffer` items behind is cut off and `overflowed` says so:
/// the kernel never buffers without limit for a slow client.
final class BoundedSubscription<Element: Sendable>: Sendable {
    let stream: AsyncStream<Element>
    private let continuation: AsyncStream<Element>.Continuation
    private let overflowedFlag = Mutex(false)

    var overflowed: Bool { overflowedFlag.withLock { $0 } }

    init(buffer: Int) {
        (stream, continuation) = AsyncStream.makeStream(of: Element.self, bufferingPolicy: .bufferingOldest(buffer))
    }

    func deliver(_ element: Element) {
        if case .dropped = continuation.yield(element) {
            overflowedFlag.withLock { $0 = true }
            continuation.finish()
        }
    }

    func finish() {
        continuation.finish()
    }

    func onTermination(_ handler: @escaping @Sendable () -> Void) {
        continuation.onTermination = { _ in handler() }
    }
}

/// A set of subscriptions keyed by identity.
final class SubscriberSet<Element: Sendable>: Sendable {
    private let subscribers = Mutex<[ObjectIdentifier: BoundedSubscription<Element>]>([:])

    func add(buffer: Int) -> BoundedSubscription<Element> {
        let subscription = BoundedSubscription<Element>(buffer: buffer)
        let key = ObjectIdentifier(subscription)
        subscribers.withLock { $0[key] = subscription }
        subscription.onTermination { [weak self] in
            self?.subscribers.withLock { _ = $0.removeValue(forKey: key) }
        }
        return subscription
    }

    func deliver(_ element: Element) {
        for subscriber in subscribers.withLock({ Array($0.values) }) { subscriber.deliver(element) }
    }

    func finishAll() {
        for subscriber in subscribers.withLock({ Array($0.values) }) { subscriber.finish() }
    }
}

/// A value handed over once, to whoever awaits it (before or after).
final class Handoff<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [CheckedContinuation<Value, Never>] = []
        var callbacks: [@Sendable (Value) -> Void] = []
    }

    private let state = Mutex(State())

    var isFulfilled: Bool { state.withLock { $0.value != nil } }

    /// Sets the value unless one is set; false if one was.
    @discardableResult
    func fulfil(_ value: Value) -> Bool {
        let taken = state.withLock { state -> State? in
            guard state.value == nil else { return nil }
            state.value = value
            defer {
                state.waiters = []
                state.callbacks = []
            }
            return state
        }
        guard let taken else { return false }
        for waiter in taken.waiters { waiter.resume(returning: value) }
        for callback in taken.callbacks { callback(value) }
        return true
    }

    func value() async -> Value {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Value? in
                if let value = state.value { return value }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Calls `body` with the value once it is set (at once if it is), on
    /// the thread that sets it: no task to start for a quick answer.
    func whenFulfilled(_ body: @escaping @Sendable (Value) -> Void) {
        let ready = state.withLock { state -> Value? in
            if let value = state.value { return value }
            state.callbacks.append(body)
            return nil
        }
        if let ready { body(ready) }
    }
}
