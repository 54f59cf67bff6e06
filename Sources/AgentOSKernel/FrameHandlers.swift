import AgentOSProtocol
import NIOCore

/// What the frame decoder hands up the pipeline: a payload, or the reason
/// the byte stream stopped making sense (the connection then closes).
enum InboundFrame: Sendable {
    case payload(ByteBuffer)
    case tooLarge(length: Int, maximum: Int)
    case truncated(expected: Int, received: Int)
}

/// Splits the byte stream into frames with a hard size limit. An oversized
/// header is reported once and everything after it is discarded: the
/// connection is about to close and no memory is spent on the rest.
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = InboundFrame

    let maximumPayloadSize: Int
    private var failed = false

    init(maximumPayloadSize: Int) {
        self.maximumPayloadSize = maximumPayloadSize
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if failed {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map(Int.init) else {
            return .needMoreData
        }
        if length > maximumPayloadSize {
            failed = true
            buffer.moveReaderIndex(to: buffer.writerIndex)
            context.fireChannelRead(wrapInboundOut(.tooLarge(length: length, maximum: maximumPayloadSize)))
            return .needMoreData
        }
        guard buffer.readableBytes >= Frame.headerSize + length else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: Frame.headerSize)
        guard let payload = buffer.readSlice(length: length) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(.payload(payload)))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer,
                             seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if !failed && buffer.readableBytes > 0 {
            let received = buffer.readableBytes
            let expected = received >= Frame.headerSize
                ? Frame.headerSize + (buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map(Int.init) ?? 0)
                : Frame.headerSize
            buffer.moveReaderIndex(to: buffer.writerIndex)
            context.fireChannelRead(wrapInboundOut(.truncated(expected: expected, received: received)))
        }
        return .needMoreData
    }
}

extension ByteBuffer {
    /// Appends `payload` as one frame: its length, then its bytes. (The
    /// kernel frames what it writes itself, so a burst of answers is one
    /// buffer, one write.)
    mutating func writeFrame(_ payload: [UInt8]) {
        writeInteger(UInt32(payload.count))
        writeBytes(payload)
    }
}

extension ByteBufferAllocator {
    /// `envelope` as one frame, nil if it cannot be encoded.
    func frame(_ envelope: Envelope) -> ByteBuffer? {
        guard let payload: [UInt8] = try? envelope.serializedBytes() else { return nil }
        var buffer = buffer(capacity: Frame.headerSize + payload.count)
        buffer.writeFrame(payload)
        return buffer
    }
}

/// Closes a connection whose peer has not sent its first frame in time
/// (after telling it why), so silent clients cannot pile up.
final class HandshakeTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = InboundFrame
    typealias InboundOut = InboundFrame
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var seenFrame = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !seenFrame {
            seenFrame = true
            timer?.cancel()
            timer = nil
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    private func arm(context: ChannelHandlerContext) {
        guard timer == nil, !seenFrame else { return }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let milliseconds = timeout.nanoseconds / 1_000_000
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let context = loopBound.value
            let envelope = Envelope.error(.handshakeTimeout, "no hello within \(milliseconds) ms; closing")
            if let buffer = context.channel.allocator.frame(envelope) {
                context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in loopBound.value.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
        }
    }
}
