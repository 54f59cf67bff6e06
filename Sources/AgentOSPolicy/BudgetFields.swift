// `budget:` on a worker (its own spending) or a supervisor (its subtree's):
// tokens, cost in US dollars, requests per minute.

import AgentOSModels

extension TreeBuilder {
    func budget(_ reader: MappingReader) -> ModelBudget? {
        guard let budget = reader.mapping("budget", expected: "a budget (a mapping with tokens:, cost:, requests_per_minute:)",
                                          allowed: PolicyKeys.budget) else { return nil }
        var result = ModelBudget()
        if let tokens = budget.integer("tokens") {
            if tokens >= 1 { result.tokens = tokens } else {
                log.report(budget.markOf("tokens"), budget.path.key("tokens"), "must be at least 1 (input plus output tokens), not \(tokens)")
            }
        }
        if let cost = budget.number("cost") {
            if cost > 0 && cost <= 1_000_000 { result.costMicrodollars = Int64((cost * 1_000_000).rounded()) } else {
                log.report(budget.markOf("cost"), budget.path.key("cost"), "US dollars, more than 0 (e.g. 2.50), not \(cost)")
            }
        }
        if let rate = budget.integer("requests_per_minute") {
            if (1...100_000).contains(rate) { result.requestsPerMinute = rate } else {
                log.report(budget.markOf("requests_per_minute"), budget.path.key("requests_per_minute"), "must be 1-100000, not \(rate)")
            }
        }
        if result.isEmpty && log.count == 0 {
            log.report(budget.mark, budget.path, "an empty budget: give tokens:, cost: or requests_per_minute:")
        }
        return result.isEmpty ? nil : result
    }
}
