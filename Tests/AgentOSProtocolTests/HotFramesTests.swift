import AgentOSProtocol
import Foundation
import Testing

/// The hand-encoded hot frames are exactly what SwiftProtobuf writes, and
/// decode back to the same envelope.
@Suite("Hot frames")
struct HotFramesTests {
    static let messages: [HotFrames.BusMessageFields] = [
        .init(id: "m-1", from: "team/a", to: "team/b", type: "message", contentType: "application/json",
              payload: Array(#"{"x":1}"#.utf8), correlationID: "", sentAtNs: 1_795_845_549_734_790_000,
              end: false, ackedByResponse: false),
        // Every field set, long enough for two-byte lengths, odd bytes.
        .init(id: String(repeating: "i", count: 300), from: "é/ü", to: "x", type: "stream", contentType: "",
              payload: (0..<5_000).map { UInt8(truncatingIfNeeded: $0) }, correlationID: "c\u{0}d",
              sentAtNs: -1, end: true, ackedByResponse: true),
        // Defaults only.
        .init(id: "", from: "", to: "", type: "", contentType: "", payload: [], correlationID: "", sentAtNs: 0,
              end: false, ackedByResponse: false),
    ]

    @Test(arguments: messages, [UInt64(0), 7, 300, UInt64.max])
    func aChunkAndARequestAnswerAreWhatSwiftProtobufWrites(message: HotFrames.BusMessageFields, correlationID: UInt64) throws {
        let wire = message.message
        #expect(wire.id == message.id && wire.from == message.from && wire.to == message.to
                && wire.type == message.type && wire.contentType == message.contentType
                && wire.payload == Data(message.payload) && wire.correlationID == message.correlationID
                && wire.sentAtNs == message.sentAtNs && wire.end == message.end
                && wire.ackedByResponse == message.ackedByResponse)
        var envelope = Envelope()
        envelope.correlationID = correlationID
        envelope.chunk.message = wire
        let expected: [UInt8] = try envelope.serializedBytes()
        let ours = HotFrames.chunk(correlationID: correlationID, message: message)
        #expect(ours == expected)
        #expect(try Envelope(serializedBytes: ours) == envelope)

        var answer = Envelope()
        answer.correlationID = correlationID
        answer.response.result = .request(wire)
        let answerBytes = HotFrames.requestAnswer(correlationID: correlationID, message: message)
        #expect(answerBytes == (try answer.serializedBytes()))
        #expect(try Envelope(serializedBytes: answerBytes) == answer)
    }

    @Test(arguments: [("m-1", "team/b", UInt32(0)), ("", "", 1), (String(repeating: "z", count: 200), "ü", .max)],
          [UInt64(0), 1, UInt64.max])
    func aSendAnswerIsWhatSwiftProtobufWrites(answer: (String, String, UInt32), correlationID: UInt64) throws {
        var envelope = Envelope()
        envelope.correlationID = correlationID
        envelope.response.result = .send(.with {
            $0.id = answer.0
            $0.to = answer.1
            $0.depth = answer.2
        })
        let expected: [UInt8] = try envelope.serializedBytes()
        let ours = HotFrames.sendAnswer(correlationID: correlationID, id: answer.0, to: answer.1, depth: answer.2)
        #expect(ours == expected)
        #expect(try Envelope(serializedBytes: ours) == envelope)
    }

