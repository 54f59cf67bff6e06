import AgentKit
import Foundation

/// One goal, from its text to its result: model → tool calls (through the
/// kernel, capability-checked) → model, until the model answers without
/// tool calls, the step limit, or a refusal of the model call itself.
struct GoalRun {
    enum Outcome {
        case done, failed
        /// Finished by an earlier run (or ended by someone else): nothing to do.
        case alreadyEnded

        var exitCode: Int32 { self == .failed ? 1 : 0 }
    }

    let agent: Agent
    let settings: Settings

    func run() async throws -> Outcome {
        let id = settings.goalID
        let goal = try await agent.goal(id)
        // A goal ended elsewhere (cancelled, or finished just before a crash) is not redone.
        if ["done", "failed", "cancelled"].contains(goal.state) {
            Output.say("goal \(id) is \(goal.state) already; nothing to do")
            return .alreadyEnded
        }

        var checkpoints = Checkpoints(agent: agent)
        var state: State
        if let saved = try await checkpoints.load(goalID: id), !saved.messages.isEmpty {
            if saved.finished {
                Output.say("goal \(id) was finished by an earlier run; nothing to do")
                return .alreadyEnded
            }
            state = saved
            Output.say("resuming at step \(saved.steps + 1) (\(saved.messages.count) messages so far)")
        } else {
            state = State(goalID: id, messages: [.user(goal.text)])
            Output.say("goal \(id) (attempt \(goal.attempts)): starting")
        }
        try await announceReady()

        let tools = try await offeredTools()
        let caller = ModelCaller(agent: agent, settings: settings, tools: tools)
        let runner = ToolRunner(agent: agent, offered: Set(tools.map(\.name)))

        while true {
            if let answer = state.finalAnswer {
                return try await finish(&state, checkpoints: &checkpoints,
                                        result: answer.isEmpty ? "(the model answered with no text)" : answer, failed: false)
            }
            if state.steps >= settings.maxSteps {
                return try await finish(&state, checkpoints: &checkpoints,
                                        result: "stopped after \(state.steps) steps without an answer", failed: true)
            }
            let step = state.steps + 1
            let answer: ModelAnswer
            do {
                answer = try await caller.answer(state.messages, step: step)
            } catch let error as AgentKitError where ModelCaller.isFinal(error) {
                let what = error.kernelCode == .modelFailed
                    ? "the model call failed \(ModelCaller.extraAttempts + 1) times" : "the model call was refused"
                return try await finish(&state, checkpoints: &checkpoints, result: "\(what): \(error)", failed: true)
            }
            state.add(answer)
            let calls = ToolRunner.prepare(answer.toolCalls, step: step)
            state.messages.append(.assistant(answer.content, toolCalls: calls.map(\.call)))
            var notes: [String] = []
            for call in calls {
                let (message, note) = try await runner.run(call)
                state.messages.append(message)
                notes.append(note)
            }
            state.steps = step
            // The step is whole (answer and every result): a restart resumes after it.
            try await checkpoints.save(state)
            let did = notes.isEmpty ? "answer, no tool calls" : "\(notes.count) tool call(s): \(notes.joined(separator: ", "))"
            Output.say("step \(step): \(did); tokens \(answer.inputTokens) in, \(answer.outputTokens) out")
        }
    }

    /// The registry's tools that AGENTOS_TOOLS names (none asked: the
    /// registry is not even consulted).
    private func offeredTools() async throws -> [ModelTool] {
        guard !settings.tools.isEmpty else {
            Output.say("no tools offered")
            return []
        }
        let registry = try await agent.tools()
        let tools = settings.tools.select(registry)
        let unmatched = settings.tools.unmatched(by: registry.map(\.name))
        if unmatched > 0 { Output.warn("\(unmatched) AGENTOS_TOOLS pattern(s) match no tool in the registry") }
        Output.say("offering \(tools.count) tool(s): \(tools.isEmpty ? "none" : tools.map(\.name).joined(separator: ", "))")
        return tools
    }

    /// Readiness for a supervisor that waits for it; a plain agent has none
    /// to tell, which the kernel says with a refusal that does not matter.
    private func announceReady() async throws {
        do {
            try await agent.ready()
        } catch let error as AgentKitError where error.kernelCode != nil {
            return
        }
    }

    /// Ends the goal: its result to the kernel and to long-term memory, then
    /// a checkpoint marked finished, so a restart does not do it again.
    private func finish(_ state: inout State, checkpoints: inout Checkpoints, result answer: String,
                        failed: Bool) async throws -> Outcome {
        let id = settings.goalID
        // A goal's result and a memory value both hold at most 64 KiB; leave room for the note.
        let result = answer.bounded(toBytes: 60_000)
        try await agent.finishGoal(id, result: result, failed: failed)
        do {
            try await agent.memory.put("goal/\(id)", result, tags: ["goal"])
        } catch {
            Output.warn("cannot keep the result in long-term memory: \(error)")
        }
        state.finished = true
        state.failed = failed
        state.result = result
        try await checkpoints.save(state)
        Output.say("goal \(id) \(failed ? "failed" : "done") after \(state.steps) step(s); tokens \(state.usage)")
        Output.say("result: " + result.bounded(toBytes: ToolRunner.maximumResultBytes))
        return failed ? .failed : .done
    }
}
