import AgentOSModels
import AgentOSStore
import Foundation
import Logging
import Testing
@testable import AgentOSKernel

@Suite struct ModelBudgetsTests {
    private func budgets(in directory: String = NSTemporaryDirectory() + "budgets-\(UInt64.random(in: 0...UInt64.max))") throws -> ModelBudgets {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return ModelBudgets(store: try StateStore(directory: directory), logger: Logger(label: "test"))
    }

    /// A plain agent's budget is its own account's: a policy of the same
    /// name keeps its children's budgets, now and after a restart.
    @Test func aPlainAgentsBudgetLeavesAPolicysChildrenAlone() throws {
        let directory = NSTemporaryDirectory() + "budgets-\(UInt64.random(in: 0...UInt64.max))"
        let budgets = try budgets(in: directory)
        try budgets.setPolicy("team", ["worker": ModelBudget(tokens: 5)])
        try budgets.setAgent("team", ModelBudget(tokens: 50))
        try budgets.setAgent("other", ModelBudget(tokens: 7))
        try budgets.setAgent("other", ModelBudget())
        let restarted = try self.budgets(in: directory)
        for current in [budgets, restarted] {
            #expect(current.accounts(of: "team/worker").first { $0.name == "team/worker" }?.budget?.tokens == 5)
            #expect(current.accounts(of: "team").first { $0.name == "team" }?.budget?.tokens == 50)
            #expect(current.accounts(of: "other").first { $0.name == "other" }?.budget == nil)
        }
    }

    /// Calls in flight hold their max_tokens: together they cannot pass the budget.
    @Test func concurrentCallsReserveTheirAnswer() throws {
        let budgets = try budgets()
        try budgets.setAgent("a", ModelBudget(tokens: 100))
        let first = try budgets.admit(["a"], maxTokens: 60)
        let second = try budgets.admit(["a"], maxTokens: 60)
        #expect(first.tokens == 60 && second.tokens == 40)
        do {
            _ = try budgets.admit(["a"], maxTokens: 60)
            Issue.record("a third call was admitted past the budget")
        } catch {
            #expect(error.code == .resourceExhausted && error.message.contains("held by calls in flight"))
        }
        budgets.charge(["a"], usage: TokenUsage(input: 5, output: 10), costMicrodollars: 0)
        budgets.release(first)
        #expect(try budgets.admit(["a"], maxTokens: 60).tokens == 45)
    }

    /// A worker's chain: itself, its supervisors, its policy, then its spawner's.
    @Test func chainsAndTemplateBudgets() throws {
        let budgets = try budgets()
        try budgets.setPolicy("p", ["": ModelBudget(tokens: 1_000), "pool/*": ModelBudget(requestsPerMinute: 1)])
        budgets.setSpawner(of: "p/pool/w-1", to: "boss")
        #expect(budgets.chain(for: "p/pool/w-1") == ["p/pool/w-1", "p/pool", "p", "boss"])
        _ = try budgets.admit(budgets.chain(for: "p/pool/w-1"), maxTokens: 10)
        #expect(throws: KernelError.self) { _ = try budgets.admit(budgets.chain(for: "p/pool/w-1"), maxTokens: 10) }
        // Another child of the template has its own window.
        _ = try budgets.admit(budgets.chain(for: "p/pool/w-2"), maxTokens: 10)
        budgets.charge(["p/pool/w-1", "p"], usage: TokenUsage(input: 1, output: 2), costMicrodollars: 7)
        budgets.resetOwnSpend(of: "p/pool/w-1")
        let accounts = budgets.accounts(of: "p/pool/w-1")
        #expect(accounts.first { $0.name == "p/pool/w-1" }?.spend.tokens == 0)
        #expect(accounts.first { $0.name == "p" }?.spend.costMicrodollars == 7)
    }
}
