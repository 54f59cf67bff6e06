import Foundation

/// POST /v1/messages, as docs.anthropic.com documents the Messages API.
enum AnthropicAPI {
    static func plan(_ request: RecordedRequest, state: FakeState) -> Plan {
        if let key = state.apiKey, request.header("x-api-key") != key {
            return error(401, "authentication_error", "invalid x-api-key")
        }
        guard request.header("anthropic-version") != nil else {
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        }
        guard let body = request.json else {
            return error(400, "invalid_request_error", "There was an issue with the request body: the body is not valid JSON")
        }
        guard let model = body["model"] as? String else { return error(400, "invalid_request_error", "model: Field required") }
        guard let messages = body["messages"] as? [Any] else {
            return error(400, "invalid_request_error", "messages: Field required")
        }
        guard Read.isPresent(body["max_tokens"]) else { return error(400, "invalid_request_error", "max_tokens: Field required") }
        guard body["max_tokens"] is Int else {
            return error(400, "invalid_request_error", "max_tokens: Input should be a valid integer")
        }
        let stream = body["stream"] as? Bool ?? false

        switch state.behaviour(for: model) {
        case .unknown: return error(404, "not_found_error", "model: \(model)")
        case .rateLimited:
            return error(429, "rate_limit_error", "Number of requests has exceeded your rate limit", headers: [("retry-after", "1")])
        case .overloaded: return error(529, "overloaded_error", "Overloaded")
        case .tooLong: return error(400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum")
        case .garbage: return .garbage
        case .answer(let kind, let delay, let cut):
            let conversation = read(system: body["system"], messages: messages)
            switch Answer.make(kind, for: conversation) {
            case .failure(let failure): return error(400, "invalid_request_error", failure.message)
            case .success(let answer):
                var plan = respond(answer, model: model, inputTokens: conversation.inputTokens, stream: stream, cut: cut)
                plan.delayMilliseconds = delay
                return plan
            }
        }
    }

    /// The error shape every Anthropic error uses.
    static func error(_ status: Int, _ type: String, _ message: String, headers: [(String, String)] = []) -> Plan {
        .json(status, ["type": "error", "error": ["type": .string(type), "message": .string(message)]],
              headers: [("request-id", "req_" + Text.random(24))] + headers)
    }

    static func read(system: Any?, messages: [Any]) -> Conversation {
        var conversation = Conversation()
        if let system = Read.text(system) { conversation.texts.append(system) }
        for case let message as [String: Any] in messages {
            let content = message["content"]
            if let text = Read.text(content) {
                conversation.texts.append(text)
                if message["role"] as? String == "user" { conversation.userTexts.append(text) }
            }
            guard let blocks = content as? [Any] else { continue }
            for case let block as [String: Any] in blocks where block["type"] as? String == "tool_result" {
                let result = Read.text(block["content"]) ?? ""
                conversation.toolResults.append(result)
                conversation.texts.append(result)
            }
        }
        return conversation
    }

    private static func block(_ answer: Answer) -> Wire {
        switch answer {
        case .text(let text): return ["type": "text", "text": .string(text)]
        case .toolCall(let index, let name, let arguments):
            return ["type": "tool_use", "id": .string("toolu_\(index)"), "name": .string(name), "input": .raw(arguments)]
        }
    }

    private static func stopReason(_ answer: Answer) -> Wire {
        if case .toolCall = answer { return "tool_use" }
        return "end_turn"
    }

    private static func respond(_ answer: Answer, model: String, inputTokens: Int, stream: Bool, cut: Bool) -> Plan {
        let id = "msg_" + Text.random(24)
        let headers = [("request-id", "req_" + Text.random(24))]
        guard stream else {
            let body: Wire = [
                "id": .string(id), "type": "message", "role": "assistant", "model": .string(model),
                "content": [block(answer)],
                "stop_reason": stopReason(answer), "stop_sequence": nil,
                "usage": ["input_tokens": .int(inputTokens), "output_tokens": .int(answer.outputTokens)],
            ]
            if cut {
                return Plan(.truncated(headers: [("content-type", "application/json")] + headers, declaredLength: 1000,
                                       body: Array(body.bytes.prefix(20))))
            }
            return .json(200, body, headers: headers)
        }

        var events: [[UInt8]] = []
        func event(_ name: String, _ data: Wire) {
            events.append(Array("event: \(name)\ndata: \(data.text)\n\n".utf8))
        }
        event("message_start", [
            "type": "message_start",
            "message": [
                "id": .string(id), "type": "message", "role": "assistant", "model": .string(model), "content": [],
                "stop_reason": nil, "stop_sequence": nil,
                "usage": ["input_tokens": .int(inputTokens), "output_tokens": 1],
            ],
        ])
        event("ping", ["type": "ping"])
        switch answer {
        case .text(let text):
            event("content_block_start", ["type": "content_block_start", "index": 0, "content_block": ["type": "text", "text": ""]])
            for piece in Text.pieces(text, count: 3) {
                event("content_block_delta", ["type": "content_block_delta", "index": 0,
                                              "delta": ["type": "text_delta", "text": .string(piece)]])
                if cut { break }
            }
        case .toolCall(let index, let name, let arguments):
            event("content_block_start", ["type": "content_block_start", "index": 0,
                                          "content_block": ["type": "tool_use", "id": .string("toolu_\(index)"),
                                                            "name": .string(name), "input": [:]]])
            for piece in Text.pieces(arguments, count: 2) {
                event("content_block_delta", ["type": "content_block_delta", "index": 0,
                                              "delta": ["type": "input_json_delta", "partial_json": .string(piece)]])
                if cut { break }
            }
        }
        if cut {
            return Plan(.stream(headers: [("content-type", "text/event-stream"), ("cache-control", "no-cache")] + headers,
                                events: events, complete: false))
        }
        event("content_block_stop", ["type": "content_block_stop", "index": 0])
        event("message_delta", ["type": "message_delta",
                                "delta": ["stop_reason": stopReason(answer), "stop_sequence": nil],
                                "usage": ["output_tokens": .int(answer.outputTokens)]])
        event("message_stop", ["type": "message_stop"])
        return Plan(.stream(headers: [("content-type", "text/event-stream"), ("cache-control", "no-cache")] + headers,
                            events: events, complete: true))
    }
}
