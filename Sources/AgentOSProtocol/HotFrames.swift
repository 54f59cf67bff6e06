/// The envelopes the bus writes most (a mailbox's message to its reader, a
/// send's answer to its sender, a request's response to its requester),
/// encoded by hand: byte for byte
/// what SwiftProtobuf writes for them (fields in number order, defaults
/// left out), without its generic machinery or building the messages.
/// Everything else goes through SwiftProtobuf.
public enum HotFrames {
    /// The fields of a BusMessage.
    public struct BusMessageFields: Sendable {
        public var id: String
        public var from: String
        public var to: String
        public var type: String
        public var contentType: String
        public var payload: [UInt8]
        public var correlationID: String
        public var sentAtNs: Int64
        public var end: Bool
        public var ackedByResponse: Bool

        public init(id: String, from: String, to: String, type: String, contentType: String, payload: [UInt8],
                    correlationID: String, sentAtNs: Int64, end: Bool, ackedByResponse: Bool) {
            self.id = id
            self.from = from
            self.to = to
            self.type = type
            self.contentType = contentType
            self.payload = payload
            self.correlationID = correlationID
            self.sentAtNs = sentAtNs
            self.end = end
            self.ackedByResponse = ackedByResponse
        }
    }

    /// Envelope{correlation_id, chunk: StreamChunk{message: BusMessage}}:
    /// a mailbox's message to its reader.
    public static func chunk(correlationID: UInt64, message: BusMessageFields) -> [UInt8] {
        envelope(correlationID: correlationID, body: 14, item: 3, message: message)
    }

    /// Envelope{correlation_id, response: Response{request: BusMessage}}:
    /// a request's response to its requester.
    public static func requestAnswer(correlationID: UInt64, message: BusMessageFields) -> [UInt8] {
        envelope(correlationID: correlationID, body: 13, item: Self.requestResultField, message: message)
    }

    /// Envelope{correlation_id, `body`: {`item`: BusMessage}}.
    private static func envelope(correlationID: UInt64, body: Int, item: Int, message: BusMessageFields) -> [UInt8] {
        let messageSize = size(of: message)
        let bodySize = fieldSize(item, length: messageSize)
        var out = Writer(capacity: varintFieldSize(2, correlationID) + fieldSize(body, length: bodySize))
        out.varintField(2, correlationID)
        out.lengthPrefix(body, bodySize)
        out.lengthPrefix(item, messageSize)
        out.string(1, message.id)
        out.string(2, message.from)
        out.string(3, message.to)
        out.string(4, message.type)
        out.string(5, message.contentType)
        out.blob(6, message.payload)
        out.string(7, message.correlationID)
        out.varintField(8, UInt64(bitPattern: message.sentAtNs))
        out.varintField(9, message.end ? 1 : 0)
        out.varintField(10, message.ackedByResponse ? 1 : 0)
        return out.bytes
    }

    /// Envelope{correlation_id, response: Response{send: SendResponse{id, to, depth}}}.
    public static func sendAnswer(correlationID: UInt64, id: String, to: String, depth: UInt32) -> [UInt8] {
        let answerSize = stringSize(1, id) + stringSize(2, to) + varintFieldSize(3, UInt64(depth))
        let responseSize = fieldSize(Self.sendResultField, length: answerSize)
        var out = Writer(capacity: varintFieldSize(2, correlationID) + fieldSize(13, length: responseSize))
        out.varintField(2, correlationID)
        out.lengthPrefix(13, responseSize)
        out.lengthPrefix(Self.sendResultField, answerSize)
        out.string(1, id)
        out.string(2, to)
        out.varintField(3, UInt64(depth))
        return out.bytes
    }

    /// Response.result's `send` and `request` fields.
    static let sendResultField = 42
    static let requestResultField = 45

    // MARK: Sizes

    private static func size(of message: BusMessageFields) -> Int {
        stringSize(1, message.id) + stringSize(2, message.from) + stringSize(3, message.to)
            + stringSize(4, message.type) + stringSize(5, message.contentType)
            + (message.payload.isEmpty ? 0 : fieldSize(6, length: message.payload.count))
            + stringSize(7, message.correlationID)
            + varintFieldSize(8, UInt64(bitPattern: message.sentAtNs))
            + varintFieldSize(9, message.end ? 1 : 0) + varintFieldSize(10, message.ackedByResponse ? 1 : 0)
    }

    private static func varintSize(_ value: UInt64) -> Int {
        var value = value >> 7
        var size = 1
        while value != 0 {
            size += 1
            value >>= 7
        }
        return size
    }

    private static func tagSize(_ field: Int) -> Int { varintSize(UInt64(field << 3)) }

    /// A length-delimited field of `length` bytes (written even when empty).
    private static func fieldSize(_ field: Int, length: Int) -> Int {
        tagSize(field) + varintSize(UInt64(length)) + length
    }

    /// Zero (the default) is left out.
    private static func varintFieldSize(_ field: Int, _ value: UInt64) -> Int {
        value == 0 ? 0 : tagSize(field) + varintSize(value)
    }

    /// An empty string (the default) is left out.
    private static func stringSize(_ field: Int, _ value: String) -> Int {
        let count = value.utf8.count
        return count == 0 ? 0 : fieldSize(field, length: count)
    }

    // MARK: Writing

    private struct Writer {
        var bytes: [UInt8] = []

        init(capacity: Int) {
            bytes.reserveCapacity(capacity)
        }

        mutating func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(value))
        }

        mutating func varintField(_ field: Int, _ value: UInt64) {
            guard value != 0 else { return }
            varint(UInt64(field << 3))
            varint(value)
        }

        mutating func lengthPrefix(_ field: Int, _ length: Int) {
            varint(UInt64(field << 3 | 2))
            varint(UInt64(length))
        }

        mutating func string(_ field: Int, _ value: String) {
            let count = value.utf8.count
            guard count > 0 else { return }
            lengthPrefix(field, count)
            bytes.append(contentsOf: value.utf8)
        }

        mutating func blob(_ field: Int, _ value: [UInt8]) {
            guard !value.isEmpty else { return }
            lengthPrefix(field, value.count)
            bytes.append(contentsOf: value)
        }
    }
}
