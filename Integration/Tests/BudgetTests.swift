import Foundation
import ModelProviderFake
import Testing

/// Model budgets through the real binaries: an agent's own (by its name)
/// and a policy's, which its workers' calls count against; spending shown
/// by agentctl stats.
@Suite("Model budgets", .serialized)
struct BudgetTests {
    static let script = """
        import agentkit, time
        a = agentkit.connect()
        for i in range(3):
            try:
                c = a.complete("anth:echo", ["count me please"])
                print("ok", c.input_tokens + c.output_tokens, flush=True)
            except agentkit.ResourceExhausted as e:
                print("exhausted", e.detail.get("reason"), e.detail.get("account"), e.message, flush=True)
        time.sleep(600)
        """

    @Test(.enabled(if: ModelTests.pythonSDK, "the Python SDK is not installed: run Integration/install-examples.sh"))
    func anAgentsOwnBudget() async throws {
        let fake = try await FakeModelProvider.start(apiKey: ModelTests.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try ModelTests.kernel("budgetagent", fake: fake)
        defer { kernel.stop() }
        let id = try kernel.run(["--name", "frugal", "--ro", "/opt/agentos", "--env", "PYTHONPATH=/opt/agentos/python",
                                 "--cap", "capability://model/anth:*?action=complete", "--budget-tokens", "10",
                                 "--", "/usr/bin/python3", "-c", Self.script])
        #expect(eventually(timeout: 20) { ((try? kernel.ctl(["logs", id]).stdout) ?? "").contains("exhausted") })
        let log = try kernel.ctl(["logs", id]).stdout
        // 7 tokens a call: the second starts with 3 left (and is charged in full), the third is refused.
        #expect(log.components(separatedBy: "ok ").count - 1 == 2, "\(log)")
        #expect(log.contains("exhausted budget frugal frugal: its 10-token model budget is spent (14 used)"), "\(log)")
        let stats = try kernel.ctl(["stats", "frugal", "--json"]).stdout
        #expect(stats.contains("\"account\" : \"frugal\"") && stats.contains("\"budget_tokens\" : 10"), "\(stats)")
        #expect(stats.contains("\"calls\" : 2"), "\(stats)")
        #expect(try kernel.ctl(["stats", "frugal"]).stdout.contains("frugal: 14/10 tokens"))
        let events = try kernel.ctl(["events", "--json", "--agent", id]).stdout
        #expect(events.contains("model.refused"))
        let unnamed = try kernel.ctl(["run", "--budget-tokens", "5", "--", "/bin/true"])
        #expect(unnamed.status != 0 && unnamed.stderr.contains("--name"), "\(unnamed.stderr)")
    }

    @Test(.enabled(if: ModelTests.pythonSDK, "the Python SDK is not installed: run Integration/install-examples.sh"))
    func aPolicysBudgetCoversEveryWorkerUnderIt() async throws {
        let fake = try await FakeModelProvider.start(apiKey: ModelTests.key)
        defer { Task { try? await fake.shutdown() } }
        let kernel = try ModelTests.kernel("budgetpolicy", fake: fake)
        defer { kernel.stop() }
        let program = kernel.directory + "/spender.py"
        try Self.script.write(toFile: program, atomically: true, encoding: .utf8)
        chmod(kernel.directory, 0o755)
        chmod(program, 0o644)
        let policy = kernel.directory + "/thrifty.yaml"
        try """
            version: 1
            name: thrifty
            supervisor:
              budget: {tokens: 12}
              children:
                - id: spender
                  program: /usr/bin/python3
                  args: [\(program)]
                  env: {PYTHONPATH: /opt/agentos/python}
                  sandbox: {ro: [/opt/agentos, \(program)]}
                  capabilities: [capability://model/anth:*?action=complete]
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        let applied = try kernel.ctl(["apply", policy])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(eventually(timeout: 20) { ((try? kernel.ctl(["logs", "thrifty.spender"]).stdout) ?? "").contains("exhausted") },
                "\((try? kernel.ctl(["logs", "thrifty.spender"]))?.stdout ?? "")")
        let spent = try kernel.ctl(["logs", "thrifty.spender"]).stdout
        #expect(spent.contains("exhausted budget thrifty thrifty: its 12-token model budget is spent (14 used)"), "\(spent)")
        let stats = try kernel.ctl(["stats", "thrifty.spender"]).stdout
        #expect(stats.contains("thrifty/spender: 14 tokens") && stats.contains("thrifty: 14/12 tokens"), "\(stats)")
        // Nonsense budgets are refused at their line.
        let bad = kernel.directory + "/bad.yaml"
        try "version: 1\nname: bad\nsupervisor:\n  budget: {tokens: -5, cost: 0}\n  children: []\n"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try kernel.ctl(["apply", bad])
        #expect(refused.status != 0 && refused.stderr.contains("bad.yaml:4:20: supervisor.budget.tokens: must be at least 1"),
                "\(refused.stderr)")
    }
}