    /// Read by hand, a hot frame is what SwiftProtobuf reads; anything else
    /// is left to SwiftProtobuf.
    @Test func hotFramesReadByHandAreWhatSwiftProtobufReads() throws {
        var frames: [[UInt8]] = []
        for message in Self.messages {
            frames.append(HotFrames.chunk(correlationID: 9, message: message))
            frames.append(HotFrames.requestAnswer(correlationID: 1 << 40, message: message))
        }
        frames.append(HotFrames.sendAnswer(correlationID: 3, id: "m-1", to: "team/b", depth: 7))
        frames.append(HotFrames.sendAnswer(correlationID: 0, id: "", to: "", depth: 0))
        // Fields out of the usual order, and a request id: still read.
        var reordered: [UInt8] = [0x72, 0x05, 0x1a, 0x03, 0x0a, 0x01, 0x61, 0x10, 0x04, 0x08, 0x02]
        frames.append(reordered)
        for frame in frames {
            let hot = try #require(HotFrames.decode(frame), "a hot frame")
            #expect(hot == (try Envelope(serializedBytes: frame)))
        }
        // Not hot: a status response, an error, an empty envelope, an
        // unknown field in a message, a body given twice.
        var status = Envelope()
        status.correlationID = 1
        status.response.result = .status(.init())
        let error = Envelope.error(.notFound, "no such agent", correlationID: 2)
        var unknownField = HotFrames.sendAnswer(correlationID: 3, id: "x", to: "y", depth: 1)
        unknownField[3] += 3
        unknownField.append(contentsOf: [0x20, 0x01])   // SendResponse field 4
        reordered.append(contentsOf: [0x72, 0x00])
        for frame in [try status.serializedBytes(), try error.serializedBytes(), [], unknownField, reordered] {
            #expect(HotFrames.decode(frame) == nil)
        }
        // A string that is not UTF-8: left to SwiftProtobuf, which refuses it.
        var bad = HotFrames.chunk(correlationID: 1, message: Self.messages[0])
        let at = try #require(bad.firstIndex(of: UInt8(ascii: "m")))
        bad[at] = 0xff
        #expect(HotFrames.decode(bad) == nil)
        #expect(throws: (any Error).self) { try Envelope(serializedBytes: bad) }
        // Truncated: nil, never a crash.
        let whole = HotFrames.chunk(correlationID: 5, message: Self.messages[1])
        for cut in stride(from: 0, to: whole.count, by: 97) {
            #expect(HotFrames.decode(Array(whole.prefix(cut))) == nil)
        }
    }

    static let calls: [KernelRequest.OneOf_Call] = {
        var send = Agentos_V1_SendRequest()
        send.to = "team/b"
        send.payload = Data(repeating: 0x2a, count: 300)
        send.contentType = "application/octet-stream"
        var response = send
        response.type = "response"
        response.correlationID = "m-9"
        var chunk = send
        chunk.type = "stream"
        chunk.correlationID = "s"
        chunk.end = true
        var request = Agentos_V1_BusRequest()
        request.message = send
        request.timeoutMs = 5_000
        var ack = Agentos_V1_AckRequest()
        ack.ids = ["m-1", "", String(repeating: "é", count: 100)]
        return [.send(send), .send(response), .send(chunk), .send(Agentos_V1_SendRequest()), .request(request),
                .request(Agentos_V1_BusRequest()), .ack(ack), .ack(Agentos_V1_AckRequest())]
    }()

    /// An agent's hot calls, encoded by hand, are the framed envelope
    /// SwiftProtobuf writes, and read back by hand as SwiftProtobuf reads them.
    @Test func hotCallsAreWhatSwiftProtobufWritesAndReads() throws {
        for (index, call) in Self.calls.enumerated() {
            for quiet in [false, true] {
                let id = UInt64(index) * 1_000_003 + 1
                var envelope = Envelope.request(id: id, call)
                envelope.quiet = quiet
                let expected = try envelope.framed()
                let ours = try #require(HotFrames.framedRequest(id: id, call, quiet: quiet))
                #expect(ours == expected, "call \(index), quiet \(quiet)")
                let payload = Array(ours.dropFirst(Frame.headerSize))
                let read = try #require(HotFrames.decode(payload), "call \(index), quiet \(quiet)")
                #expect(read == (try Envelope(serializedBytes: payload)), "call \(index), quiet \(quiet)")
                #expect(read.quiet == quiet)
            }
        }
        #expect(HotFrames.framedRequest(id: 1, .status(.init())) == nil, "not a hot call")
        // A call with an unknown field in its request: left to SwiftProtobuf.
        var unknown = try #require(HotFrames.framedRequest(id: 1, Self.calls[0])).dropFirst(Frame.headerSize)
        unknown.append(contentsOf: [0x60, 0x01])   // Envelope field 12 again, as a varint: a wrong wire type
        #expect(HotFrames.decode(Array(unknown)) == nil)
    }
}

extension HotFrames.BusMessageFields: CustomTestStringConvertible {
    public var testDescription: String { "\(id.prefix(8))… \(payload.count) bytes" }
}
