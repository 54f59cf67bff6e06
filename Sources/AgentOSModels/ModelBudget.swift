/// What an agent, a supervisor's subtree or a whole policy may spend on
/// models. Spending counts up the tree like a cgroup's: a worker's calls
/// count against its own budget, its supervisors' and its policy's, and an
/// agent started with agent.spawn counts against its spawner's too.
public struct ModelBudget: Sendable, Hashable {
    /// Input plus output tokens.
    public var tokens: Int?
    /// US dollars, in micro-dollars (from the config's price table).
    public var costMicrodollars: Int64?
    public var requestsPerMinute: Int?

    public init(tokens: Int? = nil, costMicrodollars: Int64? = nil, requestsPerMinute: Int? = nil) {
        self.tokens = tokens
        self.costMicrodollars = costMicrodollars
        self.requestsPerMinute = requestsPerMinute
    }

    public var isEmpty: Bool { tokens == nil && costMicrodollars == nil && requestsPerMinute == nil }

    /// Why the numbers make no sense, or nil.
    public func problem() -> String? {
        if let tokens, tokens < 1 { return "tokens must be at least 1, not \(tokens)" }
        if let costMicrodollars, costMicrodollars < 1 { return "cost must be more than 0 (US dollars, e.g. 2.50)" }
        if let requestsPerMinute, requestsPerMinute < 1 || requestsPerMinute > 100_000 {
            return "requests_per_minute must be 1-100000, not \(requestsPerMinute)"
        }
        return nil
    }
}

/// What an account has spent.
public struct ModelSpend: Sendable, Hashable {
    public var inputTokens: Int
    public var outputTokens: Int
    public var costMicrodollars: Int64
    public var calls: Int

    public init(inputTokens: Int = 0, outputTokens: Int = 0, costMicrodollars: Int64 = 0, calls: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.costMicrodollars = costMicrodollars
        self.calls = calls
    }

    public var tokens: Int { inputTokens + outputTokens }
}
