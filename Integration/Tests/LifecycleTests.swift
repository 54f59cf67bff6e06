import AgentOSClient
import AgentOSProtocol
import Foundation
import Testing

@Suite("agentctl drives agent lifecycles", .serialized)
struct LifecycleTests {
    let kernel: KernelProcess

    init() throws {
        kernel = try KernelProcess(label: "life")
    }

    @Test func runPsInspectLogsAndWait() throws {
        let id = try kernel.run(["--name", "greeter", "--env", "WHO=world", "--",
                                 "/bin/sh", "-c", "echo hello $WHO; echo oops >&2; sleep 0.3; exit 4"])
        #expect(id.count == 12)

        let running = try #require(try kernel.json(["ps"]) as? [[String: Any]])
        #expect(running.contains { $0["id"] as? String == id && $0["state"] as? String == "running" })

        let wait = try kernel.ctl(["wait", "greeter"])
        #expect(wait.status == 4)

        let all = try #require(try kernel.json(["ps", "-a"]) as? [[String: Any]])
        let entry = try #require(all.first { $0["id"] as? String == id })
        #expect(entry["state"] as? String == "failed")
        let exit = try #require(entry["exit"] as? [String: Any])
        #expect(exit["code"] as? Int == 4)
        #expect(exit["reason"] as? String == "exited")
        #expect(try #require(try kernel.json(["ps"]) as? [[String: Any]]).allSatisfy { $0["id"] as? String != id })

        let logs = try kernel.ctl(["logs", id])
        #expect(logs.stdout == "hello world\n")
        #expect(logs.stderr == "oops\n")

        let info = try kernel.agent(id)
        #expect(info["name"] as? String == "greeter")
        #expect(info["program"] as? String == "/bin/sh")
        #expect((info["env"] as? [String: String]) == ["WHO": "world"])
        let kinds = (info["history"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
        #expect(kinds == ["agent.spawned", "agent.exited"])
    }

    @Test func exitStatusesAndSignalsAreReportedRight() throws {
        let clean = try kernel.run(["--", "/bin/true"])
        #expect(try kernel.ctl(["wait", clean]).status == 0)
        #expect(try kernel.agent(clean)["state"] as? String == "completed")

        let crashed = try kernel.run(["--", "/bin/sh", "-c", "kill -SEGV $$"])
        #expect(try kernel.ctl(["wait", crashed]).status == 128 + 11)
        let info = try kernel.agent(crashed)
        #expect(info["state"] as? String == "failed")
        let exit = try #require(info["exit"] as? [String: Any])
        #expect(exit["signal"] as? Int == 11)
        #expect(exit["signal_name"] as? String == "SIGSEGV")
        #expect(exit["reason"] as? String == "signaled")
    }

    /// run --wait: one call that answers at the agent's end, its exit code
    /// agentctl's own.
    @Test func runWithWaitEndsWithTheAgent() throws {
        let failed = try kernel.ctl(["run", "--wait", "--", "/bin/sh", "-c", "exit 3"])
        #expect(failed.status == 3)
        #expect(failed.stdout.hasSuffix(": exit 3\n"), "\(failed.stdout)")
        let json = try kernel.ctl(["run", "--wait", "--json", "--name", "waited", "--", "/bin/sh", "-c", "sleep 0.2"])
        #expect(json.status == 0, "\(json.stderr)")
        let info = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(info["state"] as? String == "completed")
        #expect((info["exit"] as? [String: Any])?["code"] as? Int == 0)
        #expect(try kernel.agent("waited")["state"] as? String == "completed")
    }

    /// A run with wait, cancelled while it waits: the call ends
    /// "cancelled", and the agent runs on. (A cancel is read only once its
    /// request is in flight: the test waits until the agent runs.)
    @Test func aCancelledRunWithWaitLeavesTheAgentRunning() throws {
        let raw = try RawConnection(socketPath: kernel.socketPath)
        try raw.send(.hello(client: "raw"))
        guard case .welcome? = raw.readFrame()?.body else {
            Issue.record("no welcome")
            return
        }
        var run = Agentos_V1_RunRequest()
        run.argv = ["/bin/sleep", "600"]
        run.name = "waited-on"
        run.wait = true
        try raw.send(.request(id: 1, .run(run)))
        #expect(eventually { (try? kernel.agent("waited-on"))?["state"] as? String == "running" })
        var cancel = Envelope()
        cancel.cancel.requestID = 1
        try raw.send(cancel)
        let end = raw.readFrame()
        #expect(end?.correlationID == 1)
        #expect(end?.streamEnd.reason == "cancelled", "\(String(describing: end))")
        #expect(try kernel.agent("waited-on")["state"] as? String == "running")
        _ = try kernel.ctl(["kill", "waited-on"])
    }

    /// A wait is answered from the thread that ends the agent; whatever its
    /// client asks next must find the end written and counted, also where
    /// the answer does not pass the Lifecycle actor (status's counts, the
    /// event log read straight from the store). The calls go on the same
    /// connection the moment the answer is read, many times over.
    @Test func whatFollowsAWaitsAnswerFindsTheEndWritten() throws {
        let raw = try RawConnection(socketPath: kernel.socketPath)
        try raw.send(.hello(client: "raw"))
        guard case .welcome? = raw.readFrame()?.body else {
            Issue.record("no welcome")
            return
        }
        for round in 0..<25 {
            let id = UInt64(round * 4 + 1)
            var run = Agentos_V1_RunRequest()
            run.argv = ["/bin/sh", "-c", "exit 5"]
            run.wait = true
            try raw.send(.request(id: id, .run(run)))
            let answer = raw.readFrame()
            guard case .run(let ran)? = answer?.response.result else {
                Issue.record("no run answer: \(String(describing: answer))")
                return
            }
            #expect(ran.agent.exit.code == 5)
            try raw.send(.request(id: id + 1, .status(Agentos_V1_StatusRequest())))
            guard case .status(let status)? = raw.readFrame()?.response.result else {
                Issue.record("no status answer")
                return
            }
            #expect(status.agents.running == 0, "round \(round)")
            try raw.send(.request(id: id + 2, .events(.with { $0.limit = 10 })))
            var kinds: [String] = []
            while let frame = raw.readFrame(), frame.correlationID == id + 2 {
                if case .streamEnd? = frame.body { break }
                if case .event(let event)? = frame.chunk.item, event.agentID == ran.agent.id { kinds.append(event.kind) }
            }
            #expect(kinds.contains("agent.exited"), "round \(round): \(kinds)")
            try raw.send(.request(id: id + 3, .inspect(.with { $0.agent = ran.agent.id })))
            guard case .inspect(let info)? = raw.readFrame()?.response.result else {
                Issue.record("no inspect answer")
                return
            }
            #expect(info.state == .failed, "round \(round): \(info.state)")
            #expect(info.exit.code == 5)
            #expect(info.history.map(\.kind) == ["agent.spawned", "agent.exited"], "round \(round)")
        }
    }

    @Test func stopSendsTermThenKillsAfterTheGrace() throws {
        // Polite: exits on SIGTERM.
        let polite = try kernel.run(["--name", "polite", "--", "/bin/sleep", "60"])
        let stopped = try kernel.ctl(["stop", polite, "--json"])
        #expect(stopped.status == 0)
        let politeInfo = try kernel.agent(polite)
        #expect(politeInfo["state"] as? String == "completed")
        #expect((politeInfo["exit"] as? [String: Any])?["signal_name"] as? String == "SIGTERM")
        #expect((politeInfo["exit"] as? [String: Any])?["reason"] as? String == "stopped")

        // Stubborn: ignores SIGTERM, so SIGKILL comes after the grace.
        let stubborn = try kernel.run(["--name", "stubborn", "--", "/bin/sh", "-c", "trap '' TERM; echo ready; sleep 60"])
        #expect(eventually { (try? kernel.ctl(["logs", stubborn]).stdout) == "ready\n" })
        let started = Date()
        #expect(try kernel.ctl(["stop", stubborn, "--timeout", "400ms"]).status == 0)
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 0.4)
        #expect(elapsed < 5)
        let info = try kernel.agent(stubborn)
        #expect((info["exit"] as? [String: Any])?["signal_name"] as? String == "SIGKILL")
        #expect((info["exit"] as? [String: Any])?["reason"] as? String == "stopped")
        let kinds = (info["history"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
        #expect(kinds == ["agent.spawned", "agent.stopping", "agent.escalated", "agent.exited"])
        #expect(try kernel.ctl(["logs", stubborn]).stderr.contains("SIGKILL"))

        // Stopping an agent that already ended is not an error.
        #expect(try kernel.ctl(["stop", polite]).status == 0)
    }

    @Test func killIsImmediateAndReachesEveryProcessOfTheAgent() throws {
        let id = try kernel.run(["--", "/bin/sh", "-c", "sleep 61.1 & echo started; wait"])
        let pid = try waitForHostPid(["sleep", "61.1"])
        let started = Date()
        let result = try kernel.ctl(["kill", id])
        #expect(result.status == 0)
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(result.stdout.contains("SIGKILL (killed)"))
        #expect(eventually(timeout: 5) { !processExists(pid) })
    }

    @Test func logsFollowUntilTheAgentExits() throws {
        let id = try kernel.run(["--", "/bin/sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.2; done"])
        let follow = try kernel.ctl(["logs", "-f", id])
        #expect(follow.status == 0)
        #expect(follow.stdout == "line 1\nline 2\nline 3\n")
        let json = try kernel.ctl(["logs", id, "--json", "--tail", "1"])
        let last = try #require(json.lines.last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        #expect(object["data"] as? String == "line 3\n")
        #expect(object["stream"] as? String == "stdout")
    }

    @Test func eventsStreamAsTheyHappen() throws {
        let follower = Process()
        follower.executableURL = URL(fileURLWithPath: Binaries.agentctl)
        follower.arguments = ["events", "-f", "--json", "--socket", kernel.socketPath]
        let pipe = Pipe()
        follower.standardOutput = pipe
        try follower.run()
        defer {
            kill(follower.processIdentifier, SIGKILL)
            follower.waitUntilExit()
        }
        Thread.sleep(forTimeInterval: 0.3)
        let id = try kernel.run(["--", "/bin/sh", "-c", "exit 2"])
        var text = ""
        let found = eventually {
            let available = pipe.fileHandleForReading.availableData
            text += String(decoding: available, as: UTF8.self)
            return text.contains("\"agent.exited\"")
        }
        #expect(found)
        let events = text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let mine = events.filter { $0["agent_id"] as? String == id }.compactMap { $0["kind"] as? String }
        #expect(mine == ["agent.spawned", "agent.exited"])
        let seqs = events.compactMap { $0["seq"] as? Int }
        #expect(seqs == seqs.sorted())

        // --since replays history before following; without -f it ends.
        let history = try kernel.ctl(["events", "--since", "0", "--agent", id, "--json"])
        #expect(history.lines.count == 2)
    }

    @Test func anAgentThatSpeaksTheProtocolLearnsItsIdentity() throws {
        let id = try kernel.run(["--name", "speaker"] + Binaries.demoAgentSandboxFlags + ["--", Binaries.demoAgent, "2", "0.05"])
        #expect(try kernel.ctl(["wait", id]).status == 0)
        let logs = try kernel.ctl(["logs", id]).stdout
        #expect(logs.contains("hello from speaker (\(id))"))
        #expect(logs.contains("kernel pid \(kernel.pid)"))
        #expect(logs.contains("done"))
        let info = try kernel.agent(id)
        let kinds = (info["history"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
        #expect(kinds == ["agent.spawned", "agent.connected", "agent.exited"])
    }

    @Test func aProgramThatNeverSpeaksStillRuns() throws {
        let id = try kernel.run(["--", "/bin/sh", "-c", "echo $AGENTOS_FD $AGENTOS_AGENT_ID; ls /proc/self/fd | wc -l"])
        #expect(try kernel.ctl(["wait", id]).status == 0)
        let output = try kernel.ctl(["logs", id]).stdout.split(separator: "\n")
        #expect(output.first == "3 \(id)")
        // 0, 1, 2, the socket, and ls's own directory handle.
        #expect(output.last?.trimmingCharacters(in: .whitespaces) == "5")
    }

    @Test func badRequestsAreOneLineErrorsWithANonZeroExit() throws {
        let cases: [([String], String)] = [
            (["inspect", "no-such-agent"], "no agent with id or name 'no-such-agent'"),
            (["stop", "no-such-agent"], "no agent"),
            (["run", "--", "/no/such/program"], "does not exist"),
            (["run", "--", "no-such-program-in-path"], "not found in PATH"),
            (["run", "--", "/etc/passwd"], "not executable"),
            (["run", "--name", "bad name", "--", "/bin/true"], "invalid agent name"),
            (["run", "--workdir", "/no/such/dir", "--", "/bin/true"], "work dir"),
        ]
        for (arguments, expected) in cases {
            let result = try kernel.ctl(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
        // A name in use by a live agent.
        let holder = try kernel.run(["--name", "taken", "--", "/bin/sleep", "30"])
        let clash = try kernel.ctl(["run", "--name", "taken", "--", "/bin/true"])
        #expect(clash.status == 1)
        #expect(clash.stderr.contains("in use by live agent \(holder)"))
        try kernel.ctl(["kill", holder])
        // Once it has ended the name is free again.
        #expect(try kernel.ctl(["run", "--name", "taken", "--", "/bin/true"]).status == 0)
        // Nothing failed at validation was recorded as an agent.
        let all = try #require(try kernel.json(["ps", "-a"]) as? [[String: Any]])
        #expect(all.count == 2)
    }

    @Test func anUnreachableKernelIsAClearError() throws {
        let result = try runProgram(Binaries.agentctl, ["status", "--socket", "/tmp/aos-nothing-here/kernel.sock"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot connect to the kernel at /tmp/aos-nothing-here/kernel.sock"))
        #expect(result.stderr.contains("is agentd running?"))
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func statusReportsTheKernel() throws {
        _ = try kernel.run(["--", "/bin/sleep", "30"])
        let status = try #require(try kernel.json(["status"]) as? [String: Any])
        #expect(status["pid"] as? Int == Int(kernel.pid))
        #expect(status["socket"] as? String == kernel.socketPath)
        #expect(status["state_dir"] as? String == kernel.stateDirectory)
        #expect((status["agents"] as? [String: Any])?["running"] as? Int == 1)
        #expect(status["protocol_version"] as? Int == Int(AgentOSVersion.protocolVersion))
    }

    @Test func outputBeyondTheCapRotatesInsteadOfFillingTheDisk() throws {
        let small = try KernelProcess(label: "logcap", arguments: ["--log-max-size", "64K"])
        defer { small.stop() }
        let id = try small.run(["--", "/bin/sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x"])
        #expect(try small.ctl(["wait", id]).status == 0)
        let path = try #require(try small.agent(id)["log_path"] as? String)
        let sizes = [path, path + ".1"].map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0 }
        #expect(sizes.allSatisfy { $0 > 0 && $0 <= 64 * 1024 })
        #expect(try small.ctl(["logs", id]).stderr.contains("log rotated"))
    }
}
