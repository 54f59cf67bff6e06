import Foundation

/// POST /v1/chat/completions, as platform.openai.com documents the Chat Completions API.
enum OpenAIAPI {
    static func plan(_ request: RecordedRequest, state: FakeState) -> Plan {
        if let key = state.apiKey, request.header("authorization") != "Bearer \(key)" {
            return error(401, "Incorrect API key provided", type: "invalid_request_error", code: "invalid_api_key")
        }
        guard let body = request.json else {
            return error(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                + "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you "
                + "have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
                type: "invalid_request_error", code: nil)
        }
        guard let model = body["model"] as? String else {
            return error(400, "you must provide a model parameter", type: "invalid_request_error", code: nil)
        }
        guard let messages = body["messages"] as? [Any] else {
            return error(400, "Missing required parameter: 'messages'.", type: "invalid_request_error",
                         param: "messages", code: "missing_required_parameter")
        }
        let stream = body["stream"] as? Bool ?? false
        let includeUsage = (body["stream_options"] as? [String: Any])?["include_usage"] as? Bool ?? false

        switch state.behaviour(for: model) {
        case .unknown:
            return error(404, "The model `\(model)` does not exist or you do not have access to it.",
                         type: "invalid_request_error", code: "model_not_found")
        case .rateLimited:
            return error(429, "Rate limit reached for requests", type: "requests", code: "rate_limit_exceeded",
                         headers: [("retry-after", "1")])
        case .overloaded: return error(503, "The server is overloaded", type: "server_error", code: nil)
        case .tooLong:
            return error(400, "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
                         type: "invalid_request_error", param: "messages", code: "context_length_exceeded")
        case .garbage: return .garbage
        case .answer(let kind, let delay, let cut):
            let conversation = read(messages: messages)
            switch Answer.make(kind, for: conversation) {
            case .failure(let failure): return error(400, failure.message, type: "invalid_request_error", code: nil)
            case .success(let answer):
                var plan = respond(answer, model: model, inputTokens: conversation.inputTokens, stream: stream,
                                   includeUsage: includeUsage, cut: cut)
                plan.delayMilliseconds = delay
                return plan
            }
        }
    }

    static func error(_ status: Int, _ message: String, type: String, param: String? = nil, code: String?,
                      headers: [(String, String)] = []) -> Plan {
        .json(status, ["error": ["message": .string(message), "type": .string(type),
                                 "param": param.map { .string($0) } ?? .null, "code": code.map { .string($0) } ?? .null]],
              headers: [("x-request-id", "req_" + Text.random(32))] + headers)
    }

    static func read(messages: [Any]) -> Conversation {
        var conversation = Conversation()
        for case let message as [String: Any] in messages {
            let role = message["role"] as? String
            let text = Read.text(message["content"])
            if role == "tool" {
                conversation.toolResults.append(text ?? "")
            } else if role == "user", let text {
                conversation.userTexts.append(text)
            }
            if let text { conversation.texts.append(text) }
        }
        return conversation
    }

    private static func toolCall(index: Int, name: String, arguments: String) -> Wire {
        ["id": .string("call_\(index)"), "type": "function", "function": ["name": .string(name), "arguments": .string(arguments)]]
    }

    private static func finishReason(_ answer: Answer) -> Wire {
        if case .toolCall = answer { return "tool_calls" }
        return "stop"
    }

    private static func usage(_ inputTokens: Int, _ answer: Answer) -> Wire {
        ["prompt_tokens": .int(inputTokens), "completion_tokens": .int(answer.outputTokens),
         "total_tokens": .int(inputTokens + answer.outputTokens)]
    }

    private static func respond(_ answer: Answer, model: String, inputTokens: Int, stream: Bool, includeUsage: Bool,
                                cut: Bool) -> Plan {
        let id = "chatcmpl-" + Text.random(29)
        let created = Int(Date().timeIntervalSince1970)
        let headers = [("x-request-id", "req_" + Text.random(32))]
        guard stream else {
            let message: Wire
            switch answer {
            case .text(let text): message = ["role": "assistant", "content": .string(text)]
            case .toolCall(let index, let name, let arguments):
                message = ["role": "assistant", "content": nil,
                           "tool_calls": [toolCall(index: index, name: name, arguments: arguments)]]
            }
            let body: Wire = [
                "id": .string(id), "object": "chat.completion", "created": .int(created), "model": .string(model),
                "choices": [["index": 0, "message": message, "logprobs": nil, "finish_reason": finishReason(answer)]],
                "usage": usage(inputTokens, answer),
            ]
            if cut {
                return Plan(.truncated(headers: [("content-type", "application/json")] + headers, declaredLength: 1000,
                                       body: Array(body.bytes.prefix(20))))
            }
            return .json(200, body, headers: headers)
        }

        var events: [[UInt8]] = []
        func chunk(_ delta: Wire, finishReason: Wire = nil) {
            var members: [(String, Wire)] = [
                ("id", .string(id)), ("object", "chat.completion.chunk"), ("created", .int(created)), ("model", .string(model)),
                ("choices", [["index": 0, "delta": delta, "logprobs": nil, "finish_reason": finishReason]]),
            ]
            // With include_usage, every chunk carries "usage": null but the extra last one.
            if includeUsage { members.append(("usage", nil)) }
            events.append(Array("data: \(Wire.object(members).text)\n\n".utf8))
        }
        switch answer {
        case .text(let text):
            chunk(["role": "assistant", "content": ""])
            for piece in Text.pieces(text, count: 3) {
                chunk(["content": .string(piece)])
                if cut { break }
            }
        case .toolCall(let index, let name, let arguments):
            chunk(["role": "assistant", "content": nil,
                   "tool_calls": [["index": 0, "id": .string("call_\(index)"), "type": "function",
                                   "function": ["name": .string(name), "arguments": ""]]]])
            for piece in Text.pieces(arguments, count: 2) {
                chunk(["tool_calls": [["index": 0, "function": ["arguments": .string(piece)]]]])
                if cut { break }
            }
        }
        let headers2 = [("content-type", "text/event-stream"), ("cache-control", "no-cache")] + headers
        if cut { return Plan(.stream(headers: headers2, events: events, complete: false)) }
        chunk([:], finishReason: finishReason(answer))
        if includeUsage {
            let last: Wire = ["id": .string(id), "object": "chat.completion.chunk", "created": .int(created),
                              "model": .string(model), "choices": [], "usage": usage(inputTokens, answer)]
            events.append(Array("data: \(last.text)\n\n".utf8))
        }
        events.append(Array("data: [DONE]\n\n".utf8))
        return Plan(.stream(headers: headers2, events: events, complete: true))
    }
}
