/// Length-prefixed framing: every frame is a 4-byte big-endian payload
/// length followed by that many bytes. Pure code over bytes, shared by the
/// kernel's NIO pipeline, the blocking client and the tests.
public enum Frame {
    /// Bytes in the length prefix.
    public static let headerSize = 4
    /// Default hard maximum payload size: large enough for any message the
    /// kernel sends, small enough that a hostile length cannot exhaust memory.
    public static let defaultMaximumPayloadSize = 16 * 1024 * 1024

    /// The header and payload as one byte array, ready to write.
    public static func encode(_ payload: [UInt8]) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(headerSize + payload.count)
        appendHeader(length: payload.count, to: &bytes)
        bytes.append(contentsOf: payload)
        return bytes
    }

    public static func appendHeader(length: Int, to bytes: inout [UInt8]) {
        let value = UInt32(truncatingIfNeeded: length)
        bytes.append(UInt8(truncatingIfNeeded: value >> 24))
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    /// The payload length announced by a header (`bytes` holds at least 4).
    public static func decodeLength<C: Collection>(_ bytes: C) -> Int where C.Element == UInt8 {
        var value: UInt32 = 0
        for byte in bytes.prefix(headerSize) {
            value = value << 8 | UInt32(byte)
        }
        return Int(value)
    }
}

/// What went wrong with a byte stream that was supposed to carry frames.
public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The header announced more than the maximum; nothing after it is read.
    case tooLarge(length: Int, maximum: Int)
    /// The stream ended inside a frame.
    case truncated(expected: Int, received: Int)

    public var description: String {
        switch self {
        case .tooLarge(let length, let maximum):
            return "frame of \(length) bytes exceeds the maximum of \(maximum) bytes"
        case .truncated(let expected, let received):
            return "stream ended inside a frame: \(received) of \(expected) bytes received"
        }
    }
}

/// Incremental frame parser: feed it bytes as they arrive (in any split),
/// take whole payloads out. After an error it stays failed.
public struct FrameReader: Sendable {
    public let maximumPayloadSize: Int
    private var buffer: [UInt8] = []
    private var start = 0
    private var failure: FrameError?

    public init(maximumPayloadSize: Int = Frame.defaultMaximumPayloadSize) {
        self.maximumPayloadSize = maximumPayloadSize
    }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        buffer.append(contentsOf: bytes)
    }

    /// The next whole payload, nil when more bytes are needed.
    public mutating func next() throws(FrameError) -> [UInt8]? {
        if let failure { throw failure }
        let available = buffer.count - start
        guard available >= Frame.headerSize else { return nil }
        let length = Frame.decodeLength(buffer[start..<start + Frame.headerSize])
        guard length <= maximumPayloadSize else {
            let error = FrameError.tooLarge(length: length, maximum: maximumPayloadSize)
            failure = error
            throw error
        }
        guard available >= Frame.headerSize + length else { return nil }
        let payloadStart = start + Frame.headerSize
        let payload = Array(buffer[payloadStart..<payloadStart + length])
        start = payloadStart + length
        compact()
        return payload
    }

    /// Call at end of stream: throws if a partial frame is left.
    public func finish() throws(FrameError) {
        if let failure { throw failure }
        let available = buffer.count - start
        guard available > 0 else { return }
        if available < Frame.headerSize {
            throw .truncated(expected: Frame.headerSize, received: available)
        }
        let length = Frame.decodeLength(buffer[start..<start + Frame.headerSize])
        throw .truncated(expected: Frame.headerSize + length, received: available)
    }

    /// Bytes held that do not yet form a frame.
    public var pendingByteCount: Int { buffer.count - start }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 64 * 1024 && start * 2 > buffer.count {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }
}
