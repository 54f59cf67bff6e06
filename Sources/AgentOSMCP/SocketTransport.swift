import Foundation
import Logging
import MCP
import NIOCore
import NIOPosix

/// MCP's stdio transport over the kernel's end of a socketpair whose other
/// end is the server's stdin and stdout: newline-framed messages through a
/// NIO channel (the SDK's own stdio transport polls with sleeps). End of
/// file finishes `receive()` with `MCPSessionError.closed`, which ends the
/// client's read loop.
public actor SocketTransport: Transport {
    public nonisolated let logger: Logger
    private let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    private let messages: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private var writer: NIOAsyncChannelOutboundWriter<ByteBuffer>?
    private var pump: Task<Void, Never>?

    /// Takes `fd` (closed with the channel, or here if this fails).
    public static func open(fd: Int32, group: any EventLoopGroup, maximumMessageBytes: Int,
                            logger: Logger) async throws -> SocketTransport {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: group).withConnectedSocket(fd) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(LineFrameDecoder(maximumLength: maximumMessageBytes)))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        } catch {
            close(fd)
            throw error
        }
        return SocketTransport(channel: channel, logger: logger)
    }

    private init(channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, logger: Logger) {
        self.channel = channel
        self.logger = logger
        (messages, continuation) = AsyncThrowingStream.makeStream(of: Data.self, throwing: (any Error).self)
    }

    public func connect() async throws {
        guard pump == nil else { return }
        let (writers, handOver) = AsyncStream.makeStream(of: NIOAsyncChannelOutboundWriter<ByteBuffer>.self)
        let channel = channel, continuation = continuation
        pump = Task {
            do {
                try await channel.executeThenClose { inbound, outbound in
                    handOver.yield(outbound)
                    handOver.finish()
                    for try await line in inbound { continuation.yield(Data(line.readableBytesView)) }
                }
                continuation.finish(throwing: MCPSessionError.closed)
            } catch {
                handOver.finish()
                continuation.finish(throwing: error)
            }
        }
        for await outbound in writers {
            writer = outbound
            break
        }
        guard writer != nil else { throw MCPSessionError.closed }
    }

    public func disconnect() async {
        writer?.finish()
        writer = nil
        channel.channel.close(promise: nil)
        await pump?.value
    }

    public func send(_ data: Data) async throws {
        guard let writer else { throw MCPSessionError.closed }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(data.count + 1)
        buffer.writeBytes(data)
        buffer.writeInteger(UInt8(ascii: "\n"))
        try await writer.write(buffer)
    }

    public nonisolated func receive() -> AsyncThrowingStream<Data, any Error> {
        messages
    }
}
