import AgentOSTools

/// Anthropic's Messages API: `POST /v1/messages` with `x-api-key` and
/// `anthropic-version: 2023-06-01`; content blocks (`text`, `tool_use`,
/// `tool_result`); SSE streaming (`message_start`, `content_block_*`,
/// `message_delta`, `message_stop`, `ping`, `error`); errors as
/// `{"type":"error","error":{"type":...,"message":...}}` (429
/// `rate_limit_error`, 529 `overloaded_error`, ...).
public struct AnthropicMessages: ProviderWire {
    public static let version = "2023-06-01"

    public init() {}

    public var path: String { "/v1/messages" }

    public func headers(apiKey: String?) -> [(String, String)] {
        var headers = [("anthropic-version", Self.version)]
        if let apiKey { headers.append(("x-api-key", apiKey)) }
        return headers
    }

    public func body(for request: ChatRequest) throws(ModelError) -> [UInt8] {
        if let temperature = request.temperature, temperature > 1 {
            throw ModelError(.invalidRequest, "anthropic takes a temperature of 0-1, not \(temperature)")
        }
        let names = WireToolNames(request.tools)
        var body: [String: JSONValue] = [
            "model": .string(request.model),
            "max_tokens": .integer(Int64(request.maxTokens)),
            "messages": .array(Self.messages(request.messages, names: names)),
        ]
        if !request.system.isEmpty { body["system"] = .string(request.system) }
        if let temperature = request.temperature { body["temperature"] = .number(temperature) }
        if !request.stop.isEmpty { body["stop_sequences"] = .array(request.stop.map(JSONValue.string)) }
        if request.stream { body["stream"] = .bool(true) }
        if !request.tools.isEmpty {
            body["tools"] = .array(request.tools.map { tool in
                .object(["name": .string(names.wire(tool.name)), "description": .string(tool.description),
                         "input_schema": tool.parameters])
            })
            switch request.toolChoice {
            case .auto: break
            case .none: body["tool_choice"] = .object(["type": .string("none")])
            case .required: body["tool_choice"] = .object(["type": .string("any")])
            case .tool(let name): body["tool_choice"] = .object(["type": .string("tool"), "name": .string(names.wire(name))])
            }
        }
        return JSONValue.object(body).bytes
    }

    /// Turns alternate user / assistant; tool results travel as
    /// `tool_result` blocks of a user turn, merged with what follows them.
    static func messages(_ messages: [ChatMessage], names: WireToolNames) -> [JSONValue] {
        var turns: [(role: String, blocks: [JSONValue])] = []
        for message in messages {
            let role: String
            var blocks: [JSONValue] = []
            switch message.role {
            case .user:
                role = "user"
                blocks.append(.object(["type": .string("text"), "text": .string(message.content)]))
            case .assistant:
                role = "assistant"
                if !message.content.isEmpty {
                    blocks.append(.object(["type": .string("text"), "text": .string(message.content)]))
                }
                for call in message.toolCalls {
                    let input: JSONValue = if case .object = call.arguments { call.arguments } else { .object([:]) }
                    blocks.append(.object(["type": .string("tool_use"), "id": .string(call.id),
                                           "name": .string(names.wire(call.name)), "input": input]))
                }
            case .tool:
                role = "user"
                var block: [String: JSONValue] = ["type": .string("tool_result"), "tool_use_id": .string(message.toolCallID),
                                                  "content": .string(message.content)]
                if message.isError { block["is_error"] = .bool(true) }
                blocks.append(.object(block))
            }
            if let last = turns.last, last.role == role {
                turns[turns.count - 1].blocks += blocks
            } else {
                turns.append((role, blocks))
            }
        }
        return turns.map { .object(["role": .string($0.role), "content": .array($0.blocks)]) }
    }

    public func completion(from body: [UInt8], for request: ChatRequest) throws(ModelError) -> ChatCompletion {
        let names = WireToolNames(request.tools)
        let json = try JSONValue.decode(body, what: "the Anthropic answer")
        guard json["type"]?.string == "message", let blocks = json["content"]?.array else {
            throw ModelError(.badResponse, "the Anthropic answer is not a message: \(ProviderText.excerpt(body))")
        }
        var completion = ChatCompletion(id: json["id"]?.string ?? "", model: json["model"]?.string ?? request.model)
        for block in blocks {
            switch block["type"]?.string {
            case "text":
                completion.content += block["text"]?.string ?? ""
            case "tool_use":
                guard let id = block["id"]?.string, let name = block["name"]?.string else {
                    throw ModelError(.badResponse, "an Anthropic tool_use block without id or name")
                }
                completion.toolCalls.append(ChatToolCall(id: id, name: names.original(name),
                                                         arguments: block["input"] ?? .object([:])))
            default:
                break   // thinking, redacted_thinking, server tools: not part of the answer
            }
        }
        completion.stopReason = Self.stopReason(json["stop_reason"]?.string)
        completion.usage = Self.usage(json["usage"])
        return completion
    }

    static func stopReason(_ text: String?) -> StopReason {
        switch text {
        case "end_turn", "pause_turn": .endTurn
        case "max_tokens": .maxTokens
        case "tool_use": .toolUse
        case "stop_sequence": .stopSequence
        case "refusal": .contentFilter
        default: .other
        }
    }

