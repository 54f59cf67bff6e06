import AgentOSProtocol
import Foundation
import Synchronization
import Testing
@testable import AgentKit

/// AgentKit against a scripted kernel on a socketpair: what goes on the
/// wire, and what the agent gets back.
@Suite("AgentKit")
struct AgentTests {
    @Test func handshakeGivesTheAgentItsIdentity() throws {
        let kernel = try FakeKernel { _, _ in }
        let agent = try Agent(fd: kernel.agentFD, childPath: "team/writer")
        #expect(agent.identity.id == "a1b2c3")
        #expect(agent.identity.name == "tester")
        #expect(agent.identity.address == "team/writer")
        #expect(agent.kernelVersion == "fake")
        guard case .hello(let hello)? = kernel.envelopes.first?.body else {
            Issue.record("the first frame was not hello")
            return
        }
        #expect(hello.client.hasPrefix("agentkit-swift"))
    }

    @Test func concurrentCallsAreMatchedToTheirAnswersWhateverTheOrder() async throws {
        // Answers in reverse order of arrival, once three requests are in.
        let kernel = try FakeKernel { kernel, envelope in
            let waiting = kernel.envelopes.filter { $0.request.call != nil }
            guard waiting.count == 3 else { return }
            for request in waiting.reversed() {
                var sent = Agentos_V1_SendResponse()
                sent.id = "m\(request.requestID)"
                sent.to = request.request.send.to
                kernel.respond(to: request, .send(sent))
            }
        }
        let agent = try Agent(fd: kernel.agentFD)
        let targets = try await withThrowingTaskGroup(of: (String, SentMessage).self) { group in
            for target in ["a", "b", "c"] {
                group.addTask { (target, try await agent.send(to: target, .text("hi"))) }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(targets.count == 3)
        for (target, sent) in targets { #expect(sent.to == target) }
    }

    @Test func aKernelRefusalIsATypedErrorWithItsDetail() async throws {
        let kernel = try FakeKernel { kernel, envelope in
            kernel.fail(envelope, .conflict, "the mailbox of team/writer is full", detail: ["reason": "mailbox-full"])
        }
        let agent = try Agent(fd: kernel.agentFD)
        do {
            try await agent.send(to: "team/writer", .text("x"))
            Issue.record("a refused send returned")
        } catch let error as AgentKitError {
            #expect(error.kernelCode == .conflict)
            #expect(error.detail["reason"] == "mailbox-full")
        }
    }

    @Test func aMessageDeliveredTwiceIsSeenOnce() async throws {
        let kernel = try FakeKernel { kernel, envelope in
            guard case .receive? = envelope.request.call else { return }
            for id in ["m1", "m2", "m1", "m3", "m2"] { kernel.chunk(to: envelope, .message(busMessage(id))) }
            var end = Envelope()
            end.correlationID = envelope.requestID
            end.streamEnd.reason = "kernel-shutdown"
            kernel.reply(end)
        }
        let agent = try Agent(fd: kernel.agentFD)
        var ids: [String] = []
        for try await message in agent.messages() { ids.append(message.id) }
        #expect(ids == ["m1", "m2", "m3"])
    }

    @Test func aMessageBufferedButNeverReadComesAgainFromTheNextStream() async throws {
        // Each receive: the two messages waiting in the mailbox (nothing acked).
        let kernel = try FakeKernel { kernel, envelope in
            guard case .receive? = envelope.request.call else { return }
            for id in ["m1", "m2"] { kernel.chunk(to: envelope, .message(busMessage(id))) }
        }
        let agent = try Agent(fd: kernel.agentFD)
        for try await message in agent.messages() {
            #expect(message.id == "m1")
            break   // m2 may be buffered already; it was not handed out
        }
        for try await message in agent.messages() {
            #expect(message.id == "m2")
            break
        }
    }

    @Test func serveAnswersEachRequestWithItsCorrelationIDThenAcksIt() async throws {
        let kernel = try FakeKernel { kernel, envelope in
            switch envelope.request.call {
            case .receive?:
                kernel.chunk(to: envelope, .message(busMessage("r1", payload: #"{"n": 2}"#)))
                kernel.chunk(to: envelope, .message(busMessage("e1", type: "event")))
            case .send?:
                kernel.respond(to: envelope, .send(Agentos_V1_SendResponse()))
            case .ack(let ack)?:
                kernel.respond(to: envelope, .ack(Agentos_V1_AckResponse()))
                if ack.ids == ["e1"] { kernel.hangUp() }
            default:
                break
            }
        }
        let agent = try Agent(fd: kernel.agentFD)
        struct Number: Codable { let n: Int }
        do {
            try await agent.serve { request in
                try Payload.json(Number(n: try request.decode(Number.self).n * 10))
            }
        } catch let error as AgentKitError {
            #expect(error.code == .connectionClosed)
        }
        let calls = kernel.requests
        guard calls.count >= 4, case .send(let response) = calls[1], case .ack(let first) = calls[2],
              case .ack(let second) = calls[3] else {
            Issue.record("unexpected calls: \(calls.map(\.name))")
            return
        }
        #expect(response.type == "response")
        // A stored request: its response is waited for before the ack.
        let quietSends = kernel.envelopes.filter { $0.request.call?.name == "send" }.map(\.quiet)
        #expect(quietSends == [false])
        #expect(response.correlationID == "r1")
        #expect(response.to == "team/planner")
        #expect(String(decoding: response.payload, as: UTF8.self) == #"{"n":20}"#)
        #expect(first.ids == ["r1"])
        #expect(second.ids == ["e1"])
    }

    /// `ackLater` on the socket thread: acks go when it next waits, with
    /// nothing waiting for their answer, and a full batch goes as one call
    /// without waiting for the work that made it to end.
    @Test func acksMadeLaterGoTogetherWhenTheReaderWaits() async throws {
        let kernel = try FakeKernel { kernel, envelope in
            switch envelope.request.call {
            case .receive?:
                for id in ["m1", "m2", "m3"] { kernel.chunk(to: envelope, .message(busMessage(id, type: "message"))) }
            case .ack? where !envelope.quiet:
                kernel.respond(to: envelope, .ack(Agentos_V1_AckResponse()))
            default:
                break
            }
        }
        let agent = try Agent(fd: kernel.agentFD)
        try await withTaskExecutorPreference(agent.executor) {
            var seen = 0
            for try await message in agent.messages() {
                agent.ackLater(message)
                seen += 1
                if seen == 3 { break }
            }
        }
        func acks() -> [[String]] {
            kernel.requests.compactMap { call -> [String]? in
                if case .ack(let ack) = call { return ack.ids }
                return nil
            }
        }
        func waitUntil(_ done: () -> Bool) async throws {
            let deadline = Date().addingTimeInterval(5)
            while !done() && Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
        }
        try await waitUntil { acks().joined().count >= 3 }
        #expect(Array(acks().joined()) == ["m1", "m2", "m3"], "each acked once, in order: \(acks())")
        #expect(acks().count <= 3)
        let before = acks().count
        let batch = (0..<KernelLink.ackBatch).map { "b\($0)" }
        await withTaskExecutorPreference(agent.executor) {
            for id in batch { agent.ackLater(Message(busMessage(id, type: "message"))) }
        }
        try await waitUntil { acks().count > before }
        #expect(acks().dropFirst(before).first == batch, "a full batch in one call: \(acks())")
        let ackFrames = kernel.envelopes.filter { $0.request.call?.name == "ack" }
        #expect(!ackFrames.isEmpty && ackFrames.allSatisfy(\.quiet), "nobody waits for their answers")
    }

    @Test func leavingASubscriptionSendsCancelForIt() async throws {
        let kernel = try FakeKernel { kernel, envelope in
            if case .subscribe? = envelope.request.call {
                var event = busMessage("t1", type: "event")
                event.to = "news.sports"
                kernel.chunk(to: envelope, .message(event))
            }
        }
        let agent = try Agent(fd: kernel.agentFD)
        for try await event in agent.subscribe("news.*") {
            #expect(event.to == "news.sports")
            #expect(event.kind == .event)
            break
        }
        let subscribeID = try #require(kernel.envelopes.first { $0.request.call?.name == "subscribe" }?.requestID)
        var cancelled = false
        for _ in 0..<200 where !cancelled {
            cancelled = kernel.envelopes.contains { $0.cancel.requestID == subscribeID }
            if !cancelled { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(cancelled)
    }

    @Test func aStreamIsChunksWithOneIDAndAnEnd() async throws {
        let kernel = try FakeKernel { kernel, envelope in
            kernel.respond(to: envelope, .send(Agentos_V1_SendResponse()))
        }
        let agent = try Agent(fd: kernel.agentFD)
        let stream = agent.openStream(to: "team/reader", id: "s-1")
        try await stream.write(.text("one"))
        try await stream.write(.text("two"))
        try await stream.finish()
        let sends = kernel.requests.compactMap { call -> Agentos_V1_SendRequest? in
            if case .send(let send) = call { return send }
            return nil
        }
        #expect(sends.map(\.type) == ["stream", "stream", "stream"])
        #expect(sends.allSatisfy { $0.correlationID == "s-1" })
        #expect(sends.map(\.end) == [false, false, true])
    }

    @Test func callsWaitingWhenTheKernelGoesFailWithConnectionClosed() async throws {
        let kernel = try FakeKernel { kernel, _ in kernel.hangUp() }
        let agent = try Agent(fd: kernel.agentFD)
        await #expect(throws: AgentKitError.self) { try await agent.ready() }
        do {
            try await agent.ready()
            Issue.record("a call after the kernel went returned")
        } catch let error as AgentKitError {
            #expect(error.code == .connectionClosed)
        }
    }

    @Test func memoryGetOfAMissingKeyIsNil() async throws {
        let kernel = try FakeKernel { kernel, envelope in
            guard case .memGet(let request)? = envelope.request.call else { return }
            if request.key == "there" {
                var item = Agentos_V1_MemoryItem()
                item.key = "there"
                item.value = "v"
                var list = Agentos_V1_MemoryList()
                list.entries = [item]
                kernel.respond(to: envelope, .memGet(list))
            } else {
                kernel.fail(envelope, .notFound, "no '\(request.key)' in shared/duo memory")
            }
        }
        let agent = try Agent(fd: kernel.agentFD)
        #expect(try await agent.memory.get("there", scope: .shared("duo"))?.value == "v")
        #expect(try await agent.memory.get("missing", scope: .shared("duo")) == nil)
        guard case .memGet(let request)? = kernel.requests.last else { return }
        #expect(request.scope == "shared/duo")
    }

    @Test func aCallCancelledBeforeItIsWrittenIsNeverSent() async throws {
        let kernel = try FakeKernel { _, _ in }   // never answers
        let agent = try Agent(fd: kernel.agentFD)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await agent.ready()
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        try await Task.sleep(for: .milliseconds(50))
        #expect(kernel.requests.isEmpty)   // neither the request nor a Cancel ahead of it
        #expect(!kernel.envelopes.contains { $0.cancel.requestID != 0 })
    }

    @Test func seenMessagesForgetsTheOldestBeyondItsCapacity() {
        var seen = SeenMessages(capacity: 3)
        var fresh: [Bool] = []
        for id in ["a", "a", "b", "c", "d", "e", "a", "f", "c", "g", "a", "g"] { fresh.append(seen.insert(id)) }
        // The second "a" is a repeat, and so is the third (at least the
        // last three ids are kept); "c" and then "a" are forgotten once
        // two generations of newer ids have passed, and "g" is still known.
        #expect(fresh == [true, false, true, true, true, true, false, true, true, true, true, false])
    }
}

/// The socket thread as a task executor, and requests a response removes.
@Suite("AgentKit socket thread")
struct AgentSocketThreadTests {
    @Test func workPreferringTheSocketThreadIsResumedOnIt() async throws {
        let kernel = try FakeKernel { kernel, envelope in
            kernel.respond(to: envelope, .send(Agentos_V1_SendResponse()))
        }
        let agent = try Agent(fd: kernel.agentFD)
        let names = try await withTaskExecutorPreference(agent.executor) {
            var names: [String?] = []
            for _ in 0..<3 {
                try await agent.send(to: "team/b", .text("x"))
                names.append(currentThreadName())
            }
            return names
        }
        #expect(names == Array(repeating: KernelLink.threadName, count: 3))
    }

    @Test(.timeLimit(.minutes(1)))
    func workPreferringTheSocketThreadGoesOnAfterTheKernelHangsUp() async throws {
        let kernel = try FakeKernel { kernel, _ in kernel.hangUp() }
        let agent = try Agent(fd: kernel.agentFD)
        let outcome = await withTaskExecutorPreference(agent.executor) { () async -> String in
            do {
                try await agent.send(to: "team/b", .text("x"))
                return "sent"
            } catch let error as AgentKitError {
                // Still scheduled after the socket is gone: the thread runs jobs on.
                try? await Task.sleep(for: .milliseconds(10))
                await Task.yield()
                return error.code == .connectionClosed ? "closed" : "\(error)"
            } catch {
                return "\(error)"
            }
        }
        #expect(outcome == "closed")
    }

    @Test(.timeLimit(.minutes(1)))
    func aTaskThatKeepsYieldingOnTheSocketThreadDoesNotStarveItsAnswers() async throws {
        let kernel = try FakeKernel { kernel, envelope in
            kernel.respond(to: envelope, .send(Agentos_V1_SendResponse()))
        }
        let agent = try Agent(fd: kernel.agentFD)
        final class Flag: Sendable {
            let raised = Atomic(false)
            var isRaised: Bool { raised.load(ordering: .acquiring) }
        }
        let done = Flag()
        try await withTaskExecutorPreference(agent.executor) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !done.isRaised { await Task.yield() }
                }
                group.addTask {
                    for _ in 0..<3 { try await agent.send(to: "team/b", .text("x")) }
                    done.raised.store(true, ordering: .releasing)
                }
                try await group.waitForAll()
            }
        }
        #expect(done.isRaised)
    }

    @Test func serveLeavesTheAckOfAnAnsweredRequestToItsResponse() async throws {
        let kernel = try FakeKernel { kernel, envelope in
            switch envelope.request.call {
            case .receive?:
                var request = busMessage("r1", payload: #"{"n": 1}"#)
                request.ackedByResponse = true
                kernel.chunk(to: envelope, .message(request))
                kernel.chunk(to: envelope, .message(busMessage("r2")))
                kernel.chunk(to: envelope, .message(busMessage("e1", type: "event")))
            case .send? where envelope.quiet:
                // Answered only when refused, which does not stop serving.
                kernel.fail(envelope, .invalidArgument, "a payload of 2000000 bytes: at most 1048576")
            case .send?:
                kernel.respond(to: envelope, .send(Agentos_V1_SendResponse()))
            case .ack(let ack)?:
                kernel.respond(to: envelope, .ack(Agentos_V1_AckResponse()))
                if ack.ids == ["e1"] { kernel.hangUp() }
            default:
                break
            }
        }
        let agent = try Agent(fd: kernel.agentFD)
        do {
            try await agent.serve { _ in .text("ok") }
        } catch let error as AgentKitError {
            #expect(error.code == .connectionClosed)
        }
        let acked = kernel.requests.compactMap { call -> [String]? in
            if case .ack(let ack) = call { return ack.ids }
            return nil
        }
        // r1 was removed by its response; r2 was stored (sent as a message of type request).
        #expect(acked == [["r2"], ["e1"]])
        // r1's requester waits: its response is quiet; r2's is waited for.
        let quiet = kernel.envelopes.filter { $0.request.call?.name == "send" }.map(\.quiet)
        #expect(quiet == [true, false])
    }
}

/// The calling thread's name, as the system has it (`Thread.current` is
/// not for async code).
func currentThreadName() -> String? {
    (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))?
        .trimmingCharacters(in: .whitespacesAndNewlines)
}
