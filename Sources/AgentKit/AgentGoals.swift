import AgentOSProtocol

/// A goal the kernel's scheduler gave this agent (`agentctl submit`).
public struct Goal: Sendable {
    public let id: String
    public let text: String
    public let priority: Int
    /// pending, running, done, failed or cancelled.
    public let state: String
    public let result: String
    /// Times it was dispatched (a restart after a crash counts again).
    public let attempts: Int

    init(_ wire: Agentos_V1_GoalInfo) {
        id = wire.id
        text = wire.text
        priority = Int(wire.priority)
        state = wire.state
        result = wire.result
        attempts = Int(wire.attempts)
    }
}

extension Agent {
    /// The goal `id`, which the scheduler gave this agent.
    public func goal(_ id: String) async throws -> Goal {
        var request = Agentos_V1_GoalRequest()
        request.id = id
        guard case .goalGet(let goal) = try await link.call(.goalGet(request)) else { throw Self.unexpected("goal_get") }
        return Goal(goal)
    }

    /// Ends the goal with its result (or as failed); `agentctl queue` shows it.
    public func finishGoal(_ id: String, result: String, failed: Bool = false) async throws {
        var request = Agentos_V1_GoalFinishRequest()
        request.id = id
        request.result = result
        request.failed = failed
        guard case .goalFinish = try await link.call(.goalFinish(request)) else { throw Self.unexpected("goal_finish") }
    }
}