    /// Input counts what was read from the cache and written to it too.
    static func usage(_ json: JSONValue?) -> TokenUsage {
        TokenUsage(input: (json?["input_tokens"]?.int ?? 0) + (json?["cache_creation_input_tokens"]?.int ?? 0)
                       + (json?["cache_read_input_tokens"]?.int ?? 0),
                   output: json?["output_tokens"]?.int ?? 0)
    }

    public func error(status: Int, headers: [(String, String)], body: [UInt8]) -> ModelError {
        let json = JSONValue.parse(String(decoding: body, as: UTF8.self))
        let type = json?["error"]?["type"]?.string
        let message = json?["error"]?["message"]?.string ?? ProviderText.excerpt(body)
        var error = Self.error(type: type, message: message, status: status)
        error.retryAfterMilliseconds = ProviderText.retryAfter(headers)
        return error
    }

    static func error(type: String?, message: String, status: Int?) -> ModelError {
        let code: ModelError.Code
        switch type {
        case "authentication_error", "permission_error": code = .authentication
        case "not_found_error": code = .notFound
        case "rate_limit_error": code = .rateLimited
        case "overloaded_error", "api_error": code = .overloaded
        case "timeout_error": code = .timeout
        case "invalid_request_error" where message.contains("prompt is too long") || message.contains("context window"):
            code = .contextTooLong
        case "invalid_request_error", "request_too_large": code = .invalidRequest
        default: code = status.map(ProviderText.code(forStatus:)) ?? .badResponse
        }
        return ModelError(code, "anthropic: \(message)", status: status)
    }

    public func streamDecoder(for request: ChatRequest) -> any ChatStreamDecoder {
        StreamDecoder(names: WireToolNames(request.tools), model: request.model)
    }

    struct StreamDecoder: ChatStreamDecoder {
        let names: WireToolNames
        var parser = ServerSentEventParser()
        var assembly = StreamAssembly()
        /// Content block index → tool call index (text blocks count in the first, not the second).
        var toolIndex: [Int: Int] = [:]
        var stopped = false

        init(names: WireToolNames, model: String) {
            self.names = names
            assembly.completion.model = model
        }

        mutating func consume(_ bytes: [UInt8]) throws(ModelError) -> [ChatDelta] {
            var deltas: [ChatDelta] = []
            for event in try parser.events(in: bytes) { deltas += try handle(event) }
            return deltas
        }

        mutating func finish() throws(ModelError) -> ChatCompletion {
            if let event = parser.finish() { _ = try handle(event) }
            guard stopped else {
                throw ModelError(.badResponse, "anthropic: the stream ended before message_stop")
            }
            return assembly.finished()
        }

        private mutating func handle(_ event: ServerSentEvent) throws(ModelError) -> [ChatDelta] {
            guard let json = JSONValue.parse(event.data) else {
                throw ModelError(.badResponse, "anthropic: a stream event that is not JSON: \(ProviderText.excerpt(Array(event.data.utf8)))")
            }
            var deltas: [ChatDelta] = []
            switch json["type"]?.string ?? event.event {
            case "message_start":
                let message = json["message"]
                assembly.completion.id = message?["id"]?.string ?? ""
                if let model = message?["model"]?.string { assembly.completion.model = model }
                assembly.completion.usage = AnthropicMessages.usage(message?["usage"])
            case "content_block_start":
                let block = json["content_block"]
                if block?["type"]?.string == "tool_use", let index = json["index"]?.int {
                    let position = toolIndex.count
                    toolIndex[index] = position
                    deltas.append(.toolCallStarted(index: position, id: block?["id"]?.string ?? "",
                                                   name: names.original(block?["name"]?.string ?? "")))
                } else if block?["type"]?.string == "text", let text = block?["text"]?.string, !text.isEmpty {
                    deltas.append(.text(text))
                }
            case "content_block_delta":
                let delta = json["delta"]
                switch delta?["type"]?.string {
                case "text_delta":
                    if let text = delta?["text"]?.string { deltas.append(.text(text)) }
                case "input_json_delta":
                    if let index = json["index"]?.int, let position = toolIndex[index],
                       let fragment = delta?["partial_json"]?.string {
                        deltas.append(.toolArguments(index: position, fragment: fragment))
                    }
                default:
                    break
                }
            case "message_delta":
                assembly.completion.stopReason = AnthropicMessages.stopReason(json["delta"]?["stop_reason"]?.string)
                if let output = json["usage"]?["output_tokens"]?.int { assembly.completion.usage.output = output }
                if let input = json["usage"]?["input_tokens"]?.int, input > 0 {
                    assembly.completion.usage.input = AnthropicMessages.usage(json["usage"]).input
                }
            case "message_stop":
                stopped = true
            case "error":
                throw AnthropicMessages.error(type: json["error"]?["type"]?.string,
                                              message: json["error"]?["message"]?.string ?? event.data, status: nil)
            default:
                break   // ping, content_block_stop, and events added later
            }
            for delta in deltas { assembly.apply(delta) }
            return deltas
        }
    }
}
