import AgentOSTools

/// OpenAI Chat Completions (`POST /v1/chat/completions`, `Authorization:
/// Bearer`), which llama.cpp's server, llama-cpp-python, vLLM and LM Studio
/// also speak: `tool_calls` with JSON-text arguments, `tool` messages, SSE
/// chunks ending in `data: [DONE]` (usage in a last chunk when
/// `stream_options.include_usage` is set), errors as
/// `{"error":{"message","type","param","code"}}`.
public struct OpenAIChat: ProviderWire {
    /// `max_completion_tokens` (OpenAI; its reasoning models refuse
    /// `max_tokens`) or `max_tokens` (compatible servers).
    let tokenField: String

    public init(tokenField: String = "max_completion_tokens") {
        self.tokenField = tokenField
    }

    public var path: String { "/v1/chat/completions" }

    public func headers(apiKey: String?) -> [(String, String)] {
        apiKey.map { [("authorization", "Bearer \($0)")] } ?? []
    }

    public func body(for request: ChatRequest) throws(ModelError) -> [UInt8] {
        if request.stop.count > 4 { throw ModelError(.invalidRequest, "at most 4 stop sequences in this format, not \(request.stop.count)") }
        let names = WireToolNames(request.tools)
        var messages: [JSONValue] = []
        if !request.system.isEmpty {
            messages.append(.object(["role": .string("system"), "content": .string(request.system)]))
        }
        for message in request.messages {
            switch message.role {
            case .user:
                messages.append(.object(["role": .string("user"), "content": .string(message.content)]))
            case .assistant:
                var object: [String: JSONValue] = ["role": .string("assistant"),
                                                   "content": message.content.isEmpty ? .null : .string(message.content)]
                if !message.toolCalls.isEmpty {
                    object["tool_calls"] = .array(message.toolCalls.map { call in
                        .object(["id": .string(call.id), "type": .string("function"),
                                 "function": .object(["name": .string(names.wire(call.name)),
                                                      "arguments": .string(call.argumentsText)])])
                    })
                }
                messages.append(.object(object))
            case .tool:
                // The format has no error flag: the model reads it in the text.
                messages.append(.object(["role": .string("tool"), "tool_call_id": .string(message.toolCallID),
                                         "content": .string(message.isError ? "ERROR: " + message.content : message.content)]))
            }
        }
        var body: [String: JSONValue] = [
            "model": .string(request.model),
            "messages": .array(messages),
            tokenField: .integer(Int64(request.maxTokens)),
        ]
        if let temperature = request.temperature { body["temperature"] = .number(temperature) }
        if !request.stop.isEmpty { body["stop"] = .array(request.stop.map(JSONValue.string)) }
        if request.stream {
            body["stream"] = .bool(true)
            body["stream_options"] = .object(["include_usage": .bool(true)])
        }
        if !request.tools.isEmpty {
            body["tools"] = .array(request.tools.map { tool in
                .object(["type": .string("function"),
                         "function": .object(["name": .string(names.wire(tool.name)),
                                              "description": .string(tool.description),
                                              "parameters": tool.parameters])])
            })
            switch request.toolChoice {
            case .auto: body["tool_choice"] = .string("auto")
            case .none: body["tool_choice"] = .string("none")
            case .required: body["tool_choice"] = .string("required")
            case .tool(let name):
                body["tool_choice"] = .object(["type": .string("function"),
                                               "function": .object(["name": .string(names.wire(name))])])
            }
        }
        return JSONValue.object(body).bytes
    }

    public func completion(from body: [UInt8], for request: ChatRequest) throws(ModelError) -> ChatCompletion {
        let names = WireToolNames(request.tools)
        let json = try JSONValue.decode(body, what: "the chat completion")
        if json["error"] != nil { throw Self.error(json["error"], status: nil, body: body) }
        guard let choice = json["choices"]?.array?.first, let message = choice["message"] else {
            throw ModelError(.badResponse, "the chat completion has no choices[0].message: \(ProviderText.excerpt(body))")
        }
        var completion = ChatCompletion(id: json["id"]?.string ?? "", model: json["model"]?.string ?? request.model,
                                        content: message["content"]?.string ?? "")
        for (position, call) in (message["tool_calls"]?.array ?? []).enumerated() {
            guard let function = call["function"], let name = function["name"]?.string else {
                throw ModelError(.badResponse, "a tool call without function.name: \(ProviderText.excerpt(call.bytes))")
            }
            // Arguments are JSON text; some servers send an object.
            let arguments: JSONValue = switch function["arguments"] {
            case .string(let text)?: ChatToolCall.arguments(fromText: text)
            case .object(let object)?: .object(object)
            default: .object([:])
            }
            completion.toolCalls.append(ChatToolCall(id: call["id"]?.string ?? "call_\(position)",
                                                     name: names.original(name), arguments: arguments))
        }
        completion.stopReason = Self.stopReason(choice["finish_reason"]?.string, toolCalls: !completion.toolCalls.isEmpty)
        completion.usage = Self.usage(json["usage"])
        return completion
    }

