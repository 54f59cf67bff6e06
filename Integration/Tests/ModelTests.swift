import AgentOSClient
import AgentOSProtocol
import Foundation
import ModelProviderFake
import Testing

/// The model gateway through the real binaries, against the fake provider
/// (an HTTP server in this process answering as each provider's API documents).
@Suite("Model gateway", .serialized)
struct ModelTests {
    static let key = "sk-test-\(UInt64.random(in: 1_000_000...UInt64.max))"
    static let pythonSDK = FileManager.default.fileExists(atPath: "/opt/agentos/python/agentkit/__init__.py")

    /// A kernel whose config names the fake under every provider kind, with
    /// its key in a 0600 secrets file.
    static func kernel(_ label: String, fake: FakeModelProvider, extra: String = "") throws -> KernelProcess {
        let directory = try temporaryDirectory(label)
        let secrets = directory + "/secrets.env"
        try "# provider keys\nFAKE_KEY=\(key)\n".write(toFile: secrets, atomically: true, encoding: .utf8)
        chmod(secrets, 0o600)
        let config = directory + "/agentd.yaml"
        try """
            version: 1
            models:
              secrets_file: \(secrets)
              providers:
                anth:
                  kind: anthropic
                  base_url: \(fake.baseURL)
                  key: FAKE_KEY
                  retries: 2
                  models:
                    echo: {input: 3, output: 15}
                    script: {}
                    rate-limit-1: {}
                    overloaded-9: {}
                    too-long: {}
                    garbage: {}
                    cut: {}
                    slow-30000: {}
                    nope: {}
                oai:
                  kind: openai
                  base_url: \(fake.baseURL)
                  key: FAKE_KEY
                  retries: 1
                olla:
                  kind: ollama
                  base_url: \(fake.baseURL)
                local:
                  kind: openai-compatible
                  base_url: \(fake.baseURL)
                  key: FAKE_KEY
                  concurrency: 1
                keyless:
                  kind: anthropic
                  base_url: \(fake.baseURL)
                  key: NOT_SET_ANYWHERE
            \(extra)
            """.write(toFile: config, atomically: true, encoding: .utf8)
        return try KernelProcess(label: label, arguments: ["--config", config], directory: directory)
    }

    static func complete(_ kernel: KernelProcess, _ arguments: [String]) throws -> (CommandResult, [String: Any]?) {
        let result = try kernel.ctl(["complete"] + arguments + ["--json"])
        let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return (result, object)
    }

