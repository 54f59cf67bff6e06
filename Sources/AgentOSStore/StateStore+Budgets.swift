import GRDB

/// A model budget as stored: limits by account (nil: not limited there).
public struct BudgetRecord: Sendable, Equatable {
    public var account: String
    public var tokens: Int?
    public var costMicrodollars: Int64?
    public var requestsPerMinute: Int?

    public init(account: String, tokens: Int?, costMicrodollars: Int64?, requestsPerMinute: Int?) {
        self.account = account
        self.tokens = tokens
        self.costMicrodollars = costMicrodollars
        self.requestsPerMinute = requestsPerMinute
    }
}

/// What an account has spent on models.
public struct SpendRecord: Sendable, Equatable {
    public var account: String
    public var inputTokens: Int
    public var outputTokens: Int
    public var costMicrodollars: Int64
    public var calls: Int

    public init(account: String, inputTokens: Int = 0, outputTokens: Int = 0, costMicrodollars: Int64 = 0, calls: Int = 0) {
        self.account = account
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.costMicrodollars = costMicrodollars
        self.calls = calls
    }
}

extension StateStore {
    /// Replaces the budgets of `account` and every account below it
    /// (`account/...`) with `budgets`, in one transaction.
    public func replaceBudgets(under account: String, with budgets: [BudgetRecord]) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM model_budgets WHERE account = ? OR account LIKE ? ESCAPE '\\'",
                           arguments: [account, Self.likePrefix(account + "/")])
            for budget in budgets { try Self.insertBudget(db, budget, account: budget.account) }
        }
    }

    /// Sets (or with nil, removes) the budget of `account` alone: the
    /// accounts below it keep theirs.
    public func replaceBudget(of account: String, with budget: BudgetRecord?) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM model_budgets WHERE account = ?", arguments: [account])
            if let budget { try Self.insertBudget(db, budget, account: account) }
        }
    }

    private static func insertBudget(_ db: Database, _ budget: BudgetRecord, account: String) throws {
        try db.execute(sql: """
            INSERT OR REPLACE INTO model_budgets (account, tokens, cost_microdollars, requests_per_minute)
            VALUES (?, ?, ?, ?)
            """, arguments: [account, budget.tokens, budget.costMicrodollars, budget.requestsPerMinute])
    }

    public func budgets() throws -> [BudgetRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM model_budgets").map { row in
                BudgetRecord(account: row["account"], tokens: row["tokens"], costMicrodollars: row["cost_microdollars"],
                             requestsPerMinute: row["requests_per_minute"])
            }
        }
    }

    /// Adds one call's spending to each account, in one transaction.
    public func addSpend(_ accounts: [String], inputTokens: Int, outputTokens: Int, costMicrodollars: Int64) throws {
        try pool.write { db in
            for account in accounts {
                try db.execute(sql: """
                    INSERT INTO model_spend (account, input_tokens, output_tokens, cost_microdollars, calls)
                    VALUES (?, ?, ?, ?, 1)
                    ON CONFLICT(account) DO UPDATE SET input_tokens = input_tokens + excluded.input_tokens,
                        output_tokens = output_tokens + excluded.output_tokens,
                        cost_microdollars = cost_microdollars + excluded.cost_microdollars, calls = calls + 1
                    """, arguments: [account, inputTokens, outputTokens, costMicrodollars])
            }
        }
    }

    /// Forgets what one account spent.
    public func resetSpend(_ account: String) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM model_spend WHERE account = ?", arguments: [account]) }
    }

    public func spending() throws -> [SpendRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM model_spend").map { row in
                SpendRecord(account: row["account"], inputTokens: row["input_tokens"], outputTokens: row["output_tokens"],
                            costMicrodollars: row["cost_microdollars"], calls: row["calls"])
            }
        }
    }
}
