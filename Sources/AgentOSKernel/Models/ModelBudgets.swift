import AgentOSModels
import AgentOSStore
import Foundation
import Logging
import Synchronization

/// Model budgets and spending by account: a policy path ("research",
/// "research/thinkers", "research/thinkers/thinker-2") or a plain agent's
/// name. A call is charged to its agent's account and every account above
/// it (its supervisors, its policy) and, for an agent started with
/// agent.spawn, its spawner's; it is refused while any of them is spent.
/// Spending is kept in the store (it survives restarts); the
/// requests-per-minute windows are in memory.
final class ModelBudgets: Sendable {
    struct Account: Sendable, Equatable {
        let name: String
        let budget: ModelBudget?
        let spend: ModelSpend
    }

    private struct State {
        var limits: [String: ModelBudget] = [:]
        var spend: [String: ModelSpend] = [:]
        var recent: [String: [Int64]] = [:]
        /// Tokens held by calls in flight (their max_tokens), so that
        /// concurrent calls cannot together run past a budget.
        var reserved: [String: Int] = [:]
        /// An agent started by agent.spawn → the identity of its spawner.
        var spawners: [String: String] = [:]
    }

    private let store: StateStore
    private let logger: Logger
    private let state = Mutex(State())

    init(store: StateStore, logger: Logger) {
        self.store = store
        self.logger = logger
        do {
            let budgets = try store.budgets()
            let spending = try store.spending()
            state.withLock { state in
                for budget in budgets {
                    state.limits[budget.account] = ModelBudget(tokens: budget.tokens, costMicrodollars: budget.costMicrodollars,
                                                               requestsPerMinute: budget.requestsPerMinute)
                }
                for spend in spending {
                    state.spend[spend.account] = ModelSpend(inputTokens: spend.inputTokens, outputTokens: spend.outputTokens,
                                                            costMicrodollars: spend.costMicrodollars, calls: spend.calls)
                }
            }
        } catch {
            logger.error("cannot load model budgets: \(error)")
        }
    }

    // MARK: Declaring

    /// The budgets of an applied policy (paths relative to it; "" the policy itself).
    func setPolicy(_ name: String, _ budgets: [String: ModelBudget]) throws {
        let records = budgets.map { path, budget in
            BudgetRecord(account: path.isEmpty ? name : "\(name)/\(path)", tokens: budget.tokens,
                         costMicrodollars: budget.costMicrodollars, requestsPerMinute: budget.requestsPerMinute)
        }
        try store.replaceBudgets(under: name, with: records)
        state.withLock { state in
            state.limits = state.limits.filter { $0.key != name && !$0.key.hasPrefix(name + "/") }
            for record in records {
                state.limits[record.account] = ModelBudget(tokens: record.tokens, costMicrodollars: record.costMicrodollars,
                                                           requestsPerMinute: record.requestsPerMinute)
            }
        }
    }

    /// A plain agent's budget (`agentctl run --budget-*`), by its name.
    /// Only its own account: a policy of the same name keeps its children's.
    func setAgent(_ name: String, _ budget: ModelBudget) throws {
        try store.replaceBudget(of: name, with: budget.isEmpty ? nil : BudgetRecord(
            account: name, tokens: budget.tokens, costMicrodollars: budget.costMicrodollars,
            requestsPerMinute: budget.requestsPerMinute))
        state.withLock { $0.limits[name] = budget.isEmpty ? nil : budget }
    }

    /// `child` was started by `spawner`: its spending counts against the spawner's accounts too.
    func setSpawner(of child: String, to spawner: String) {
        guard child != spawner else { return }
        state.withLock { $0.spawners[child] = spawner }
    }

    /// A new agent at `account` (a dynamic child's path, which a later boot
    /// hands out again): its own spending starts from nothing. Its
    /// supervisors' and policy's spending stays.
    func resetOwnSpend(of account: String) {
        let had = state.withLock { state in state.spend.removeValue(forKey: account) != nil }
        guard had else { return }
        do {
            try store.resetSpend(account)
        } catch {
            logger.error("cannot reset the model spending of \(account): \(error)")
        }
    }

    // MARK: Calls

    /// The accounts a call of `identity` is charged to, nearest first.
    func chain(for identity: String) -> [String] {
        state.withLock { state in Self.chain(identity, state) }
    }

    private static func chain(_ identity: String, _ state: State) -> [String] {
        var accounts: [String] = []
        var next: String? = identity
        var seen = Set<String>()
        while let current = next, seen.insert(current).inserted, seen.count < 64 {
            var segments = current.split(separator: "/").map(String.init)
            while !segments.isEmpty {
                accounts.append(segments.joined(separator: "/"))
                segments.removeLast()
            }
            next = state.spawners[current]
        }
        var unique = Set<String>()
        return accounts.filter { unique.insert($0).inserted }
    }

