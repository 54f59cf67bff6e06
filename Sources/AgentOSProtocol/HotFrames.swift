import Foundation

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

        /// The same fields as SwiftProtobuf's message, for the frames
        /// written the generic way.
        public var message: Agentos_V1_BusMessage {
            var wire = Agentos_V1_BusMessage()
            wire.id = id
            wire.from = from
            wire.to = to
            wire.type = type
            wire.contentType = contentType
            wire.payload = Data(payload)
            wire.correlationID = correlationID
            wire.sentAtNs = sentAtNs
            wire.end = end
            wire.ackedByResponse = ackedByResponse
            return wire
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

    /// An agent's hot calls (send, request, ack) as the framed Envelope
    /// carrying them (the length prefix included), `quiet` as the
    /// envelope's flag; nil for any other call.
    public static func framedRequest(id: UInt64, _ call: KernelRequest.OneOf_Call, quiet: Bool = false) -> [UInt8]? {
        let inner: (field: Int, size: Int, write: (inout Writer) -> Void)
        switch call {
        case .send(let send):
            inner = (Self.sendCallField, size(of: send), { write(send, into: &$0) })
        case .request(let request):
            // A message field is written when set, even empty.
            let messageSize = size(of: request.message)
            let size = (request.hasMessage ? fieldSize(1, length: messageSize) : 0) + varintFieldSize(2, request.timeoutMs)
            inner = (Self.requestCallField, size, { out in
                if request.hasMessage {
                    out.lengthPrefix(1, messageSize)
                    write(request.message, into: &out)
                }
                out.varintField(2, request.timeoutMs)
            })
        case .ack(let ack):
            let size = ack.ids.reduce(0) { $0 + fieldSize(1, length: $1.utf8.count) }
            inner = (Self.ackCallField, size, { out in
                for id in ack.ids { out.repeatedString(1, id) }
            })
        default:
            return nil
        }
        let requestSize = fieldSize(inner.field, length: inner.size)
        let flag: UInt64 = quiet ? 1 : 0
        let envelopeSize = varintFieldSize(1, id) + varintFieldSize(3, flag) + fieldSize(12, length: requestSize)
        guard envelopeSize <= Int(UInt32.max) else { return nil }
        var out = Writer(capacity: Frame.headerSize + envelopeSize)
        Frame.appendHeader(length: envelopeSize, to: &out.bytes)
        out.varintField(1, id)
        out.varintField(3, flag)
        out.lengthPrefix(12, requestSize)
        out.lengthPrefix(inner.field, inner.size)
        inner.write(&out)
        return out.bytes
    }

    private static func size(of send: Agentos_V1_SendRequest) -> Int {
        stringSize(1, send.to) + (send.payload.isEmpty ? 0 : fieldSize(2, length: send.payload.count))
            + stringSize(3, send.contentType) + stringSize(4, send.type) + stringSize(5, send.correlationID)
            + varintFieldSize(6, send.end ? 1 : 0)
    }

    private static func write(_ send: Agentos_V1_SendRequest, into out: inout Writer) {
        out.string(1, send.to)
        if !send.payload.isEmpty {
            out.lengthPrefix(2, send.payload.count)
            out.bytes.append(contentsOf: send.payload)
        }
        out.string(3, send.contentType)
        out.string(4, send.type)
        out.string(5, send.correlationID)
        out.varintField(6, send.end ? 1 : 0)
    }

    /// Request.call's `send`, `ack` and `request` fields.
    static let sendCallField = 44
    static let ackCallField = 46
    static let requestCallField = 48

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

    fileprivate struct Writer {
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

        /// An element of a repeated string field: written even when empty.
        mutating func repeatedString(_ field: Int, _ value: String) {
            lengthPrefix(field, value.utf8.count)
            bytes.append(contentsOf: value.utf8)
        }

        mutating func blob(_ field: Int, _ value: [UInt8]) {
            guard !value.isEmpty else { return }
            lengthPrefix(field, value.count)
            bytes.append(contentsOf: value)
        }
    }
}

// MARK: Reading

extension HotFrames {
    /// The envelope in `bytes` if it is one of the hot frames (a chunk with
    /// a BusMessage, a response with a SendResponse or a BusMessage, a
    /// request with a send, a request or an ack call), read
    /// by hand; nil for anything else, or anything unusual (an unknown or
    /// repeated field, a wrong wire type, a string that is not UTF-8): the
    /// caller then decodes it with SwiftProtobuf, which says what is wrong.
    public static func decode(_ bytes: [UInt8]) -> Envelope? {
        bytes.withUnsafeBufferPointer { buffer -> Envelope? in
            var reader = Reader(buffer[...])
            var envelope = Envelope()
            var bodySeen = false
            while !reader.atEnd {
                guard let (field, wireType) = reader.tag() else { return nil }
                switch (field, wireType) {
                case (1, 0):
                    guard let value = reader.varint() else { return nil }
                    envelope.requestID = value
                case (2, 0):
                    guard let value = reader.varint() else { return nil }
                    envelope.correlationID = value
                case (3, 0):
                    guard let value = reader.varint() else { return nil }
                    envelope.quiet = value != 0
                case (12, 2) where !bodySeen:
                    guard var request = reader.nested(), let call = Self.call(&request) else { return nil }
                    envelope.request.call = call
                    bodySeen = true
                case (13, 2) where !bodySeen:
                    guard var response = reader.nested(), let result = Self.response(&response) else { return nil }
                    envelope.response.result = result
                    bodySeen = true
                case (14, 2) where !bodySeen:
                    guard var chunk = reader.nested(), let message = Self.chunkMessage(&chunk) else { return nil }
                    envelope.chunk.item = .message(message)
                    bodySeen = true
                default:
                    return nil
                }
            }
            return bodySeen ? envelope : nil
        }
    }

