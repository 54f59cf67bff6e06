import AgentOSStore

/// The kernel's event log: durable in the store, fanned out live to every
/// `agentctl events -f`.
final class EventHub: Sendable {
    static let subscriberBuffer = 10_000

    private let store: StateStore
    private let subscribers = SubscriberSet<EventRecord>()

    init(store: StateStore) {
        self.store = store
    }

    /// Writes a standalone event and publishes it.
    @discardableResult
    func record(_ kind: String, agentID: String = "", _ message: String,
                data: [String: String] = [:]) throws -> EventRecord {
        let stored = try store.append(EventRecord(time: unixNanoseconds(), kind: kind, agentID: agentID,
                                                  message: message, data: data))
        publish(stored)
        return stored
    }

    /// Writes standalone events in one transaction, in order, and publishes them.
    func record(_ events: [EventRecord]) throws {
        for stored in try store.append(events) { publish(stored) }
    }

    /// An agent's end (its record and event) and the events that follow
    /// from it, in one transaction, in that order, and publishes them.
    func record(_ events: [EventRecord], after ended: AgentRecord, ended event: EventRecord) throws {
        for stored in try store.update(ended, event: event, then: events) { publish(stored) }
    }

    /// Publishes an event the store has already committed.
    func publish(_ event: EventRecord) {
        subscribers.deliver(event)
    }

    func subscribe() -> BoundedSubscription<EventRecord> {
        subscribers.add(buffer: Self.subscriberBuffer)
    }

    func finishAll() {
        subscribers.finishAll()
    }
}