    static func stopReason(_ text: String?, toolCalls: Bool) -> StopReason {
        switch text {
        case "tool_calls", "function_call": .toolUse
        case "length": .maxTokens
        case "content_filter": .contentFilter
        case "stop": toolCalls ? .toolUse : .endTurn
        default: toolCalls ? .toolUse : .other
        }
    }

    static func usage(_ json: JSONValue?) -> TokenUsage {
        TokenUsage(input: json?["prompt_tokens"]?.int ?? 0, output: json?["completion_tokens"]?.int ?? 0)
    }

    public func error(status: Int, headers: [(String, String)], body: [UInt8]) -> ModelError {
        let json = JSONValue.parse(String(decoding: body, as: UTF8.self))
        var error = Self.error(json?["error"], status: status, body: body)
        error.retryAfterMilliseconds = ProviderText.retryAfter(headers)
        return error
    }

    /// `error.code` is a string at OpenAI and a number at llama.cpp; the
    /// message says "context" for a too-long conversation on every server.
    static func error(_ json: JSONValue?, status: Int?, body: [UInt8]) -> ModelError {
        let message = json?["message"]?.string ?? json?.string ?? ProviderText.excerpt(body)
        let code = json?["code"]?.string ?? ""
        let type = json?["type"]?.string ?? ""
        let lowered = message.lowercased()
        let kind: ModelError.Code
        if code == "context_length_exceeded" || type == "exceed_context_size_error"
            || lowered.contains("context length") || lowered.contains("context window") || lowered.contains("maximum context") {
            kind = .contextTooLong
        } else if code == "insufficient_quota" {
            kind = .budgetExhausted
        } else if code == "invalid_api_key" || type == "authentication_error" {
            kind = .authentication
        } else if code == "model_not_found" {
            kind = .notFound
        } else if code == "rate_limit_exceeded" || type == "rate_limit_error" || type == "tokens" || type == "requests" {
            kind = .rateLimited
        } else if type == "server_error" || type == "unavailable_error" {
            kind = .overloaded
        } else {
            kind = status.map(ProviderText.code(forStatus:)) ?? .badResponse
        }
        return ModelError(kind, "openai: \(message)", status: status)
    }

    public func streamDecoder(for request: ChatRequest) -> any ChatStreamDecoder {
        StreamDecoder(names: WireToolNames(request.tools), model: request.model)
    }

    struct StreamDecoder: ChatStreamDecoder {
        let names: WireToolNames
        var parser = ServerSentEventParser()
        var assembly = StreamAssembly()
        var done = false
        var finishReason: String?
        var started = Set<Int>()

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
            // Some servers close without [DONE] after the last chunk; a
            // finish_reason is the proof the answer is whole.
            guard done || finishReason != nil else {
                throw ModelError(.badResponse, "openai: the stream ended before [DONE]")
            }
            var completion = assembly.finished()
            completion.stopReason = OpenAIChat.stopReason(finishReason, toolCalls: !completion.toolCalls.isEmpty)
            return completion
        }

        private mutating func handle(_ event: ServerSentEvent) throws(ModelError) -> [ChatDelta] {
            if event.data == "[DONE]" {
                done = true
                return []
            }
            guard let json = JSONValue.parse(event.data) else {
                throw ModelError(.badResponse, "openai: a stream chunk that is not JSON: \(ProviderText.excerpt(Array(event.data.utf8)))")
            }
            if json["error"] != nil { throw OpenAIChat.error(json["error"], status: nil, body: Array(event.data.utf8)) }
            if let id = json["id"]?.string, assembly.completion.id.isEmpty { assembly.completion.id = id }
            if let model = json["model"]?.string { assembly.completion.model = model }
            if let usage = json["usage"], usage != .null { assembly.completion.usage = OpenAIChat.usage(usage) }
            var deltas: [ChatDelta] = []
            for choice in json["choices"]?.array ?? [] where (choice["index"]?.int ?? 0) == 0 {
                let delta = choice["delta"]
                if let text = delta?["content"]?.string, !text.isEmpty { deltas.append(.text(text)) }
                for call in delta?["tool_calls"]?.array ?? [] {
                    let index = call["index"]?.int ?? 0
                    if !started.contains(index) {
                        started.insert(index)
                        deltas.append(.toolCallStarted(index: index, id: call["id"]?.string ?? "call_\(index)",
                                                       name: names.original(call["function"]?["name"]?.string ?? "")))
                    }
                    switch call["function"]?["arguments"] {
                    case .string(let fragment)? where !fragment.isEmpty:
                        deltas.append(.toolArguments(index: index, fragment: fragment))
                    case .object(let object)?:
                        deltas.append(.toolArguments(index: index, fragment: JSONValue.object(object).text))
                    default:
                        break
                    }
                }
                if let reason = choice["finish_reason"]?.string { finishReason = reason }
            }
            for delta in deltas { assembly.apply(delta) }
            return deltas
        }
    }
}
