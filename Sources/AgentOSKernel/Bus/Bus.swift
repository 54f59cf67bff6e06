import AgentOSProtocol
import AgentOSStore
import Foundation

/// The message bus: durable, bounded mailboxes in the state store, one per
/// identity (a policy worker's path, else an agent's name), so a message to
/// a worker that is restarting waits for it, and one accepted before a
/// `kill -9` of the kernel is delivered after the restart. Delivery is at
/// least once: a message stays until its recipient acks it; its id lets
/// the recipient drop a repeat.
extension AgentRecord {
    /// A policy worker's path (POLICY/CHILD/...), from the environment its supervisor gave it.
    var policyPath: String? { environment["AGENTOS_CHILD_PATH"] }
}

final class Bus: Sendable {
    private let store: StateStore
    private let events: EventHub
    private let arrivals = SubscriberSet<MessageRecord>()
    let topics = Topics()
    let mailboxLimit: Int

    static let subscriberBuffer = 10_000

    init(store: StateStore, events: EventHub, mailboxLimit: Int) {
        self.store = store
        self.events = events
        self.mailboxLimit = mailboxLimit
    }

    /// The mailbox `to` names: a policy path as given, or a live or ended
    /// agent's identity.
    func recipient(_ to: String, lifecycle: Lifecycle) async throws -> String {
        // The operators' own mailbox: where responses to their requests go.
        if to == Self.operatorIdentity { return to }
        if to.contains("/") {
            let parts = to.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count >= 2, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
                throw KernelError(.invalidArgument, "'\(to)' is not an agent or a policy path POLICY/CHILD")
            }
            return to
        }
        return Self.identity(of: try await lifecycle.resolve(to))
    }

    /// An agent's identity: its policy path, else its name (its mailbox's
    /// name, and its long-term memory's).
    static func identity(of agent: AgentRecord) -> String {
        agent.policyPath ?? agent.name
    }

    /// Puts a message in `recipient`'s mailbox; refused when it is full.
    func send(_ request: Agentos_V1_SendRequest, from sender: String, to recipient: String) throws -> Agentos_V1_SendResponse {
        guard request.payload.count <= Self.maximumPayloadBytes else {
            throw KernelError(.invalidArgument, "a payload of \(request.payload.count) bytes: at most \(Self.maximumPayloadBytes)")
        }
        let type = request.type.isEmpty ? "message" : request.type
        guard ["message", "request", "response", "event", "stream"].contains(type) else {
            throw KernelError(.invalidArgument, "message type '\(type)': use message, request, response, event or stream")
        }
        guard type != "stream" || !request.correlationID.isEmpty else {
            throw KernelError(.invalidArgument, "a stream chunk names its stream in correlation_id (the same id for every chunk)")
        }
        guard request.correlationID.utf8.count <= 128 else {
            throw KernelError(.invalidArgument, "a correlation id is at most 128 bytes")
        }
        let message = MessageRecord(id: randomHexID(length: 16), recipient: recipient, sender: sender, type: type,
                                    contentType: request.contentType.isEmpty ? "application/json" : request.contentType,
                                    payload: [UInt8](request.payload), correlationID: request.correlationID,
                                    sentAt: unixNanoseconds(), streamEnd: type == "stream" && request.end)
        guard let (stored, depth) = try store.enqueueMessage(message, limit: mailboxLimit) else {
            _ = try? events.record("bus.refused", "a message from \(sender) to \(recipient) was refused: its mailbox is full",
                                   data: ["from": sender, "to": recipient])
            throw KernelError(.conflict, "the mailbox of \(recipient) is full (\(mailboxLimit) messages wait): try later",
                              detail: ["reason": "mailbox-full"])
        }
        arrivals.deliver(stored)
        var response = Agentos_V1_SendResponse()
        response.id = stored.id
        response.to = recipient
        response.depth = UInt32(depth)
        return response
    }

    /// What waits for `identity`, then what arrives for it: a stream that
    /// ends only when the caller goes (or falls too far behind).
    func receive(_ identity: String) throws -> (waiting: [MessageRecord], live: BoundedSubscription<MessageRecord>) {
        // Subscribed first: nothing sent between the read and the
        // subscription is missed (a repeat is dropped by seq).
        let live = arrivals.add(buffer: Self.subscriberBuffer)
        return (try store.messages(for: identity), live)
    }

    /// Sends `message` as a request and waits for its response (a message
    /// to `sender` of type response naming it as its correlation id),
    /// which is taken out of the sender's mailbox and returned. Unanswered
    /// within `timeout`, the request is withdrawn if not yet delivered and
    /// acked, and the call fails.
    func request(_ message: Agentos_V1_SendRequest, from sender: String, to recipient: String,
                 timeout: Duration) async throws -> Agentos_V1_BusMessage {
        var request = message
        request.type = "request"
        let live = arrivals.add(buffer: Self.subscriberBuffer)
        defer { live.finish() }
        let sent = try send(request, from: sender, to: recipient)
        let id = sent.id
        let answer = try await withThrowingTaskGroup(of: MessageRecord?.self) { group in
            group.addTask {
                for await arrival in live.stream
                where arrival.recipient == sender && arrival.type == "response" && arrival.correlationID == id {
                    return arrival
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let answer else {
            _ = try? store.acknowledgeMessages([id], recipient: recipient)
            throw KernelError(.conflict, "no response from \(recipient) within \(timeout) (the request is withdrawn if it was not received)",
                              detail: ["reason": "timeout"])
        }
        _ = try store.acknowledgeMessages([answer.id], recipient: sender)
        return Self.wire(answer)
    }

    func acknowledge(_ ids: [String], identity: String) throws -> Int {
        try store.acknowledgeMessages(ids, recipient: identity)
    }

    func mailbox(_ identity: String, limit: Int) throws -> Agentos_V1_MailboxInfo {
        var info = Agentos_V1_MailboxInfo()
        info.identity = identity
        let (count, oldest) = try store.mailboxDepth(identity)
        info.depth = UInt32(count)
        info.oldestNs = oldest ?? 0
        info.messages = try store.messages(for: identity, limit: limit).map(Self.wire)
        return info
    }

    func finishAll() {
        arrivals.finishAll()
        topics.finishAll()
    }

    /// An event to the live subscribers of `request.topic` (not stored).
    func publish(_ request: Agentos_V1_PublishRequest, from sender: String) throws -> Agentos_V1_PublishResponse {
        if let problem = Topics.problem(request.topic, pattern: false) {
            throw KernelError(.invalidArgument, problem)
        }
        guard request.payload.count <= Self.maximumPayloadBytes else {
            throw KernelError(.invalidArgument, "a payload of \(request.payload.count) bytes: at most \(Self.maximumPayloadBytes)")
        }
        var event = Agentos_V1_BusMessage()
        event.id = randomHexID(length: 16)
        event.from = sender
        event.to = request.topic
        event.type = "event"
        event.contentType = request.contentType.isEmpty ? "application/json" : request.contentType
        event.payload = request.payload
        event.sentAtNs = unixNanoseconds()
        var response = Agentos_V1_PublishResponse()
        response.id = event.id
        response.subscribers = UInt32(topics.publish(event))
        return response
    }

    static let maximumPayloadBytes = 1 << 20
    static let operatorIdentity = "operator"

    /// Whether `message` answers a request `sender` holds from `recipient`
    /// (a response, or a stream of chunks, goes back to whoever asked,
    /// whatever its grants).
    func isResponse(_ message: Agentos_V1_SendRequest, from sender: String, to recipient: String) -> Bool {
        guard message.type == "response" || message.type == "stream", !message.correlationID.isEmpty,
              let request = try? store.message(id: message.correlationID, recipient: sender) else { return false }
        return request.type == "request" && request.sender == recipient
    }

    static func wire(_ message: MessageRecord) -> Agentos_V1_BusMessage {
        var wire = Agentos_V1_BusMessage()
        wire.id = message.id
        wire.from = message.sender
        wire.to = message.recipient
        wire.type = message.type
        wire.contentType = message.contentType
        wire.payload = Data(message.payload)
        wire.correlationID = message.correlationID
        wire.sentAtNs = message.sentAt
        wire.end = message.streamEnd
        return wire
    }
}
