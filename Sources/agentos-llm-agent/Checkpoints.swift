import AgentKit
import Foundation

/// Saving and loading `State` through the kernel. Only a supervised worker
/// has a checkpoint (the scheduler starts goal agents as one); run any
/// other way the agent still works, it just starts over when restarted.
struct Checkpoints {
    /// Under the kernel's 1 MiB, with room for the frame around it.
    static let limit = 1_000_000

    let agent: Agent
    private(set) var enabled = true

    init(agent: Agent) {
        self.agent = agent
    }

    /// The saved state for `goalID`, nil to start fresh.
    mutating func load(goalID: String) async throws -> State? {
        let state: State?
        do {
            state = try await agent.loadCheckpoint(as: State.self)
        } catch let error as AgentKitError where error.kernelCode == .invalidArgument {
            enabled = false
            Output.warn("no checkpoints (\(error.message)): a restart starts over")
            return nil
        } catch let error as AgentKitError where error.code == .encoding {
            Output.warn("the saved checkpoint is not this agent's; starting fresh")
            return nil
        }
        guard let state else { return nil }
        guard state.goalID == goalID else {
            Output.say("the checkpoint is for goal \(state.goalID), not \(goalID); starting fresh")
            return nil
        }
        return state
    }

    /// Saves `state`; a refusal by the kernel is logged, not fatal (the
    /// goal matters more than being able to resume it).
    mutating func save(_ state: State) async throws {
        guard enabled else { return }
        do {
            try await agent.saveCheckpoint(try state.encoded(limit: Self.limit))
        } catch let error as AgentKitError where error.kernelCode != nil {
            Output.warn("cannot save the checkpoint: \(error)")
            // Not a supervised worker (or a checkpoint that will not shrink): stop trying.
            if error.kernelCode == .invalidArgument { enabled = false }
        }
    }
}