    @Test func everyProviderKindAnswersThroughTheGateway() async throws {
        let fake = try await FakeModelProvider.start(apiKey: Self.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try Self.kernel("models", fake: fake)
        defer { kernel.stop() }
        for model in ["anth:echo", "oai:echo", "olla:echo", "local:echo"] {
            let (result, answer) = try Self.complete(kernel, [model, "hello there"])
            #expect(result.status == 0, "\(model): \(result.stderr) \(result.stdout)")
            #expect(answer?["content"] as? String == "echo: hello there", "\(model)")
            #expect((answer?["input_tokens"] as? Int ?? 0) > 0, "\(model)")
            #expect(answer?["output_tokens"] as? Int == 3, "\(model)")
            #expect(answer?["stop_reason"] as? String == "end_turn", "\(model)")
        }
        // The price table: 3 and 15 USD per million tokens.
        let (_, priced) = try Self.complete(kernel, ["anth:echo", "price me"])
        let input = priced?["input_tokens"] as? Int ?? 0
        #expect(priced?["cost_microdollars"] as? Int == input * 3 + 3 * 15)
        // The key went to the provider in its own header, and only there.
        let anthropic = fake.requests().filter { $0.path == "/v1/messages" }
        #expect(anthropic.allSatisfy { request in request.headers.contains { $0.0.lowercased() == "x-api-key" && $0.1 == Self.key } })
        let openai = fake.requests().filter { $0.path == "/v1/chat/completions" }
        #expect(openai.contains { request in request.headers.contains { $0.0.lowercased() == "authorization" && $0.1 == "Bearer \(Self.key)" } })

        // Streamed: the text arrives in pieces, the whole answer last.
        let streamed = try kernel.ctl(["complete", "anth:echo", "--stream", "one two three four"])
        #expect(streamed.status == 0, "\(streamed.stderr)")
        #expect(streamed.stdout == "echo: one two three four\n")
        let openaiStream = try kernel.ctl(["complete", "oai:echo", "--stream", "five six"])
        #expect(openaiStream.stdout == "echo: five six\n", "\(openaiStream.stderr)")
        let ollamaStream = try kernel.ctl(["complete", "olla:echo", "--stream", "seven"])
        #expect(ollamaStream.stdout == "echo: seven\n", "\(ollamaStream.stderr)")

        // agentctl models shows where keys come from, never a key.
        let models = try kernel.ctl(["models", "--json"])
        #expect(models.stdout.contains("\"key_present\" : true"))
        #expect(!models.stdout.contains(Self.key))
    }

    @Test func providerFailuresAreRetriedOrReportedClearly() async throws {
        let fake = try await FakeModelProvider.start(apiKey: Self.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try Self.kernel("modelerrors", fake: fake)
        defer { kernel.stop() }
        // A 429 with retry-after: 1 is waited out and retried.
        let (limited, answer) = try Self.complete(kernel, ["anth:rate-limit-1", "again"])
        #expect(limited.status == 0, "\(limited.stderr)")
        #expect(answer?["attempts"] as? Int == 2)
        #expect((answer?["duration_ms"] as? Int ?? 0) >= 900)
        // Overloaded beyond the retries: a clear error, after 3 attempts.
        let overloaded = try kernel.ctl(["complete", "anth:overloaded-9", "x"])
        #expect(overloaded.status != 0)
        #expect(overloaded.stderr.contains("Overloaded") && overloaded.stderr.contains("after 3 attempts"), "\(overloaded.stderr)")
        let failures: [(String, String)] = [
            ("anth:too-long", "prompt is too long"),
            ("anth:garbage", "not JSON"),
            ("anth:cut", "cut short"),
            ("anth:nope", "model: nope"),
            ("anth:unlisted", "lists no model 'unlisted'"),
            ("nowhere:echo", "no provider 'nowhere'"),
            ("keyless:echo", "NOT_SET_ANYWHERE"),
            ("gpt-4", "not PROVIDER:MODEL"),
        ]
        for (model, words) in failures {
            let result = try kernel.ctl(["complete", model, "hi"])
            #expect(result.status != 0, "\(model)")
            #expect(result.stderr.contains(words), "\(model): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(model): one line: \(result.stderr)")
        }
        let streamCut = try kernel.ctl(["complete", "oai:cut", "--stream", "hi"])
        #expect(streamCut.status != 0 && streamCut.stderr.contains("cut short"), "\(streamCut.stderr)")
        // The `local` provider takes one call at a time: a second call waits
        // for the slot no longer than its own timeout.
        let slow = Process()
        slow.executableURL = URL(fileURLWithPath: Binaries.agentctl)
        slow.arguments = ["complete", "local:slow-30000", "hold the slot"]
        slow.environment = ["AGENTOS_SOCKET": kernel.socketPath]
        slow.standardOutput = FileHandle.nullDevice
        slow.standardError = FileHandle.nullDevice
        try slow.run()
        defer { if slow.isRunning { slow.terminate() } }
        #expect(eventually(timeout: 10) { fake.requests().contains { String(decoding: $0.body, as: UTF8.self).contains("slow-30000") } })
        let started = Date()
        let waited = try kernel.ctl(["complete", "local:echo", "--timeout", "1s", "queued"])
        #expect(waited.status != 0 && waited.stderr.contains("no slot within the call's time"), "\(waited.stderr)")
        #expect(Date().timeIntervalSince(started) < 5)
        // Each failure is an event with its reason; the kernel lives on.
        let events = try kernel.ctl(["events", "--json", "--limit", "200"]).stdout
        #expect(events.contains("context_too_long") && events.contains("bad_response"))
        #expect(try kernel.ctl(["complete", "anth:echo", "still here"]).stdout == "echo: still here\n")
    }

    /// An agent needs capability://model/...; its tokens count against the
    /// grant's allowance; a denial is in the audit chain; and after the run
    /// nothing the state dir holds contains the key.
    @Test(.enabled(if: pythonSDK, "the Python SDK is not installed: run Integration/install-examples.sh"))
    func agentsCallModelsUnderTheirCapabilitiesAndNeverSeeTheKey() async throws {
        let fake = try await FakeModelProvider.start(apiKey: Self.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try Self.kernel("modelagents", fake: fake)
        defer { kernel.stop() }
        let script = """
            import agentkit, json, os
            a = agentkit.connect()
            print("env-has-key", any("sk-test-" in v for v in os.environ.values()), flush=True)
            for i in range(3):
                try:
                    c = a.complete("anth:echo", ["count me please"], max_tokens=50)
                    print("ok", c.content, c.input_tokens, c.output_tokens, flush=True)
                except agentkit.AgentOSError as e:
                    print("refused", e.name, e.message, flush=True)
            try:
                a.complete("oai:echo", ["other provider"])
            except agentkit.PermissionDenied as e:
                print("denied", e.message, flush=True)
            import time; time.sleep(600)
            """
        let id = try kernel.run(["--name", "thinker", "--ro", "/opt/agentos", "--env", "PYTHONPATH=/opt/agentos/python",
                                 "--cap", "capability://model/anth:*?action=complete&tokens=14",
                                 "--", "/usr/bin/python3", "-c", script])
        #expect(eventually(timeout: 20) { ((try? kernel.ctl(["logs", id]).stdout) ?? "").contains("denied") },
                "\((try? kernel.ctl(["logs", id]))?.stdout ?? "")")
        let log = try kernel.ctl(["logs", id]).stdout
        #expect(log.contains("env-has-key False"))
        // "count me please" costs 3 words in and 4 out: two calls spend the 14 tokens, the third is refused.
        #expect(log.components(separatedBy: "ok echo: count me please").count - 1 == 2, "\(log)")
        #expect(log.contains("refused PERMISSION_DENIED") && log.contains("spent all 14 of its model tokens"), "\(log)")
        #expect(log.contains("denied calling oai:echo needs capability://model/oai:echo"), "\(log)")
        let grants = try kernel.ctl(["cap", "ls", "thinker", "--json"]).stdout
        #expect(grants.contains("\"remaining_tokens\" : 0"), "\(grants)")
        let audit = try kernel.ctl(["audit", "--agent", id, "--json"]).stdout
        #expect(audit.contains("model/anth:echo") && audit.contains("capability.allowed"))
        let events = try kernel.ctl(["events", "--json", "--agent", id]).stdout
        #expect(events.contains("model.completed") && events.contains("capability.denied"))

        // Nothing the kernel wrote holds the key: database, WAL, logs, events.
        kernel.stop()
        let grep = try runProgram("/bin/grep", ["-r", "-l", "-a", "-F", Self.key, kernel.stateDirectory])
        #expect(grep.stdout.isEmpty, "the key is in: \(grep.stdout)")
        #expect(!kernel.kernelLog.contains(Self.key))
    }

    /// An agent that dies in the middle of a call: the kernel cancels it at
    /// the provider, and the provider's one slot is free at once.
    @Test(.enabled(if: pythonSDK, "the Python SDK is not installed: run Integration/install-examples.sh"))
    func aCallDiesWithItsAgent() async throws {
        let fake = try await FakeModelProvider.start(apiKey: Self.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try Self.kernel("modelcancel", fake: fake)
        defer { kernel.stop() }
        let script = "import agentkit; a = agentkit.connect(); print('calling', flush=True); a.complete('local:slow-30000', ['hold'])"
        let id = try kernel.run(["--name", "doomed", "--ro", "/opt/agentos", "--env", "PYTHONPATH=/opt/agentos/python",
                                 "--cap", "capability://model/local:*?action=complete", "--", "/usr/bin/python3", "-c", script])
        #expect(eventually(timeout: 10) { fake.requests().contains { String(decoding: $0.body, as: UTF8.self).contains("slow-30000") } })
        #expect(try kernel.ctl(["kill", id]).status == 0)
        // `local` takes one call at a time: this one gets the slot the dead agent's call held.
        let started = Date()
        let next = try kernel.ctl(["complete", "local:echo", "--timeout", "10s", "after it"])
        #expect(next.status == 0 && next.stdout == "echo: after it\n", "\(next.stderr)")
        #expect(Date().timeIntervalSince(started) < 5)
    }

    /// The kernel refuses a secrets file others could read, and says why.
    @Test func aSecretsFileOthersCanReadIsRefused() throws {
        let directory = try temporaryDirectory("modelsecrets")
        let secrets = directory + "/secrets.env"
        try "FAKE_KEY=\(Self.key)\n".write(toFile: secrets, atomically: true, encoding: .utf8)
        chmod(secrets, 0o644)
        let result = try runProgram(Binaries.agentd, ["--state-dir", directory + "/state", "--socket", directory + "/k.sock",
                                                      "--secrets", secrets])
        #expect(result.status != 0)
        #expect(result.stderr.contains("mode 644") && result.stderr.contains("chmod 600"), "\(result.stderr)")
        #expect(!result.stderr.contains(Self.key))
        // A config with a mistake: file:line:col and the field.
        let config = directory + "/bad.yaml"
        try "version: 1\nmodels:\n  providers:\n    local:\n      kind: openai-compatible\n      concurency: 2\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let bad = try runProgram(Binaries.agentd, ["--state-dir", directory + "/state", "--config", config])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("bad.yaml:6:7: models.providers.local.concurency: unknown key 'concurency'"), "\(bad.stderr)")
        #expect(bad.stderr.contains("base_url"), "\(bad.stderr)")
    }
}
