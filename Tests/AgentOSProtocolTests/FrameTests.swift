import AgentOSProtocol
import Testing

@Suite("Frame codec")
struct FrameTests {
    @Test func roundTripsPayloadsOfEverySize() throws {
        for size in [0, 1, 3, 4, 5, 255, 256, 65_535, 65_536, 1_000_000] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            var reader = FrameReader()
            reader.append(Frame.encode(payload))
            #expect(try reader.next() == payload)
            #expect(try reader.next() == nil)
            #expect(reader.pendingByteCount == 0)
        }
    }

    @Test func headerIsBigEndianLength() {
        #expect(Frame.encode([1, 2, 3]) == [0, 0, 0, 3, 1, 2, 3])
        #expect(Array(Frame.encode([UInt8](repeating: 0, count: 0x0102_03)).prefix(4)) == [0, 1, 2, 3])
    }

    @Test func reassemblesFramesSplitAtEveryByte() throws {
        let frames = [[UInt8]("hello".utf8), [], [UInt8]("a longer payload that crosses reads".utf8)]
        let stream = frames.flatMap(Frame.encode)
        var reader = FrameReader()
        var decoded: [[UInt8]] = []
        for byte in stream {
            reader.append([byte])
            while let payload = try reader.next() { decoded.append(payload) }
        }
        #expect(decoded == frames)
        try reader.finish()
    }

    @Test func splitsCoalescedFrames() throws {
        let frames = (0..<50).map { index in [UInt8](repeating: UInt8(index), count: index * 7) }
        var reader = FrameReader()
        reader.append(frames.flatMap(Frame.encode))
        var decoded: [[UInt8]] = []
        while let payload = try reader.next() { decoded.append(payload) }
        #expect(decoded == frames)
    }

    @Test func rejectsOversizedLengthBeforeReadingThePayload() throws {
        var reader = FrameReader(maximumPayloadSize: 1_024)
        reader.append([0, 0, 4, 1])   // 1025 bytes announced, none sent
        #expect(throws: FrameError.tooLarge(length: 1_025, maximum: 1_024)) { try reader.next() }
        // It stays failed: a hostile stream cannot resynchronise it.
        reader.append(Frame.encode([1]))
        #expect(throws: FrameError.tooLarge(length: 1_025, maximum: 1_024)) { try reader.next() }
    }

    @Test func acceptsExactlyTheMaximum() throws {
        var reader = FrameReader(maximumPayloadSize: 16)
        reader.append(Frame.encode([UInt8](repeating: 7, count: 16)))
        #expect(try reader.next()?.count == 16)
    }

    @Test func reportsTruncatedFrames() throws {
        var reader = FrameReader()
        reader.append([0, 0, 0, 10, 1, 2, 3])
        #expect(try reader.next() == nil)
        #expect(throws: FrameError.truncated(expected: 14, received: 7)) { try reader.finish() }

        var header = FrameReader()
        header.append([0, 0])
        #expect(throws: FrameError.truncated(expected: 4, received: 2)) { try header.finish() }
    }

    @Test func garbageIsEitherOversizedOrAnUndecodableEnvelope() throws {
        // "GET " read as a length is 0x47455420: far above the maximum.
        var reader = FrameReader()
        reader.append(Array("GET / HTTP/1.1\r\n".utf8))
        #expect(throws: FrameError.self) { try reader.next() }

        // Small garbage forms a frame whose payload is not an Envelope.
        var small = FrameReader()
        small.append([0, 0, 0, 3, 0xFF, 0xFF, 0xFF])
        let payload = try #require(try small.next())
        #expect(throws: (any Error).self) { try Envelope(serializedBytes: payload) }
    }
}

@Suite("Envelope")
struct EnvelopeTests {
    @Test func helloCarriesTheVersionRange() throws {
        let envelope = Envelope.hello(client: "test")
        var reader = FrameReader()
        reader.append(try envelope.framed())
        let decoded = try Envelope(serializedBytes: try #require(try reader.next()))
        guard case .hello(let hello)? = decoded.body else {
            Issue.record("not a hello")
            return
        }
        #expect(hello.minVersion == AgentOSVersion.minimumProtocolVersion)
        #expect(hello.maxVersion == AgentOSVersion.protocolVersion)
        #expect(hello.client == "test")
    }

    @Test func requestAndErrorKeepTheirIDs() throws {
        let request = Envelope.request(id: 42, .status(.init()))
        let decoded = try Envelope(serializedBytes: try request.serializedBytes() as [UInt8])
        #expect(decoded.requestID == 42)
        #expect(decoded.request.call?.name == "status")

        let error = Envelope.error(.notFound, "nope", correlationID: 42, detail: ["agent": "x"])
        let back = try Envelope(serializedBytes: try error.serializedBytes() as [UInt8])
        #expect(back.correlationID == 42)
        #expect(back.error.code == .notFound)
        #expect(back.error.detail["agent"] == "x")
    }

    @Test func errorCodeNumbersAreStable() {
        // Clients switch on these numbers; renumbering breaks them.
        #expect(ErrorCode.frameTooLarge.rawValue == 1)
        #expect(ErrorCode.handshakeRequired.rawValue == 3)
        #expect(ErrorCode.versionMismatch.rawValue == 4)
        #expect(ErrorCode.unknownMessage.rawValue == 20)
        #expect(ErrorCode.notFound.rawValue == 23)
        #expect(ErrorCode.programNotFound.rawValue == 26)
        #expect(ErrorCode.duplicateRequestID.rawValue == 32)
    }
}

@Suite("Units")
struct UnitsTests {
    @Test(arguments: [("500ms", 500), ("5s", 5_000), ("5", 5_000), ("1.5s", 1_500), ("2m", 120_000),
                      ("1h", 3_600_000), ("7d", 604_800_000), (" 10s ", 10_000), ("0", 0)] as [(String, Int64)])
    func parsesDurations(text: String, milliseconds: Int64) throws {
        #expect(try Units.milliseconds(text) == milliseconds)
    }

    @Test(arguments: ["", "abc", "-5s", "5x", "s", "nan", "inf"])
    func rejectsBadDurations(text: String) {
        #expect(throws: Units.ParseError.self) { try Units.milliseconds(text) }
    }

    @Test(arguments: [("4096", 4_096), ("64K", 65_536), ("16M", 16_777_216), ("1G", 1_073_741_824),
                      ("16MiB", 16_777_216), ("2kb", 2_048)] as [(String, Int)])
    func parsesSizes(text: String, bytes: Int) throws {
        #expect(try Units.bytes(text) == bytes)
    }

    @Test(arguments: ["", "-5", "abc", "12Q", "M"])
    func rejectsBadSizes(text: String) {
        #expect(throws: Units.ParseError.self) { try Units.bytes(text) }
    }
}
