import AgentKit
import Foundation

/// One model call of a step through the kernel's gateway, streamed or not,
/// tried again when the provider failed (the kernel retried already, so
/// only a couple more times, after a pause).
struct ModelCaller {
    static let extraAttempts = 2

    let agent: Agent
    let settings: Settings
    let tools: [ModelTool]

    /// Refusals that asking again (or a restart) would not change: the goal
    /// fails with the kernel's message. A spent budget, a missing grant, a
    /// request the gateway finds invalid, an unknown model, and a provider
    /// still failing after the retries.
    static func isFinal(_ error: AgentKitError) -> Bool {
        guard let code = error.kernelCode else { return false }
        return [.resourceExhausted, .permissionDenied, .invalidArgument, .notFound, .modelFailed].contains(code)
    }

    func answer(_ messages: [ModelMessage], step: Int) async throws -> ModelAnswer {
        let request = ModelRequest(model: settings.model, system: settings.systemPrompt, messages: messages,
                                   tools: tools, maxTokens: settings.maxTokens)
        var attempt = 0
        while true {
            do {
                return settings.stream ? try await streamed(request, step: step) : try await agent.complete(request)
            } catch let error as AgentKitError where error.kernelCode == .modelFailed && attempt < Self.extraAttempts {
                attempt += 1
                let pause = Self.pause(error, attempt: attempt)
                Output.warn("step \(step): the model failed (\(error)); trying again in \(pause)")
                try await Task.sleep(for: pause)
            }
        }
    }

    /// The provider's retry-after when the kernel passed it on (capped),
    /// else a couple of seconds more each time.
    private static func pause(_ error: AgentKitError, attempt: Int) -> Duration {
        if let text = error.detail["retry_after_ms"], let milliseconds = Int(text), milliseconds > 0 {
            return .milliseconds(min(milliseconds, 30_000))
        }
        return .seconds(2 * attempt)
    }

    /// The answer as it arrives, its text logged on one line.
    private func streamed(_ request: ModelRequest, step: Int) async throws -> ModelAnswer {
        var started = false
        defer { if started { Output.partial("\n") } }
        for try await event in agent.completeStreaming(request) {
            switch event {
            case .text(let text) where !text.isEmpty:
                if !started {
                    Output.partial(Output.prefix + "step \(step) model: ")
                    started = true
                }
                Output.partial(text)
            case .finished(let answer):
                return answer
            case .text, .toolCallStarted, .toolArguments:
                // Tool calls are logged once whole, in the step's line.
                break
            }
        }
        throw AgentKitError(.protocolViolation, "the model's stream ended without its answer")
    }
}
