import NIOCore

/// MCP over stdio frames messages as lines: one JSON-RPC message, then
/// "\n". A line longer than `maximumLength` is an error (the server is
/// broken or hostile), never an unbounded buffer.
struct LineFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    let maximumLength: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > maximumLength { throw MCPSessionError.messageTooLong(maximumLength) }
            return .needMoreData
        }
        let length = newline - view.startIndex
        guard length <= maximumLength else { throw MCPSessionError.messageTooLong(maximumLength) }
        var line = buffer.readSlice(length: length) ?? ByteBuffer()
        buffer.moveReaderIndex(forwardBy: 1)
        // A "\r\n" ending is tolerated; an empty line is not a message.
        if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
        if line.readableBytes > 0 { context.fireChannelRead(Self.wrapInboundOut(line)) }
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer,
                             seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A last message without its newline still counts.
        if buffer.readableBytes > 0, let rest = buffer.readSlice(length: buffer.readableBytes) {
            context.fireChannelRead(Self.wrapInboundOut(rest))
        }
        return .needMoreData
    }
}
