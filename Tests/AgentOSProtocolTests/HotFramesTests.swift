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
        var wire = Agentos_V1_BusMessage()
        wire.id = message.id
        wire.from = message.from
        wire.to = message.to
        wire.type = message.type
        wire.contentType = message.contentType
        wire.payload = Data(message.payload)
        wire.correlationID = message.correlationID
        wire.sentAtNs = message.sentAtNs
        wire.end = message.end
        wire.ackedByResponse = message.ackedByResponse
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
}

extension HotFrames.BusMessageFields: CustomTestStringConvertible {
    public var testDescription: String { "\(id.prefix(8))… \(payload.count) bytes" }
}
