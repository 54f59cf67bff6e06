import AgentOSClient
import AgentOSProtocol
import Foundation
import Testing

/// The message bus: durable, bounded mailboxes, delivered at least once.
@Suite("Message bus", .serialized)
struct BusTests {
    func lines(_ kernel: KernelProcess, _ agent: String, _ prefix: String) throws -> [[String: Any]] {
        try kernel.ctl(["logs", agent]).lines.compactMap { line in
            guard line.hasPrefix(prefix + " ") else { return nil }
            return try JSONSerialization.jsonObject(with: Data(line.dropFirst(prefix.count + 1).utf8)) as? [String: Any]
        }
    }

    /// Sent while the worker is not there, kept across kill -9 of the
    /// kernel, delivered when the worker runs, gone once acked.
    @Test func aMessageWaitsForItsWorkerAcrossAKernelCrashAndIsDeliveredOnce() throws {
        let kernel = try KernelProcess(label: "bus")
        defer { kernel.stop() }
        let first = try kernel.ctl(["send", "crew/listener", "--json", #"{"task": "one"}"#])
        #expect(first.status == 0)
        let id = first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 16)
        #expect(try kernel.ctl(["send", "crew/listener", "--text", "two"]).status == 0)
        let box = try #require(try kernel.json(["mailbox", "crew/listener"]) as? [String: Any])
        #expect(box["depth"] as? Int == 2)
        #expect(((box["messages"] as? [[String: Any]])?.first?["from"] as? String) == "operator")
        kernel.kill9()
        try kernel.start()
        #expect((try kernel.json(["mailbox", "crew/listener"]) as? [String: Any])?["depth"] as? Int == 2)
        let flags = Binaries.demoAgentSandboxFlags.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        try kernel.apply("""
            version: 1
            name: crew
            supervisor:
              strategy: one_for_one
              children:
                - id: listener
                  program: \(Binaries.demoAgent)
                  args: ["1", "0.01"]
                  restart: temporary
                  env: {AGENTOS_DEMO_RECEIVE: "2"}
                  sandbox: {ro: [\(flags.joined(separator: ", "))]}
            """)
        var got: [[String: Any]] = []
        #expect(eventually(timeout: 20) {
            got = (try? lines(kernel, "crew.listener", "message")) ?? []
            return got.count == 2
        })
        #expect(got.first?["id"] as? String == id)
        #expect(got.first?["payload"] as? String == #"{"task": "one"}"#)
        #expect(got.last?["payload"] as? String == "two")
        #expect(eventually { ((try? kernel.json(["mailbox", "crew/listener"]) as? [String: Any])?["depth"] as? Int) == 0 })
    }

    @Test func aRequestGetsItsResponseOrTimesOut() throws {
        let kernel = try KernelProcess(label: "busrequest")
        defer { kernel.stop() }
        _ = try kernel.run(Binaries.demoAgentSandboxFlags + ["--name", "echoer", "--env", "AGENTOS_DEMO_RECEIVE=1",
                                                             "--", Binaries.demoAgent, "1", "0.01"])
        let answered = try kernel.ctl(["request", "echoer", "--text", "ping", "--timeout", "10s"])
        #expect(answered.status == 0, "\(answered.stderr)")
        #expect(answered.stdout == "echo: ping\n")
        // The response was taken out of the operator's mailbox.
        #expect((try kernel.json(["mailbox", "operator"]) as? [String: Any])?["depth"] as? Int == 0)
        _ = try kernel.run(["--name", "silent", "--", "/bin/sleep", "600"])
        let start = Date()
        let unanswered = try kernel.ctl(["request", "silent", "--text", "anyone?", "--timeout", "500ms"])
        #expect(unanswered.status == 1)
        #expect(unanswered.stderr.contains("no response from silent within"))
        #expect(Date().timeIntervalSince(start) < 5)
        // Withdrawn: nothing left waiting for the silent one.
        #expect((try kernel.json(["mailbox", "silent"]) as? [String: Any])?["depth"] as? Int == 0)
    }

    @Test func aFullMailboxRefusesAndAgentsMessageTheirTeamOrWhomACapabilityNames() throws {
        let kernel = try KernelProcess(label: "busfull", arguments: ["--mailbox-limit", "2"])
        defer { kernel.stop() }
        _ = try kernel.run(["--name", "sink", "--", "/bin/sleep", "600"])
        #expect(try kernel.ctl(["send", "sink", "--text", "a"]).status == 0)
        #expect(try kernel.ctl(["send", "sink", "--text", "b"]).status == 0)
        let full = try kernel.ctl(["send", "sink", "--text", "c"])
        #expect(full.status == 1)
        #expect(full.stderr.contains("the mailbox of sink is full (2 messages wait)"))
        #expect(try kernel.ctl(["send", "sink", "--json", "{not json"]).status != 0)
        #expect(try kernel.ctl(["send", "nobody-here", "--text", "x"]).status == 1)
        // No agent may take the operators' name (it would receive their responses, or pose as them).
        #expect(try kernel.ctl(["run", "--name", "operator", "--", "/bin/true"]).stderr.contains("the operators' own"))

        // An agent outside any team: denied without a capability, allowed with one; the sender is set by the kernel.
        _ = try kernel.run(["--name", "other", "--", "/bin/sleep", "600"])
        func sender(_ name: String, _ capabilities: [String]) throws -> [String: Any] {
            let id = try kernel.run(Binaries.demoAgentSandboxFlags + ["--name", name] + capabilities.flatMap { ["--cap", $0] }
                + ["--env", "AGENTOS_DEMO_SEND=other hello from \(name)", "--", Binaries.demoAgent, "1", "0.01"])
            try kernel.ctl(["wait", id])
            return try #require(try lines(kernel, id, "send-result").first)
        }
        let denied = try sender("stranger", [])
        #expect(denied["ok"] as? Bool == false)
        #expect((denied["error"] as? String)?.contains("may message its team only") == true, "\(denied)")
        // The denial is in the tamper-evident audit chain.
        let audit = try kernel.ctl(["audit", "--json"])
        #expect(audit.stdout.contains("capability.denied") && audit.stdout.contains("stranger was denied message"), "\(audit.stdout.suffix(2_000))")
        let allowed = try sender("friend", ["capability://agent/other?action=message"])
        #expect(allowed["ok"] as? Bool == true, "\(allowed)")
        let box = try #require(try kernel.json(["mailbox", "other"]) as? [String: Any])
        #expect(((box["messages"] as? [[String: Any]])?.first?["from"] as? String) == "friend")
    }

    /// Delivered but not acked when the kernel is killed: delivered again
    /// after the restart, with the same id (the SDKs drop such a repeat
    /// within one run; a new run sees it once more and decides).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/opt/agentos/python/agentkit/__init__.py"),
                   "the Python SDK is not installed: run Integration/install-examples.sh"))
    func aMessageNotAckedBeforeAKernelCrashComesAgainWithItsID() throws {
        let kernel = try KernelProcess(label: "busredeliver")
        defer { kernel.stop() }
        let script = "import agentkit, time; a = agentkit.connect(); m = next(iter(a.messages())); "
            + "print('got', m.id, m.text(), flush=True); time.sleep(600)"
        try kernel.apply("""
            version: 1
            name: crew
            supervisor:
              strategy: one_for_one
              children:
                - id: reader
                  program: /usr/bin/python3
                  args: [-c, "\(script)"]
                  env: {PYTHONPATH: /opt/agentos/python}
                  sandbox: {ro: [/opt/agentos]}
            """)
        let id = try kernel.ctl(["send", "crew/reader", "--text", "once"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(eventually(timeout: 20) { (try? kernel.ctl(["logs", "crew.reader"]).stdout) == "got \(id) once\n" })
        kernel.kill9()
        try kernel.start()
        // The tree starts again; the new reader gets the same message, same id.
        #expect(eventually(timeout: 30) {
            let agents = (try? kernel.json(["ps"]) as? [[String: Any]]) ?? []
            guard let live = agents.first(where: { $0["name"] as? String == "crew.reader" }), let agent = live["id"] as? String
            else { return false }
            return (try? kernel.ctl(["logs", agent]).stdout) == "got \(id) once\n"
        }, "\(kernel.kernelLog.suffix(2_000))")
        #expect((try kernel.json(["mailbox", "crew/reader"]) as? [String: Any])?["depth"] as? Int == 1)
    }

    /// A response after its requester gave up is accepted and dropped: the
    /// responder (outside the requester's team, without a grant) is not
    /// refused, and nothing is left in anyone's mailbox.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/opt/agentos/python/agentkit/__init__.py"),
                   "the Python SDK is not installed: run Integration/install-examples.sh"))
    func aResponseAfterTheRequesterGaveUpIsDropped() throws {
        let kernel = try KernelProcess(label: "buslate")
        defer { kernel.stop() }
        let script = "import agentkit, time; a = agentkit.connect(); m = next(iter(a.messages())); time.sleep(1.5); "
            + "a.respond(m, text='late'); print('responded', flush=True); a.ack(m); time.sleep(600)"
        _ = try kernel.run(["--name", "slowpoke", "--ro", "/opt/agentos", "--env", "PYTHONPATH=/opt/agentos/python",
                            "--", "/usr/bin/python3", "-c", script])
        let asked = try kernel.ctl(["request", "slowpoke", "--text", "now?", "--timeout", "500ms"])
        #expect(asked.status == 1)
        #expect(asked.stderr.contains("no response from slowpoke within"))
        #expect(eventually(timeout: 10) { (try? kernel.ctl(["logs", "slowpoke"]).stdout) == "responded\n" },
                "\((try? kernel.ctl(["logs", "slowpoke"]))?.stderr ?? "")")
        #expect((try kernel.json(["mailbox", "operator"]) as? [String: Any])?["depth"] as? Int == 0)
        #expect(eventually { ((try? kernel.json(["mailbox", "slowpoke"]) as? [String: Any])?["depth"] as? Int) == 0 })
    }

    /// A responder may answer whoever asked it, whatever its grants; it may
    /// not use that to ask them something: a `request` call is checked as a
    /// request even when the message it carries says it is a response to
    /// an awaited request (and the denial is audited).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/opt/agentos/python/agentkit/__init__.py"),
                   "the Python SDK is not installed: run Integration/install-examples.sh"))
    func aRequestDressedAsAResponseNeedsAGrant() throws {
        let kernel = try KernelProcess(label: "busdressed")
        defer { kernel.stop() }
        let script = """
            import agentkit, time
            from agentkit._proto import pb
            a = agentkit.connect()
            m = next(iter(a.messages()))
            ask = pb.BusRequest(message=pb.SendRequest(to='operator', type='response', correlation_id=m.id, payload=b'?'), timeout_ms=300)
            try:
                a._exec('request', ask, lambda r: r)
                print('asked', flush=True)
            except Exception as error:
                print('refused', type(error).__name__, str(error)[:80], flush=True)
            a.respond(m, text='answer')
            time.sleep(600)
            """
        _ = try kernel.run(["--name", "answerer", "--ro", "/opt/agentos", "--env", "PYTHONPATH=/opt/agentos/python",
                            "--", "/usr/bin/python3", "-c", script])
        let asked = try kernel.ctl(["request", "answerer", "--text", "question", "--timeout", "20s"])
        #expect(asked.status == 0, "\(asked.stderr)")
        #expect(asked.stdout == "answer\n")
        let log = try kernel.ctl(["logs", "answerer"]).stdout
        #expect(log.hasPrefix("refused PermissionDenied"), "\(log)")
        #expect(log.contains("may message its team only"), "\(log)")
        let audit = try kernel.ctl(["audit", "--json"]).stdout
        #expect(audit.contains("capability.denied") && audit.contains("answerer was denied message"), "\(audit.suffix(2_000))")
        #expect((try kernel.json(["mailbox", "operator"]) as? [String: Any])?["depth"] as? Int == 0)
    }

    /// A quiet send is stored like any other and answered only if it
    /// fails; quiet on a call other than send or ack is refused clearly.
    @Test func aQuietSendIsAnsweredOnlyWhenItFails() throws {
        let kernel = try KernelProcess(label: "busquiet")
        defer { kernel.stop() }
        _ = try kernel.run(["--name", "sink", "--", "/bin/sleep", "600"])
        let raw = try RawConnection(socketPath: kernel.socketPath)
        try raw.send(.hello(client: "raw"))
        guard case .welcome? = raw.readFrame()?.body else {
            Issue.record("no welcome")
            return
        }
        func call(_ id: UInt64, _ call: KernelRequest.OneOf_Call, quiet: Bool) throws {
            var envelope = Envelope.request(id: id, call)
            envelope.quiet = quiet
            try raw.send(envelope)
        }
        var send = Agentos_V1_SendRequest()
        send.to = "sink"
        send.payload = Data("quiet".utf8)
        try call(1, .send(send), quiet: true)
        send.payload = Data("loud".utf8)
        try call(2, .send(send), quiet: false)
        // A connection's sends are answered in order, once stored: the
        // first frame back answers the second send, and counts both.
        let loud = raw.readFrame()
        #expect(loud?.correlationID == 2, "\(String(describing: loud))")
        guard case .send(let sent)? = loud?.response.result else {
            Issue.record("no answer to the second send: \(String(describing: loud))")
            return
        }
        #expect(sent.depth == 2)
        // Refused: the error comes, with the quiet send's id.
        send.to = "nobody-here"
        try call(3, .send(send), quiet: true)
        let refused = raw.readFrame()
        #expect(refused?.correlationID == 3)
        #expect(refused?.error.code == .notFound, "\(String(describing: refused))")
        // Quiet on a status call: refused, and the connection goes on.
        try call(4, .status(.init()), quiet: true)
        let wrong = raw.readFrame()
        #expect(wrong?.correlationID == 4)
        #expect(wrong?.error.code == .invalidArgument)
        #expect(wrong?.error.message.contains("quiet is for send and ack only, not status") == true,
                "\(String(describing: wrong))")
        try call(5, .status(.init()), quiet: false)
        #expect(raw.readFrame()?.correlationID == 5)
        let box = try #require(try kernel.json(["mailbox", "sink"]) as? [String: Any])
        #expect(box["depth"] as? Int == 2)
    }

    /// On an agent's socket, where the kernel handles a send to the team on
    /// its event loop, a quiet send is stored without an answer, and one
    /// the kernel refuses gets its error, which the SDK logs.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/opt/agentos/python/agentkit/__init__.py"),
                   "the Python SDK is not installed: run Integration/install-examples.sh"))
    func aQuietSendOnAnAgentsSocketIsAnsweredOnlyWhenRefused() throws {
        let kernel = try KernelProcess(label: "busquietagent")
        defer { kernel.stop() }
        // Every frame answering one of the two quiet sends is printed.
        let script = """
            import agentkit, time
            from agentkit._proto import pb
            a = agentkit.connect()
            first = a._conn._next_id + 1
            seen = a._conn._dispatch
            def spy(envelope):
                if first <= envelope.correlation_id < first + 2:
                    print('answer', envelope.correlation_id - first, envelope.WhichOneof('body'), flush=True)
                seen(envelope)
            a._conn._dispatch = spy
            a.send('hush/sink', text='first')  # the reader waits with the spy from here on
            a._conn.send_quietly('send', pb.SendRequest(to='hush/sink', payload=b'quiet'))
            a._conn.send_quietly('send', pb.SendRequest(to='hush/sink', payload=b'x' * 1048577))
            a.send('hush/sink', text='loud')
            print('done', flush=True)
            time.sleep(600)
            """
        try kernel.apply("""
            version: 1
            name: hush
            supervisor:
              strategy: one_for_one
              children:
                - id: talker
                  program: /usr/bin/python3
                  args: [-c, \(String(decoding: try JSONEncoder().encode(script), as: UTF8.self))]
                  env: {PYTHONPATH: /opt/agentos/python}
                  sandbox: {ro: [/opt/agentos]}
                - id: sink
                  program: /bin/sleep
                  args: ["600"]
            """)
        var log = ""
        #expect(eventually(timeout: 20) {
            // agentctl logs prints what the agent wrote to stderr on its own stderr.
            log = (try? kernel.ctl(["logs", "hush.talker"])).map { $0.stdout + $0.stderr } ?? ""
            return log.contains("done\n") && log.contains("answer 1 error")
        }, "\(log)")
        // The loud send was answered after the quiet one was stored: had
        // the quiet one been answered, that would have come first.
        #expect(!log.contains("answer 0"), "\(log)")
        #expect(log.contains("which nothing waited for (a quiet send or ack, or a call given up)"), "\(log)")
        #expect(log.contains("a payload of 1048577 bytes: at most 1048576"), "\(log)")
        let box = try #require(try kernel.json(["mailbox", "hush/sink"]) as? [String: Any])
        #expect(box["depth"] as? Int == 3, "the first send, the quiet one and the loud one")
    }

    /// Bad input gets a clear error and changes nothing for anyone else.
    @Test func oversizedPayloadsAndBadMessagesAreRefusedClearly() throws {
        let kernel = try KernelProcess(label: "busbad")
        defer { kernel.stop() }
        _ = try kernel.run(["--name", "sink", "--", "/bin/sleep", "600"])
        let client = try kernel.client()
        var send = Agentos_V1_SendRequest()
        send.to = "sink"
        send.payload = Data(repeating: 0x78, count: (1 << 20) + 1)
        #expect(throws: ClientError.self) { _ = try client.call(.send(send)) }
        do {
            _ = try client.call(.send(send))
        } catch {
            #expect("\(error)".contains("a payload of 1048577 bytes: at most 1048576"))
        }
        send.payload = Data("ok".utf8)
        send.type = "gossip"
        #expect(throws: ClientError.self) { _ = try client.call(.send(send)) }
        send.type = "message"
        send.end = true
        #expect(throws: ClientError.self) { _ = try client.call(.send(send)) }
        send.end = false
        send.to = "../etc"
        #expect(throws: ClientError.self) { _ = try client.call(.send(send)) }
        var publish = Agentos_V1_PublishRequest()
        publish.topic = "a..b"
        #expect(throws: ClientError.self) { _ = try client.call(.publish(publish)) }
        // The connection and the mailbox are fine.
        send.to = "sink"
        guard case .send(let sent) = try client.call(.send(send)) else { throw HarnessError("send failed") }
        #expect(sent.depth == 1)
    }
}