    private static func response(_ reader: inout Reader) -> KernelResponse.OneOf_Result? {
        guard let (field, wireType) = reader.tag(), wireType == 2, var inner = reader.nested(), reader.atEnd else {
            return nil
        }
        switch field {
        case sendResultField:
            var answer = Agentos_V1_SendResponse()
            while !inner.atEnd {
                guard let (field, wireType) = inner.tag() else { return nil }
                switch (field, wireType) {
                case (1, 2): guard let value = inner.string() else { return nil }; answer.id = value
                case (2, 2): guard let value = inner.string() else { return nil }; answer.to = value
                case (3, 0): guard let value = inner.varint(), value <= UInt32.max else { return nil }; answer.depth = UInt32(value)
                default: return nil
                }
            }
            return .send(answer)
        case requestResultField:
            return busMessage(&inner).map { .request($0) }
        default:
            return nil
        }
    }

    private static func call(_ reader: inout Reader) -> KernelRequest.OneOf_Call? {
        guard let (field, wireType) = reader.tag(), wireType == 2, var inner = reader.nested(), reader.atEnd else {
            return nil
        }
        switch field {
        case sendCallField:
            return sendRequest(&inner).map { .send($0) }
        case requestCallField:
            var request = Agentos_V1_BusRequest()
            var messageSeen = false
            while !inner.atEnd {
                guard let (field, wireType) = inner.tag() else { return nil }
                switch (field, wireType) {
                case (1, 2) where !messageSeen:
                    guard var message = inner.nested(), let send = sendRequest(&message) else { return nil }
                    request.message = send
                    messageSeen = true
                case (2, 0):
                    guard let value = inner.varint() else { return nil }
                    request.timeoutMs = value
                default:
                    return nil
                }
            }
            return .request(request)
        case ackCallField:
            var ack = Agentos_V1_AckRequest()
            while !inner.atEnd {
                guard let (field, wireType) = inner.tag(), field == 1, wireType == 2, let id = inner.string() else {
                    return nil
                }
                ack.ids.append(id)
            }
            return .ack(ack)
        default:
            return nil
        }
    }

    private static func sendRequest(_ reader: inout Reader) -> Agentos_V1_SendRequest? {
        var send = Agentos_V1_SendRequest()
        while !reader.atEnd {
            guard let (field, wireType) = reader.tag() else { return nil }
            switch (field, wireType) {
            case (1, 2): guard let value = reader.string() else { return nil }; send.to = value
            case (2, 2): guard let value = reader.nested() else { return nil }; send.payload = Data(value.rest)
            case (3, 2): guard let value = reader.string() else { return nil }; send.contentType = value
            case (4, 2): guard let value = reader.string() else { return nil }; send.type = value
            case (5, 2): guard let value = reader.string() else { return nil }; send.correlationID = value
            case (6, 0): guard let value = reader.varint() else { return nil }; send.end = value != 0
            default: return nil
            }
        }
        return send
    }

    private static func chunkMessage(_ reader: inout Reader) -> Agentos_V1_BusMessage? {
        guard let (field, wireType) = reader.tag(), field == 3, wireType == 2, var inner = reader.nested(),
              reader.atEnd else { return nil }
        return busMessage(&inner)
    }

    private static func busMessage(_ reader: inout Reader) -> Agentos_V1_BusMessage? {
        var message = Agentos_V1_BusMessage()
        while !reader.atEnd {
            guard let (field, wireType) = reader.tag() else { return nil }
            switch (field, wireType) {
            case (1, 2): guard let value = reader.string() else { return nil }; message.id = value
            case (2, 2): guard let value = reader.string() else { return nil }; message.from = value
            case (3, 2): guard let value = reader.string() else { return nil }; message.to = value
            case (4, 2): guard let value = reader.string() else { return nil }; message.type = value
            case (5, 2): guard let value = reader.string() else { return nil }; message.contentType = value
            case (6, 2): guard let value = reader.nested() else { return nil }; message.payload = Data(value.rest)
            case (7, 2): guard let value = reader.string() else { return nil }; message.correlationID = value
            case (8, 0): guard let value = reader.varint() else { return nil }; message.sentAtNs = Int64(bitPattern: value)
            case (9, 0): guard let value = reader.varint() else { return nil }; message.end = value != 0
            case (10, 0): guard let value = reader.varint() else { return nil }; message.ackedByResponse = value != 0
            default: return nil
            }
        }
        return message
    }

    private struct Reader {
        var rest: Slice<UnsafeBufferPointer<UInt8>>

        init(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) {
            rest = bytes
        }

        var atEnd: Bool { rest.isEmpty }

        mutating func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while let byte = rest.first {
                rest = rest.dropFirst()
                guard shift < 64 else { return nil }
                value |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
            return nil
        }

        mutating func tag() -> (field: Int, wireType: UInt64)? {
            guard let tag = varint(), tag >> 3 > 0, tag >> 3 <= 1 << 29 else { return nil }
            return (Int(tag >> 3), tag & 7)
        }

        /// A length-delimited field's bytes, as a reader of their own.
        mutating func nested() -> Reader? {
            guard let length = varint(), length <= UInt64(rest.count) else { return nil }
            let end = rest.startIndex + Int(length)
            defer { rest = rest[end...] }
            return Reader(rest[rest.startIndex..<end])
        }

        mutating func string() -> String? {
            guard let bytes = nested() else { return nil }
            return String(validating: bytes.rest, as: UTF8.self)
        }
    }
}