    /// The budget that applies to `account`: its own, else its dynamic supervisor's template's.
    private static func limit(_ account: String, _ state: State) -> ModelBudget? {
        if let own = state.limits[account] { return own }
        guard let slash = account.lastIndex(of: "/") else { return nil }
        return state.limits[account[..<slash] + "/*"]
    }

    /// What a call admitted holds until it is charged or released.
    struct Reservation: Sendable {
        let accounts: [String]
        /// The most tokens the call may answer with (nil: no token budget applies).
        let tokens: Int?
    }

    /// Refuses a call when an account of `chain` is spent (or held by calls
    /// in flight); else counts it in the per-minute windows and reserves
    /// up to `maxTokens` of answer in each token budget until `settle`.
    func admit(_ chain: [String], maxTokens: Int,
               now: Int64 = Int64(Date().timeIntervalSince1970 * 1_000)) throws(KernelError) -> Reservation {
        try state.withLock { state throws(KernelError) -> Reservation in
            var left: Int?
            for account in chain {
                guard let budget = Self.limit(account, state) else { continue }
                let spent = state.spend[account] ?? ModelSpend()
                if let tokens = budget.tokens {
                    let held = state.reserved[account] ?? 0
                    guard spent.tokens < tokens else {
                        throw Self.exhausted(account, "its \(tokens)-token model budget is spent (\(spent.tokens) used)", "tokens")
                    }
                    guard spent.tokens + held < tokens else {
                        throw Self.exhausted(account, "its \(tokens)-token model budget is held by calls in flight "
                                                 + "(\(spent.tokens) used, \(held) reserved); try again when they end", "tokens")
                    }
                    left = min(left ?? Int.max, tokens - spent.tokens - held)
                }
                if let cost = budget.costMicrodollars, spent.costMicrodollars >= cost {
                    throw Self.exhausted(account, "its $\(Self.dollars(cost)) model budget is spent ($\(Self.dollars(spent.costMicrodollars)) used)", "cost")
                }
                if let rate = budget.requestsPerMinute {
                    let recent = (state.recent[account] ?? []).filter { $0 > now - 60_000 }
                    guard recent.count < rate else {
                        let wait = max(1, ((recent.first ?? now) + 60_000 - now) / 1_000)
                        throw Self.exhausted(account, "its budget of \(rate) model requests a minute is used (the next in \(wait) s)",
                                             "requests_per_minute")
                    }
                }
            }
            for account in chain where Self.limit(account, state)?.requestsPerMinute != nil {
                state.recent[account, default: []].removeAll { $0 <= now - 60_000 }
                state.recent[account, default: []].append(now)
            }
            let tokens = left.map { min($0, maxTokens) }
            if let tokens {
                for account in chain where Self.limit(account, state)?.tokens != nil {
                    state.reserved[account, default: 0] += tokens
                }
            }
            return Reservation(accounts: chain, tokens: tokens)
        }
    }

    /// Gives back what `reservation` held (after `charge`, or when the call failed).
    func release(_ reservation: Reservation) {
        guard let tokens = reservation.tokens else { return }
        state.withLock { state in
            for account in reservation.accounts where state.reserved[account] != nil {
                state.reserved[account] = max(0, (state.reserved[account] ?? 0) - tokens)
                if state.reserved[account] == 0 { state.reserved[account] = nil }
            }
        }
    }

    /// Adds a finished call's usage to every account of `chain`.
    func charge(_ chain: [String], usage: TokenUsage, costMicrodollars: Int64) {
        state.withLock { state in
            for account in chain {
                var spend = state.spend[account] ?? ModelSpend()
                spend.inputTokens += usage.input
                spend.outputTokens += usage.output
                spend.costMicrodollars += costMicrodollars
                spend.calls += 1
                state.spend[account] = spend
            }
        }
        do {
            try store.addSpend(chain, inputTokens: usage.input, outputTokens: usage.output, costMicrodollars: costMicrodollars)
        } catch {
            logger.error("cannot record model spending of \(chain.first ?? "?"): \(error)")
        }
    }

    /// The accounts of `identity` with their budgets and spending (stats).
    func accounts(of identity: String) -> [Account] {
        state.withLock { state in
            Self.chain(identity, state).map { Account(name: $0, budget: Self.limit($0, state), spend: state.spend[$0] ?? ModelSpend()) }
        }
    }

    static func dollars(_ microdollars: Int64) -> String {
        String(format: "%.2f", Double(microdollars) / 1_000_000)
    }

    private static func exhausted(_ account: String, _ what: String, _ kind: String) -> KernelError {
        KernelError(.resourceExhausted, "\(account): \(what)", detail: ["reason": "budget", "budget": kind, "account": account])
    }
}
