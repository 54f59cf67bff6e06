import AgentKit
import Foundation

/// Runs the tool calls a model asked for, through the kernel, and turns
/// each outcome into a tool result for the model. Whatever the tool or the
/// kernel says (an error, a denied grant, arguments the schema refuses) the
/// model reads and can react to; only a lost kernel ends the agent.
struct ToolRunner {
    /// Bound on a result's text: one huge file must not fill the context.
    static let maximumResultBytes = 16 * 1_024

    /// A call as it goes into the conversation, and why it cannot be run.
    struct Call {
        var call: ModelToolCall
        /// The arguments were not a JSON object: refused here, never sent.
        var problem: String?
    }

    let agent: Agent
    let offered: Set<String>

    /// The calls as the conversation keeps them: every call with an id, and
    /// arguments that are a JSON object (the gateway refuses a conversation
    /// with anything else, so what the model wrote goes into the error result).
    static func prepare(_ calls: [ModelToolCall], step: Int) -> [Call] {
        calls.enumerated().map { index, raw in
            var call = raw
            if call.id.isEmpty { call.id = "call-\(step)-\(index + 1)" }
            let text = call.argumentsJSON.allSatisfy(\.isWhitespace) ? "{}" : call.argumentsJSON
            guard isObject(text) else {
                call.argumentsJSON = "{}"
                let written = text.bounded(toBytes: 1_024)
                return Call(call: call, problem: "the arguments are not a JSON object, the tool was not called; you wrote: \(written)")
            }
            call.argumentsJSON = text
            return Call(call: call)
        }
    }

    /// The tool result for `call`, and a word on it for the step's log line.
    func run(_ prepared: Call) async throws -> (message: ModelMessage, note: String) {
        let call = prepared.call
        guard offered.contains(call.name) else {
            return (.toolResult(call.id, "no tool \(call.name) is offered", isError: true), "\(call.name): not offered")
        }
        if let problem = prepared.problem {
            return (.toolResult(call.id, problem, isError: true), "\(call.name): bad arguments")
        }
        do {
            let result = try await agent.callTool(call.name, argumentsJSON: call.argumentsJSON)
            // The result object's JSON text is what the model reads: the tool's own words.
            let text = (result.resultJSON.isEmpty ? "{}" : result.resultJSON).bounded(toBytes: Self.maximumResultBytes)
            return (.toolResult(call.id, text, isError: result.isError), call.name + (result.isError ? ": error" : ""))
        } catch let error as AgentKitError where error.kernelCode != nil && error.kernelCode != .shuttingDown {
            let text = "the kernel refused the call: \(error)".bounded(toBytes: Self.maximumResultBytes)
            return (.toolResult(call.id, text, isError: true), "\(call.name): \(error.kernelCode?.name ?? "refused")")
        }
    }

    private static func isObject(_ text: String) -> Bool {
        let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        return value is [String: Any]
    }
}
