import AgentKit
import Foundation

/// The agent's checkpoint: the whole conversation and what it cost, saved
/// after every step, so a restarted agent resumes instead of starting over.
struct State: Codable, Sendable {
    var goalID: String
    var messages: [ModelMessage]
    /// Steps done: model answers, each with its tool results.
    var steps = 0
    var inputTokens = 0
    var outputTokens = 0
    var costMicrodollars = 0
    /// The goal was finished with `result`: a restart has nothing left to do.
    var finished = false
    var failed = false
    var result = ""

    init(goalID: String, messages: [ModelMessage]) {
        self.goalID = goalID
        self.messages = messages
    }

    /// The model's answer when the last step ended the conversation (it
    /// asked for no tools): a restart after it finishes the goal with it
    /// rather than asking again.
    var finalAnswer: String? {
        guard let last = messages.last, last.role == .assistant, last.toolCalls.isEmpty else { return nil }
        return last.content
    }

    mutating func add(_ answer: ModelAnswer) {
        inputTokens += answer.inputTokens
        outputTokens += answer.outputTokens
        costMicrodollars += answer.costMicrodollars
    }

    var usage: String {
        "\(inputTokens) in, \(outputTokens) out, $\(String(format: "%.4f", Double(costMicrodollars) / 1e6))"
    }

    /// The checkpoint's bytes, at most `limit`: the kernel refuses larger
    /// ones (1 MiB), so the oldest tool results give way first. The live
    /// conversation keeps them; only a resumed one sees the elision.
    func encoded(limit: Int) throws -> Data {
        var copy = self
        var data = try Payload.json(copy).bytes
        var index = 0
        while data.count > limit, index < copy.messages.count {
            let message = copy.messages[index]
            if message.role == .tool && message.content.utf8.count > 256 {
                copy.messages[index].content = "[left out of the checkpoint: \(message.content.utf8.count) bytes]"
                data = try Payload.json(copy).bytes
            }
            index += 1
        }
        return data
    }
}
