@testable import AgentOSMCP
import NIOCore
import NIOEmbedded
import Testing

@Suite("MCP stdio framing")
struct LineFrameDecoderTests {
    func decoded(_ chunks: [String], maximum: Int = 64) throws -> [String] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineFrameDecoder(maximumLength: maximum)))
        for chunk in chunks { try channel.writeInbound(ByteBuffer(string: chunk)) }
        var lines: [String] = []
        while let line = try channel.readInbound(as: ByteBuffer.self) { lines.append(String(buffer: line)) }
        _ = try? channel.finish()
        return lines
    }

    @Test func linesSplitAnywhereComeOutWhole() throws {
        #expect(try decoded(["{\"a\":1}\n{\"b\"", ":2}\r\n", "\n", "{\"c\":3}\n"]) == ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"])
        #expect(try decoded(["x\ny\nz"]) == ["x", "y"])   // z waits for its newline
    }

    @Test func aLineLongerThanTheLimitIsAnErrorNotAGrowingBuffer() {
        #expect(throws: MCPSessionError.self) { _ = try decoded([String(repeating: "a", count: 65)]) }
        #expect(throws: MCPSessionError.self) { _ = try decoded([String(repeating: "a", count: 70) + "\n"]) }
    }
}
