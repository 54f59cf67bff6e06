import Foundation

/// POST /api/chat, as Ollama's docs/api.md documents it. No key is checked.
enum OllamaAPI {
    static func plan(_ request: RecordedRequest, state: FakeState) -> Plan {
        guard let body = request.json else { return error(400, "invalid request body: not a JSON object") }
        guard let model = body["model"] as? String, !model.isEmpty else { return error(400, "model is required") }
        let messages = body["messages"] as? [Any] ?? []
        // Ollama streams unless told not to.
        let stream = body["stream"] as? Bool ?? true

        switch state.behaviour(for: model) {
        case .unknown: return error(404, "model \"\(model)\" not found, try pulling it first")
        case .rateLimited: return error(429, "too many requests")
        case .overloaded: return error(503, "server busy")
        case .garbage: return .garbage
        case .tooLong:
            // Ollama truncates a prompt longer than the context: it answers.
            return answer(.echo, model: model, messages: messages, stream: stream, delay: 0, cut: false)
        case .answer(let kind, let delay, let cut):
            return answer(kind, model: model, messages: messages, stream: stream, delay: delay, cut: cut)
        }
    }

    static func error(_ status: Int, _ message: String) -> Plan {
        let body: Wire = ["error": .string(message)]
        return Plan(.full(status: status, headers: [("content-type", "application/json; charset=utf-8")], body: body.bytes))
    }

    static func read(messages: [Any]) -> Conversation {
        var conversation = Conversation()
        for case let message as [String: Any] in messages {
            let role = message["role"] as? String
            let text = message["content"] as? String
            if role == "tool" {
                conversation.toolResults.append(text ?? "")
            } else if role == "user", let text {
                conversation.userTexts.append(text)
            }
            if let text { conversation.texts.append(text) }
        }
        return conversation
    }

    private static func answer(_ kind: Behaviour.Kind, model: String, messages: [Any], stream: Bool, delay: Int,
                               cut: Bool) -> Plan {
        let conversation = read(messages: messages)
        switch Answer.make(kind, for: conversation) {
        case .failure(let failure): return error(400, failure.message)
        case .success(let answer):
            var plan = respond(answer, model: model, inputTokens: conversation.inputTokens, stream: stream, cut: cut)
            plan.delayMilliseconds = delay
            return plan
        }
    }

    private static func message(_ answer: Answer) -> Wire {
        switch answer {
        case .text(let text): return ["role": "assistant", "content": .string(text)]
        case .toolCall(_, let name, let arguments):
            return ["role": "assistant", "content": "",
                    "tool_calls": [["function": ["name": .string(name), "arguments": .raw(arguments)]]]]
        }
    }

    /// The last object of an answer: done, with the counts and durations (nanoseconds).
    private static func done(model: String, message: Wire, inputTokens: Int, outputTokens: Int) -> Wire {
        let load = 1_000_000, promptEval = inputTokens * 100_000, eval = outputTokens * 1_000_000
        return [
            "model": .string(model), "created_at": .string(Text.iso8601Now()), "message": message,
            "done": true, "done_reason": "stop",
            "total_duration": .int(load + promptEval + eval + 500_000), "load_duration": .int(load),
            "prompt_eval_count": .int(inputTokens), "prompt_eval_duration": .int(promptEval),
            "eval_count": .int(outputTokens), "eval_duration": .int(eval),
        ]
    }

    private static func respond(_ answer: Answer, model: String, inputTokens: Int, stream: Bool, cut: Bool) -> Plan {
        guard stream else {
            let body = done(model: model, message: message(answer), inputTokens: inputTokens, outputTokens: answer.outputTokens)
            if cut {
                return Plan(.truncated(headers: [("content-type", "application/json; charset=utf-8")], declaredLength: 1000,
                                       body: Array(body.bytes.prefix(20))))
            }
            return Plan(.full(status: 200, headers: [("content-type", "application/json; charset=utf-8")], body: body.bytes))
        }
        var lines: [[UInt8]] = []
        func line(_ object: Wire) { lines.append(Array((object.text + "\n").utf8)) }
        func partial(_ message: Wire) {
            line(["model": .string(model), "created_at": .string(Text.iso8601Now()), "message": message, "done": false])
        }
        switch answer {
        case .text(let text):
            for piece in Text.pieces(text, count: 3) {
                partial(["role": "assistant", "content": .string(piece)])
                if cut { break }
            }
        case .toolCall:
            partial(message(answer))
        }
        let headers = [("content-type", "application/x-ndjson")]
        if cut { return Plan(.stream(headers: headers, events: lines, complete: false)) }
        line(done(model: model, message: ["role": "assistant", "content": ""], inputTokens: inputTokens,
                  outputTokens: answer.outputTokens))
        return Plan(.stream(headers: headers, events: lines, complete: true))
    }
}
