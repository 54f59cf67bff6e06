import AgentOSClient
import AgentOSProtocol
import Foundation
import ModelProviderFake
import Testing

/// Goals through the scheduler to the built-in LLM agent, confined, with
/// the fake provider's `script` model asking for tool calls.
@Suite("Goals and the built-in LLM agent", .serialized)
struct GoalTests {
    static let installed = FileManager.default.isExecutableFile(atPath: "/opt/agentos/bin/agentos-llm-agent")

    /// A policy with a dynamic pool of LLM agents; `capabilities` besides the model's.
    static func apply(_ kernel: KernelProcess, data: String, capabilities: [String], restart: String = "transient") throws {
        let caps = (["capability://model/anth:*?action=complete"] + capabilities).map { "              - \($0)" }
            .joined(separator: "\n")
        let policy = kernel.directory + "/research.yaml"
        try """
            version: 1
            name: research
            supervisor:
              strategy: one_for_one
              children:
                - id: thinkers
                  supervisor:
                    strategy: dynamic
                    template:
                      id: thinker
                      restart: \(restart)
                      llm:
                        model: anth:script
                        tools: [file.read, shell.*]
                        max_steps: 6
                      sandbox: {ro: [\(data)]}
                      capabilities:
            \(caps)
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        let applied = try kernel.ctl(["apply", policy])
        guard applied.status == 0 else { throw HarnessError("apply: \(applied.stderr)") }
    }

    static func script(_ calls: [(String, String)], answer: String) -> String {
        let list = calls.map { #"{"tool":"\#($0.0)","arguments":\#($0.1)}"# }.joined(separator: ",")
        return #"{"calls":[\#(list)],"answer":"\#(answer)"}"#
    }

    static func goal(_ kernel: KernelProcess, _ id: String) throws -> [String: Any] {
        let goals = try #require(try kernel.json(["queue", "--all"]) as? [[String: Any]])
        return try #require(goals.first { $0["id"] as? String == id })
    }

    @Test(.enabled(if: installed, "agentos-llm-agent is not installed: run Integration/install-examples.sh"))
    func aGoalNeedingTwoToolCallsReachesItsAnswer() async throws {
        let fake = try await FakeModelProvider.start(apiKey: ModelTests.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try ModelTests.kernel("goals", fake: fake)
        defer { kernel.stop() }
        let data = kernel.directory + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try "the launch is on tuesday".write(toFile: data + "/notes.txt", atomically: true, encoding: .utf8)
        chmod(kernel.directory, 0o755)
        chmod(data, 0o755)
        chmod(data + "/notes.txt", 0o644)
        try Self.apply(kernel, data: data, capabilities: ["capability://file\(data)/**?action=read",
                                                          "capability://shell/**?action=execute"])
        let text = Self.script([("file__read", #"{"path":"\#(data)/notes.txt"}"#),
                                ("shell__execute", #"{"command":"echo forty-two"}"#)], answer: "summary")
        let submitted = try kernel.ctl(["submit", text, "--template", "research/thinkers", "--wait"])
        #expect(submitted.status == 0, "\(submitted.stderr) \(submitted.stdout)")
        #expect(submitted.stdout.contains("summary"), "\(submitted.stdout)")
        #expect(submitted.stdout.contains("the launch is on tuesday"), "\(submitted.stdout)")
        #expect(submitted.stdout.contains("forty-two"), "\(submitted.stdout)")
        let goals = try #require(try kernel.json(["queue", "--all"]) as? [[String: Any]])
        #expect(goals.first?["state"] as? String == "done")
        #expect(goals.first?["attempts"] as? Int == 1)
        // Three model calls (two tool calls, then the answer), each counted.
        let events = try kernel.ctl(["events", "--json", "--limit", "500"]).stdout
        #expect(events.components(separatedBy: "\"model.completed\"").count - 1 == 3, "\(events.suffix(3_000))")
        #expect(events.contains("goal.done"))
    }

    @Test(.enabled(if: installed, "agentos-llm-agent is not installed: run Integration/install-examples.sh"))
    func aMissingCapabilityReachesTheModelAsADenialAndTheAudit() async throws {
        let fake = try await FakeModelProvider.start(apiKey: ModelTests.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try ModelTests.kernel("goaldeny", fake: fake)
        defer { kernel.stop() }
        let data = kernel.directory + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        chmod(kernel.directory, 0o755)
        // No shell capability.
        try Self.apply(kernel, data: data, capabilities: ["capability://file\(data)/**?action=read"])
        let text = Self.script([("shell__execute", #"{"command":"id"}"#)], answer: "tried")
        let submitted = try kernel.ctl(["submit", text, "--policy", "research", "--wait"])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        #expect(submitted.stdout.contains("tried"))
        #expect(submitted.stdout.contains("holds no shell capability"), "\(submitted.stdout)")
        let audit = try kernel.ctl(["audit", "--json"]).stdout
        #expect(audit.contains("tool.refused") && audit.contains("shell.execute"), "\(audit.suffix(2_000))")
    }

    /// A model asking for a tool it was not offered, or with arguments
    /// that fail the tool's schema, gets each as a tool error, not a crash.
    @Test(.enabled(if: installed, "agentos-llm-agent is not installed: run Integration/install-examples.sh"))
    func badToolCallsGoBackToTheModelAsErrors() async throws {
        let fake = try await FakeModelProvider.start(apiKey: ModelTests.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try ModelTests.kernel("goalbadtools", fake: fake)
        defer { kernel.stop() }
        let data = kernel.directory + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        chmod(kernel.directory, 0o755)
        try Self.apply(kernel, data: data, capabilities: ["capability://file\(data)/**?action=read"])
        let text = Self.script([("net__scan", #"{"host":"10.0.0.1"}"#), ("file__read", #"{"path":5}"#)], answer: "coped")
        let submitted = try kernel.ctl(["submit", text, "--policy", "research", "--wait"])
        #expect(submitted.status == 0, "\(submitted.stderr) \(submitted.stdout)")
        #expect(submitted.stdout.contains("coped"))
        #expect(submitted.stdout.contains("net__scan") || submitted.stdout.contains("net.scan"), "\(submitted.stdout)")
        #expect(submitted.stdout.lowercased().contains("path"), "the schema error names the argument: \(submitted.stdout)")
    }

    @Test(.enabled(if: installed, "agentos-llm-agent is not installed: run Integration/install-examples.sh"))
    func aKilledAgentResumesItsGoalFromItsCheckpoint() async throws {
        let fake = try await FakeModelProvider.start(apiKey: ModelTests.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try ModelTests.kernel("goalkill", fake: fake)
        defer { kernel.stop() }
        let data = kernel.directory + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try "first step's result".write(toFile: data + "/a.txt", atomically: true, encoding: .utf8)
        chmod(kernel.directory, 0o755)
        chmod(data, 0o755)
        chmod(data + "/a.txt", 0o644)
        try Self.apply(kernel, data: data, capabilities: ["capability://file\(data)/**?action=read",
                                                          "capability://shell/**?action=execute"])
        let text = Self.script([("file__read", #"{"path":"\#(data)/a.txt"}"#),
                                ("shell__execute", #"{"command":"sleep 4; echo slept"}"#)], answer: "resumed")
        let id = try kernel.ctl(["submit", text, "--template", "research/thinkers"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // Kill the agent while its second tool call runs.
        var agent = ""
        #expect(eventually(timeout: 20) {
            agent = ((try? Self.goal(kernel, id))?["agent"] as? String) ?? ""
            // Step 1 (the file read) is checkpointed; step 2's tool call sleeps 4 s.
            return !agent.isEmpty && ((try? kernel.ctl(["logs", agent]).stdout) ?? "").contains("step 1:")
        })
        #expect(try kernel.ctl(["kill", agent]).status == 0)
        #expect(eventually(timeout: 40) { ((try? Self.goal(kernel, id))?["state"] as? String) == "done" },
                "\((try? Self.goal(kernel, id)) ?? [:])")
        let goal = try Self.goal(kernel, id)
        #expect((goal["result"] as? String ?? "").contains("first step's result"))
        #expect((goal["result"] as? String ?? "").contains("slept"))
        // The file was read once: the restarted agent went on from its checkpoint.
        let reads = fake.requests().filter { String(decoding: $0.body, as: UTF8.self).contains("first step's result") }
        #expect(!reads.isEmpty)
        let events = try kernel.ctl(["events", "--json", "--limit", "1000"]).stdout
        #expect(events.components(separatedBy: "file.read").count - 1 >= 1)
        let logs = try kernel.ctl(["logs", goal["agent"] as? String ?? ""]).stdout
        #expect(logs.contains("resuming at step"), "\(logs)")
    }

    @Test func badGoalsAreRefusedClearly() throws {
        let kernel = try KernelProcess(label: "goalbad")
        defer { kernel.stop() }
        let missing = try kernel.ctl(["submit", "x", "--template", "nowhere/pool"])
        #expect(missing.status != 0 && missing.stderr.contains("no policy 'nowhere'"), "\(missing.stderr)")
        let neither = try kernel.ctl(["submit", "x"])
        #expect(neither.status != 0 && neither.stderr.contains("--template"), "\(neither.stderr)")
        let unknown = try kernel.ctl(["cancel", "feedbeef"])
        #expect(unknown.status != 0 && unknown.stderr.contains("no goal 'feedbeef'"), "\(unknown.stderr)")
    }
}

/// A goal running when the kernel stops is queued again at the next start
/// (not failed), and finished then.
@Suite("Goals across a kernel restart", .serialized)
struct GoalRestartTests {
    @Test(.enabled(if: GoalTests.installed, "agentos-llm-agent is not installed: run Integration/install-examples.sh"))
    func aRunningGoalSurvivesAKernelRestart() async throws {
        let fake = try await FakeModelProvider.start(apiKey: ModelTests.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try ModelTests.kernel("goalrestart", fake: fake)
        defer { kernel.stop() }
        let data = kernel.directory + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        chmod(kernel.directory, 0o755)
        try GoalTests.apply(kernel, data: data, capabilities: ["capability://shell/**?action=execute"])
        let text = GoalTests.script([("shell__execute", #"{"command":"sleep 3; echo waited"}"#)], answer: "after the restart")
        let id = try kernel.ctl(["submit", text, "--template", "research/thinkers"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(eventually(timeout: 20) { ((try? GoalTests.goal(kernel, id))?["agent"] as? String).map { !$0.isEmpty } ?? false })
        #expect(kernel.stop() == 0)
        try kernel.start()
        #expect(eventually(timeout: 60) { ((try? GoalTests.goal(kernel, id))?["state"] as? String) == "done" },
                "\((try? GoalTests.goal(kernel, id)) ?? [:])")
        let goal = try GoalTests.goal(kernel, id)
        #expect(goal["attempts"] as? Int == 2)
        #expect((goal["result"] as? String ?? "").contains("waited"))
        let events = try kernel.ctl(["events", "--json", "--limit", "500"]).stdout
        #expect(events.contains("the kernel stopped while it ran"))
    }
}

/// A goal handed to a running agent: into its mailbox; it reads the goal
/// and finishes it; the queue shows the result.
@Suite("Goals for a running agent", .serialized)
struct GoalAgentTests {
    @Test(.enabled(if: ModelTests.pythonSDK, "the Python SDK is not installed: run Integration/install-examples.sh"))
    func aGoalGoesToTheAgentsMailbox() throws {
        let kernel = try KernelProcess(label: "goalagent")
        defer { kernel.stop() }
        let script = """
            import agentkit, json
            a = agentkit.connect()
            for m in a.messages():
                if m.content_type == agentkit.GOAL_CONTENT_TYPE:
                    g = a.goal(m.json()["goal"])
                    a.finish_goal(g.id, g.text.upper())
                a.ack(m)
            """
        _ = try kernel.run(["--name", "helper", "--ro", "/opt/agentos", "--env", "PYTHONPATH=/opt/agentos/python",
                            "--", "/usr/bin/python3", "-c", script])
        let first = try kernel.ctl(["submit", "shout this", "--agent", "helper", "--wait"])
        #expect(first.status == 0 && first.stdout == "SHOUT THIS\n", "\(first.stderr) \(first.stdout)")
        let second = try kernel.ctl(["submit", "and this", "--agent", "helper", "--priority", "3", "--wait", "--json"])
        #expect(second.stdout.contains("\"result\" : \"AND THIS\"") && second.stdout.contains("\"target\" : \"agent:helper\""),
                "\(second.stdout)")
        // Another agent cannot read or end it.
        let nobody = try kernel.ctl(["submit", "x", "--agent", "nobody"])
        #expect(nobody.status != 0 && nobody.stderr.contains("nobody"), "\(nobody.stderr)")
        let both = try kernel.ctl(["submit", "x", "--agent", "helper", "--policy", "p"])
        #expect(both.status != 0 && both.stderr.contains("one of --template, --policy and --agent"))
    }
}
