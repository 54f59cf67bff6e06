@testable import AgentOSKernel
import AgentOSProtocol
import NIOCore
import NIOEmbedded
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Kernel frame pipeline")
struct FrameDecoderTests {
    func makeChannel(maximum: Int = 1_024) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maximumPayloadSize: maximum)))
        return channel
    }

    func payloads(_ channel: EmbeddedChannel) throws -> [[UInt8]] {
        var result: [[UInt8]] = []
        while let frame = try channel.readInbound(as: InboundFrame.self) {
            if case .payload(let buffer) = frame { result.append(Array(buffer.readableBytesView)) }
        }
        return result
    }

    @Test func decodesFramesSplitAcrossReads() throws {
        let channel = try makeChannel()
        let bytes = Frame.encode(Array("first".utf8)) + Frame.encode(Array("second".utf8))
        for byte in bytes { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        #expect(try payloads(channel) == [Array("first".utf8), Array("second".utf8)])
    }

    @Test func decodesCoalescedFrames() throws {
        let channel = try makeChannel()
        let frames = (0..<20).map { [UInt8](repeating: UInt8($0), count: $0) }
        try channel.writeInbound(ByteBuffer(bytes: frames.flatMap(Frame.encode)))
        #expect(try payloads(channel) == frames)
    }

    @Test func reportsAnOversizedFrameOnceAndDropsTheRest() throws {
        let channel = try makeChannel(maximum: 16)
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 17] + [UInt8](repeating: 1, count: 17)))
        try channel.writeInbound(ByteBuffer(bytes: Frame.encode([1, 2])))
        guard case .tooLarge(let length, let maximum)? = try channel.readInbound(as: InboundFrame.self) else {
            Issue.record("no tooLarge")
            return
        }
        #expect(length == 17 && maximum == 16)
        #expect(try channel.readInbound(as: InboundFrame.self) == nil)
    }

    @Test func reportsATruncatedFrameAtEndOfStream() throws {
        let channel = try makeChannel()
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 9, 1, 2]))
        #expect(try channel.readInbound(as: InboundFrame.self) == nil)
        _ = try? channel.finish()
        // decodeLast runs when the channel goes inactive.
        var sawTruncated = false
        while let frame = try? channel.readInbound(as: InboundFrame.self) {
            if case .truncated(let expected, let received) = frame {
                sawTruncated = expected == 13 && received == 6
            }
        }
        #expect(sawTruncated)
    }

    @Test func framesArePrefixedWithTheirLength() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 16)
        buffer.writeFrame([9, 8, 7])
        buffer.writeFrame([])
        #expect(Array(buffer.readableBytesView) == [0, 0, 0, 3, 9, 8, 7, 0, 0, 0, 0])
        let envelope = Envelope.error(.internal, "x")
        let framed = try #require(ByteBufferAllocator().frame(envelope))
        #expect(Array(framed.readableBytesView) == (try envelope.framed()))
    }
}

@Suite("Agent log file")
struct AgentLogTests {
    func temporaryPath() -> String {
        "/tmp/agentos-log-test-\(UInt64.random(in: 0...UInt64.max))"
    }

    @Test func recordsRoundTripAndATornTailIsIgnored() {
        let records = [
            LogRecord(stream: .stdout, time: 1, data: Array("hello\n".utf8)),
            LogRecord(stream: .stderr, time: 2, data: []),
            LogRecord(stream: .kernel, time: -3, data: [0, 255, 10]),
        ]
        let bytes = records.flatMap(AgentLog.encode)
        #expect(AgentLog.decode(bytes) == records)
        #expect(AgentLog.decode(Array(bytes.dropLast(2))) == Array(records.prefix(2)))
        #expect(AgentLog.decode([0x00] + bytes).isEmpty)
    }

