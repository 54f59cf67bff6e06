/// What the kernel told this agent to do: the goal on the command line, the
/// rest in the environment (the policy's `env`, or the scheduler's).
struct Settings: Sendable {
    static let usage = "usage: agentos-llm-agent --goal GOAL_ID"
    static let defaultSystemPrompt = """
        You are an agent running inside Agent OS, working on the goal the user gives you. \
        Use the tools offered when they help. Every tool call is checked against your capabilities: \
        a refused or failed call comes back as an error result, so do not repeat it unchanged; \
        try another way or explain what you could not do. \
        When you are done, reply with the result and no tool calls.
        """

    var goalID: String
    /// PROVIDER:MODEL.
    var model: String
    var systemPrompt: String
    var tools: ToolFilter
    var maxSteps: Int
    /// Per model call.
    var maxTokens: Int
    var stream: Bool

    /// Reads the settings; the error is one line that says what is wrong
    /// (it names a variable, never prints its value).
    static func parse(_ arguments: [String], environment: [String: String]) throws(UsageError) -> Settings {
        var goalID: String?
        var rest = arguments.dropFirst()[...]
        while let argument = rest.popFirst() {
            let value: String
            if argument == "--goal" {
                guard let next = rest.popFirst() else { throw UsageError("--goal needs a goal id") }
                value = next
            } else if argument.hasPrefix("--goal=") {
                value = String(argument.dropFirst("--goal=".count))
            } else {
                throw UsageError("unexpected argument '\(argument)'")
            }
            guard goalID == nil else { throw UsageError("--goal is given twice") }
            guard !value.isEmpty else { throw UsageError("--goal needs a goal id") }
            goalID = value
        }
        guard let goalID else { throw UsageError("missing --goal GOAL_ID") }

        let model = environment["AGENTOS_MODEL"] ?? ""
        guard !model.isEmpty else { throw UsageError("AGENTOS_MODEL is not set (PROVIDER:MODEL)") }
        let parts = model.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw UsageError("AGENTOS_MODEL must be PROVIDER:MODEL")
        }
        let prompt = environment["AGENTOS_SYSTEM_PROMPT"] ?? ""
        return Settings(
            goalID: goalID,
            model: model,
            systemPrompt: prompt.allSatisfy(\.isWhitespace) ? defaultSystemPrompt : prompt,
            tools: ToolFilter(environment["AGENTOS_TOOLS"] ?? ""),
            maxSteps: try number("AGENTOS_MAX_STEPS", in: environment, default: 10, range: 1...1_000),
            // The kernel's gateway refuses more than a million per call.
            maxTokens: try number("AGENTOS_MAX_TOKENS", in: environment, default: 1_024, range: 1...1_000_000),
            stream: ["1", "true", "yes"].contains((environment["AGENTOS_STREAM"] ?? "").lowercased())
        )
    }

    private static func number(_ name: String, in environment: [String: String], default fallback: Int,
                               range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let text = environment[name], !text.isEmpty else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw UsageError("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
