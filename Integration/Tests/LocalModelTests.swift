import Foundation
import Testing

/// A real small model (SmolLM2-135M-Instruct under llama-cpp-python's
/// OpenAI-compatible server) through the kernel's gateway and the built-in
/// agent. The model is weak and not deterministic: these tests check the
/// mechanics (an answer arrives, whole or streamed, a forced tool call
/// comes back as a tool call, tokens are counted), never the wording.
/// Run by test.sh as its own step once Integration/setup-local-model.sh
/// has installed the server (AGENTOS_LOCAL_MODEL=1).
@Suite("A real local model", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["AGENTOS_LOCAL_MODEL"] == "1",
                "set AGENTOS_LOCAL_MODEL=1 after Integration/setup-local-model.sh"))
struct LocalModelTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The server on a free port, answering.
    final class Server {
        let process = Process()
        let port = Int.random(in: 20_000...29_000)

        init() throws {
            process.executableURL = URL(fileURLWithPath: LocalModelTests.repository + "/Integration/local-model.sh")
            process.arguments = [String(port)]
            let log = FileHandle(forWritingAtPath: "/dev/null")
            process.standardOutput = log
            process.standardError = log
            try process.run()
            let up = eventually(timeout: 60) {
                (try? runProgram("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/v1/models"]))?.status == 0
            }
            guard up else { throw HarnessError("the llama-cpp-python server did not answer on port \(port)") }
        }

        /// SIGTERM, then SIGKILL: uvicorn waits for idle keep-alive connections on SIGTERM.
        func stop() {
            guard process.isRunning else { return }
            process.terminate()
            if !eventually(timeout: 5, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }

        deinit { stop() }
    }

    static func kernel(_ label: String, server: Server) throws -> KernelProcess {
        let directory = try temporaryDirectory(label)
        let config = directory + "/agentd.yaml"
        try """
            version: 1
            models:
              providers:
                local:
                  kind: openai-compatible
                  base_url: http://127.0.0.1:\(server.port)
                  concurrency: 1
                  timeout: 2m
            """.write(toFile: config, atomically: true, encoding: .utf8)
        return try KernelProcess(label: label, arguments: ["--config", config], directory: directory)
    }

    @Test func completionsWholeAndStreamedWithTokensCounted() throws {
        let server = try Server()
        defer { server.stop() }   // after the kernel's stop (defers run last first)
        let kernel = try Self.kernel("localmodel", server: server)
        defer { kernel.stop() }
        let whole = try kernel.ctl(["complete", "local:smollm2", "--max-tokens", "24", "--json", "Say hello to the operator."])
        #expect(whole.status == 0, "\(whole.stderr)")
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(whole.stdout.utf8)) as? [String: Any])
        #expect(!(answer["content"] as? String ?? "").isEmpty)
        #expect((answer["input_tokens"] as? Int ?? 0) > 0 && (answer["output_tokens"] as? Int ?? 0) > 0)
        #expect(answer["model"] as? String == "local:smollm2")
        let streamed = try kernel.ctl(["complete", "local:smollm2", "--stream", "--max-tokens", "24", "Count to five."])
        #expect(streamed.status == 0, "\(streamed.stderr)")
        #expect(!streamed.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        // The server sends no counts in a stream: the kernel estimates them (and says so).
        let events = try kernel.ctl(["events", "--json", "--limit", "50"]).stdout
        #expect(events.contains("\"usage\":\"estimated\""), "\(events.suffix(1_500))")
    }

    @Test(.enabled(if: ModelTests.pythonSDK, "the Python SDK is not installed: run Integration/install-examples.sh"))
    func aForcedToolCallComesBackAsAToolCallAndCountsAgainstTheBudget() throws {
        let server = try Server()
        defer { server.stop() }   // after the kernel's stop (defers run last first)
        let kernel = try Self.kernel("localtools", server: server)
        defer { kernel.stop() }
        let script = """
            import agentkit, json
            a = agentkit.connect()
            tool = {"name": "file.read", "description": "Read a file", "parameters": {"type": "object",
                    "properties": {"path": {"type": "string"}}, "required": ["path"]}}
            c = a.complete("local:smollm2", ["Read the file /etc/hostname"], tools=[tool], tool_choice="file.read", max_tokens=60)
            call = c.tool_calls[0]
            print("call", call.name, c.stop_reason, type(json.loads(call.arguments_json)).__name__ if call.arguments_json.startswith("{") else "raw", flush=True)
            import time; time.sleep(600)
            """
        let id = try kernel.run(["--name", "tooler", "--ro", "/opt/agentos", "--env", "PYTHONPATH=/opt/agentos/python",
                                 "--cap", "capability://model/local:smollm2?action=complete", "--budget-tokens", "100000",
                                 "--", "/usr/bin/python3", "-c", script])
        #expect(eventually(timeout: 120) { ((try? kernel.ctl(["logs", id]).stdout) ?? "").contains("call ") },
                "\((try? kernel.ctl(["logs", id]))?.stdout ?? "") \(kernel.kernelLog.suffix(1_000))")
        let log = try kernel.ctl(["logs", id]).stdout
        #expect(log.contains("call file.read tool_use"), "\(log)")
        let stats = try kernel.ctl(["stats", "tooler", "--json"]).stdout
        #expect(stats.contains("\"budget_tokens\" : 100000") && stats.contains("\"calls\" : 1"), "\(stats)")
    }

    @Test(.enabled(if: GoalTests.installed, "agentos-llm-agent is not installed: run Integration/install-examples.sh"))
    func aGoalThroughTheBuiltInAgentStreamsAndFinishes() throws {
        let server = try Server()
        defer { server.stop() }   // after the kernel's stop (defers run last first)
        let kernel = try Self.kernel("localgoal", server: server)
        defer { kernel.stop() }
        let policy = kernel.directory + "/local.yaml"
        try """
            version: 1
            name: local
            supervisor:
              children:
                - id: pool
                  supervisor:
                    strategy: dynamic
                    template:
                      id: thinker
                      restart: temporary
                      llm: {model: local:smollm2, max_steps: 2, max_tokens: 40, stream: true}
                      capabilities: [capability://model/local:*?action=complete]
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        #expect(try kernel.ctl(["apply", policy]).status == 0)
        let submitted = try kernel.ctl(["submit", "Name one colour.", "--policy", "local", "--wait", "--json"])
        #expect(submitted.status == 0, "\(submitted.stderr) \(submitted.stdout)")
        let goal = try #require(try JSONSerialization.jsonObject(with: Data(submitted.stdout.utf8)) as? [String: Any])
        #expect(goal["state"] as? String == "done")
        #expect(!(goal["result"] as? String ?? "").isEmpty)
        let logs = try kernel.ctl(["logs", goal["agent"] as? String ?? ""]).stdout
        #expect(logs.contains("model:"), "streamed pieces logged: \(logs)")
    }
}