    @Test func rotatesAtTheCapKeepingOneOlderFile() throws {
        let path = temporaryPath()
        let log = try AgentLog(path: path, maximumBytes: 4_096)
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 1_000)
        for _ in 0..<20 {
            chunk.withUnsafeBytes { log.write($0, stream: .stdout) }
        }
        log.finish()
        var info = stat()
        #expect(stat(path, &info) == 0 && Int(info.st_size) <= 4_096)
        #expect(stat(path + ".1", &info) == 0 && Int(info.st_size) <= 4_096)
        let records = AgentLog.read(path: path)
        #expect(records.contains { $0.stream == .kernel && String(decoding: $0.data, as: UTF8.self).contains("rotated") })
        let kept = records.filter { $0.stream == .stdout }.count
        #expect(kept >= 4 && kept < 20)
    }

    @Test func followersGetWhatComesAfterTheSnapshot() async throws {
        let log = try AgentLog(path: temporaryPath(), maximumBytes: 1 << 20)
        Array("before".utf8).withUnsafeBytes { log.write($0, stream: .stdout) }
        let (existing, live) = log.follow()
        #expect(existing.map { String(decoding: $0.data, as: UTF8.self) } == ["before"])
        Array("after".utf8).withUnsafeBytes { log.write($0, stream: .stderr) }
        log.finish()
        var received: [String] = []
        for await record in try #require(live).stream { received.append(String(decoding: record.data, as: UTF8.self)) }
        #expect(received == ["after"])
        // A finished log has no live feed.
        #expect(log.follow().live == nil)
    }
}

@Suite("Exit classification")
struct ExitClassificationTests {
    @Test func cleanExitCompletesAndNonZeroFails() {
        #expect(Lifecycle.classify(.exited(code: 0), intent: nil).0 == .completed)
        let (state, exit) = Lifecycle.classify(.exited(code: 3), intent: nil)
        #expect(state == .failed && exit.code == 3 && exit.reason == "exited")
    }

    @Test func theSignalTheKernelSentIsNormal() {
        #expect(Lifecycle.classify(.signaled(signal: SIGTERM, coreDumped: false), intent: .stop).1.reason == "stopped")
        #expect(Lifecycle.classify(.signaled(signal: SIGKILL, coreDumped: false), intent: .stop).0 == .completed)
        #expect(Lifecycle.classify(.signaled(signal: SIGKILL, coreDumped: false), intent: .kill).0 == .completed)
        #expect(Lifecycle.classify(.signaled(signal: SIGTERM, coreDumped: false), intent: .shutdown).1.reason
            == "kernel-shutdown")
    }

    @Test func anyOtherSignalIsAFailure() {
        let (state, exit) = Lifecycle.classify(.signaled(signal: SIGSEGV, coreDumped: true), intent: nil)
        #expect(state == .failed && exit.reason == "signaled" && exit.signal == SIGSEGV && exit.detail == "core dumped")
        // SIGTERM the agent got from elsewhere while being killed is not ours.
        #expect(Lifecycle.classify(.signaled(signal: SIGTERM, coreDumped: false), intent: .kill).0 == .failed)
        #expect(Lifecycle.classify(.signaled(signal: SIGTERM, coreDumped: false), intent: nil).0 == .failed)
    }

    @Test func namesAreValidated() {
        for good in ["a", "web-1", "A.b_c", String(repeating: "x", count: 63)] {
            #expect(Lifecycle.isValidName(good), "\(good)")
        }
        for bad in ["", "-x", ".x", "_x", "a b", "a/b", "ünï", String(repeating: "x", count: 64), "a\0"] {
            #expect(!Lifecycle.isValidName(bad), "\(bad)")
        }
        #expect(Lifecycle.defaultName(program: "/usr/bin/python3", id: "abcdef123456") == "python3-abcdef")
        #expect(Lifecycle.isValidName(Lifecycle.defaultName(program: "/x/--weird name", id: "abcdef123456")))
    }
}

@Suite("Exit classification with limits")
struct LimitClassificationTests {
    @Test func oomAndTimeoutAreReportedAsSuch() {
        let oom = Lifecycle.classify(.signaled(signal: SIGKILL, coreDumped: false), intent: nil, oomKilled: true)
        #expect(oom.0 == .failed && oom.1.reason == "oom")
        // A shell whose child was OOM-killed exits 137: still an OOM.
        #expect(Lifecycle.classify(.exited(code: 137), intent: nil, oomKilled: true).1.reason == "oom")
        // An agent that coped with it and exited 0 completed.
        #expect(Lifecycle.classify(.exited(code: 0), intent: nil, oomKilled: true).0 == .completed)
        let timeout = Lifecycle.classify(.signaled(signal: SIGKILL, coreDumped: false), intent: .timeout)
        #expect(timeout.0 == .failed && timeout.1.reason == "timeout")
        // The operator's kill is not an OOM even if one happened earlier.
        #expect(Lifecycle.classify(.signaled(signal: SIGKILL, coreDumped: false), intent: .kill, oomKilled: true).1.reason
            == "killed")
    }
}
