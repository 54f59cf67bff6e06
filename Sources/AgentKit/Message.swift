import AgentOSProtocol
import Foundation

/// What a message carries: bytes and their content type.
public struct Payload: Sendable {
    public var bytes: Data
    public var contentType: String

    public init(bytes: Data, contentType: String = "application/octet-stream") {
        self.bytes = bytes
        self.contentType = contentType
    }

    public static func text(_ text: String) -> Payload {
        Payload(bytes: Data(text.utf8), contentType: "text/plain; charset=utf-8")
    }

    /// A value encoded as JSON (sorted keys, so equal values are equal bytes).
    public static func json<Value: Encodable>(_ value: Value) throws(AgentKitError) -> Payload {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            return Payload(bytes: try encoder.encode(value), contentType: "application/json")
        } catch {
            throw AgentKitError(.encoding, "cannot encode \(Value.self) as JSON: \(error)")
        }
    }
}

/// A message from the bus: from a mailbox (`messages()`), a topic
/// (`subscribe`) or the response to a `request`. `from` is set by the
/// kernel, never by the sender.
public struct Message: Sendable, Identifiable {
    public enum Kind: String, Sendable {
        case message, request, response, event, stream
    }

    /// Unique; a repeat of a message (delivery is at least once) has the same id.
    public let id: String
    /// The sender's identity (a policy path, or an agent's name), or "operator".
    public let from: String
    /// The recipient's identity, or the topic of an event.
    public let to: String
    public let kind: Kind
    public let contentType: String
    public let payload: Data
    /// A response's request, or a stream chunk's stream.
    public let correlationID: String
    public let sentAt: Date
    /// A stream's last chunk.
    public let isStreamEnd: Bool
    /// A request whose requester waits: responding removes it from the
    /// mailbox, no ack needed.
    public let isAckedByResponse: Bool

    init(_ wire: Agentos_V1_BusMessage) {
        id = wire.id
        from = wire.from
        to = wire.to
        kind = Kind(rawValue: wire.type) ?? .message
        contentType = wire.contentType
        payload = wire.payload
        correlationID = wire.correlationID
        sentAt = Date(timeIntervalSince1970: Double(wire.sentAtNs) / 1e9)
        isStreamEnd = wire.end
        isAckedByResponse = wire.ackedByResponse
    }

    /// The payload as UTF-8 text.
    public var text: String { String(decoding: payload, as: UTF8.self) }

    /// The payload decoded from JSON.
    public func decode<Value: Decodable>(_ type: Value.Type = Value.self) throws(AgentKitError) -> Value {
        do {
            return try JSONDecoder().decode(Value.self, from: payload)
        } catch {
            throw AgentKitError(.encoding, "message \(id) from \(from) is not a \(Value.self): \(error)")
        }
    }
}

/// Where a sent message went.
public struct SentMessage: Sendable {
    public let id: String
    /// The mailbox: the recipient's identity.
    public let to: String
    /// How many messages wait there now.
    public let depth: Int
}

/// The ids of the messages this process has seen, so a repeat (after a
/// re-subscription, or a redelivery of one not yet acked) is dropped.
/// Bounded, in two generations: the last `capacity` ids at least, at most
/// twice that; the older generation is forgotten whole when the newer one
/// fills. (Removing ids one by one made each message pay a hash-table
/// deletion, a tenth of a responder's time.)
struct SeenMessages: Sendable {
    private var recent: Set<String> = []
    private var older: Set<String> = []
    let capacity: Int

    init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// Records `id`; false when it was seen already.
    mutating func insert(_ id: String) -> Bool {
        guard !older.contains(id), recent.insert(id).inserted else { return false }
        if recent.count >= capacity {
            older = recent
            recent = Set(minimumCapacity: capacity)
        }
        return true
    }
}
