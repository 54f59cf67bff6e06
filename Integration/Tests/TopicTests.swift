import AgentOSClient
import AgentOSProtocol
import Foundation
import Testing

/// Topics, message streams, and memory quotas through the real binaries.
@Suite("Topics, streams and quotas", .serialized)
struct TopicTests {
    /// `agentctl subscribe` gets what matches its pattern from the moment
    /// it subscribed; `publish` says how many subscriptions it reached.
    @Test func aSubscriberGetsTheEventsItsPatternMatches() throws {
        let kernel = try KernelProcess(label: "topics")
        defer { kernel.stop() }
        let subscriber = Process()
        subscriber.executableURL = URL(fileURLWithPath: Binaries.agentctl)
        subscriber.arguments = ["subscribe", "news.*", "--json", "--count", "2"]
        subscriber.environment = ["AGENTOS_SOCKET": kernel.socketPath]
        let output = Pipe()
        subscriber.standardOutput = output
        try subscriber.run()
        defer { if subscriber.isRunning { kill(subscriber.processIdentifier, SIGKILL) } }
        func publish(_ topic: String, _ text: String) throws -> Int {
            let answer = try #require(try JSONSerialization.jsonObject(with: Data(
                kernel.ctl(["publish", topic, "--text", text, "--output-json"]).stdout.utf8)) as? [String: Any])
            return answer["subscribers"] as? Int ?? -1
        }
        // Until the subscription is in place, events reach no one (and are not kept).
        #expect(eventually { (try? publish("news.probe", "probe")) == 1 })
        #expect(try publish("sports.results", "not news") == 0)
        #expect(try publish("news.eu.sports", "two segments: * does not match") == 0)
        #expect(try publish("news.sports", "goal") == 1)
        subscriber.waitUntilExit()
        let lines = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.map { $0["topic"] as? String } == ["news.probe", "news.sports"])
        #expect(lines.last?["payload"] as? String == "goal")
        #expect(lines.last?["from"] as? String == "operator")
        #expect(try kernel.ctl(["publish", "bad..topic", "--text", "x"]).stderr.contains("empty segment"))
        #expect(try kernel.ctl(["subscribe", "news.a**"]).stderr.contains("'**' stands alone"))
    }

    /// A subscriber that never reads is cut off with slow_consumer after
    /// its bounded queue; the publisher is never slowed down by it.
    @Test func aSubscriberThatNeverReadsCannotStallThePublisher() throws {
        let kernel = try KernelProcess(label: "slowsub")
        defer { kernel.stop() }
        let fd = try openUnixSocket(path: kernel.socketPath)
        defer { close(fd) }
        var subscribe = Agentos_V1_SubscribeRequest()
        subscribe.pattern = "flood.**"
        for envelope in [Envelope.hello(client: "never-reads"), Envelope.request(id: 1, .subscribe(subscribe))] {
            let bytes = try envelope.framed()
            #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
        }
        let publisher = try kernel.client()
        var request = Agentos_V1_PublishRequest()
        request.payload = Data(repeating: 0x61, count: 4_096)
        request.contentType = "text/plain"
        // Wait until the subscription is registered.
        request.topic = "flood.probe"
        #expect(eventually {
            if case .publish(let answer)? = try? publisher.call(.publish(request)) { return answer.subscribers == 1 }
            return false
        })
        var slowest: TimeInterval = 0
        for index in 0..<3_000 {
            request.topic = "flood.n\(index % 7)"
            let start = Date()
            _ = try publisher.call(.publish(request))
            slowest = max(slowest, Date().timeIntervalSince(start))
        }
        #expect(slowest < 0.5, "a publish waited \(slowest) s")
        // Now read what the subscriber was sent: some events, then the cut.
        var reader = FrameReader()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var events = 0
        var ended: Agentos_V1_Error?
        let deadline = Date().addingTimeInterval(20)
        reading: while Date() < deadline {
            while let payload = try reader.next() {
                let envelope = try Envelope(serializedBytes: payload)
                switch envelope.body {
                case .chunk?: events += 1
                case .error(let error)?:
                    ended = error
                    break reading
                default: break
                }
            }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            reader.append(buffer[0..<n])
        }
        #expect(ended?.code == .slowConsumer, "events read: \(events)")
        #expect(ended?.message.contains("fell more than 1000 events behind") == true)
        #expect(events >= 1_000 && events < 3_000, "\(events) events before the cut")
        // The kernel is fine: the publisher goes on, a new subscription works.
        request.topic = "flood.after"
        #expect(throws: Never.self) { _ = try publisher.call(.publish(request)) }
    }

    /// Stream chunks wait in the mailbox in order, the last marked; a chunk
    /// without its stream's id is refused.
    @Test func aStreamIsOrderedChunksWithAnEnd() throws {
        let kernel = try KernelProcess(label: "streams")
        defer { kernel.stop() }
        _ = try kernel.run(["--name", "reader", "--", "/bin/sleep", "600"])
        for (index, text) in ["one", "two", "three"].enumerated() {
            let result = try kernel.ctl(["send", "reader", "--type", "stream", "--correlation-id", "s-42", "--text", text]
                                            + (index == 2 ? ["--end"] : []))
            #expect(result.status == 0, "\(result.stderr)")
        }
        let box = try #require(try kernel.json(["mailbox", "reader"]) as? [String: Any])
        let messages = try #require(box["messages"] as? [[String: Any]])
        #expect(messages.map { $0["payload"] as? String } == ["one", "two", "three"])
        #expect(messages.map { $0["end"] as? Bool } == [false, false, true])
        #expect(messages.allSatisfy { $0["correlation_id"] as? String == "s-42" && $0["type"] as? String == "stream" })
        let unnamed = try kernel.ctl(["send", "reader", "--type", "stream", "--text", "lost"])
        #expect(unnamed.status == 1)
        #expect(unnamed.stderr.contains("names its stream in correlation_id"))
    }

    /// --memory-quota bounds what one namespace holds: a put past it is
    /// refused with resource_exhausted, a replacement that fits is not.
    @Test func aMemoryQuotaRefusesWhatWouldNotFit() throws {
        let kernel = try KernelProcess(label: "quota", arguments: ["--memory-quota", "1K"])
        defer { kernel.stop() }
        _ = try kernel.run(["--name", "hoarder", "--", "/bin/sleep", "600"])
        let half = String(repeating: "x", count: 500)
        #expect(try kernel.ctl(["mem", "put", "hoarder", "a", half]).status == 0)
        let over = try kernel.ctl(["mem", "put", "hoarder", "b", half + half])
        #expect(over.status == 1)
        #expect(over.stderr.contains("long-term memory is at its quota (agentd --memory-quota): it would hold 1502 bytes, at most 1024"), "\(over.stderr)")
        // Replacing "a" with a value of the same size fits; other namespaces have their own quota.
        #expect(try kernel.ctl(["mem", "put", "hoarder", "a", half]).status == 0)
        #expect(try kernel.ctl(["mem", "put", "shared/pool", "b", half]).status == 0)
        let list = try #require(try kernel.json(["mem", "ls", "hoarder"]) as? [[String: Any]])
        #expect(list.map { $0["key"] as? String } == ["a"])
    }
}
