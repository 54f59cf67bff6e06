import AgentOSTools

/// Ollama's chat API (`POST /api/chat`): tool calls with object arguments
/// and no ids, generation settings under `options`, streaming by default
/// as one JSON object per line (the last with `"done": true` and the counts
/// `prompt_eval_count` / `eval_count`), errors as `{"error": "..."}`.
public struct OllamaChat: ProviderWire {
    public init() {}

    public var path: String { "/api/chat" }

    public func headers(apiKey: String?) -> [(String, String)] {
        apiKey.map { [("authorization", "Bearer \($0)")] } ?? []
    }

    public func body(for request: ChatRequest) throws(ModelError) -> [UInt8] {
        let names = WireToolNames(request.tools)
        switch request.toolChoice {
        case .required, .tool:
            throw ModelError(.invalidRequest, "ollama cannot be made to call a tool (tool_choice); use auto or none")
        case .auto, .none:
            break
        }
        var messages: [JSONValue] = []
        if !request.system.isEmpty {
            messages.append(.object(["role": .string("system"), "content": .string(request.system)]))
        }
        // Ollama gives no ids: the same id comes back each step, so a result
        // answers the nearest call before it with that id.
        var callNames: [String: String] = [:]
        for message in request.messages {
            for call in message.toolCalls { callNames[call.id] = call.name }
            switch message.role {
            case .user:
                messages.append(.object(["role": .string("user"), "content": .string(message.content)]))
            case .assistant:
                var object: [String: JSONValue] = ["role": .string("assistant"), "content": .string(message.content)]
                if !message.toolCalls.isEmpty {
                    object["tool_calls"] = .array(message.toolCalls.map { call in
                        let arguments: JSONValue = if case .object = call.arguments { call.arguments } else { .object([:]) }
                        return .object(["function": .object(["name": .string(names.wire(call.name)), "arguments": arguments])])
                    })
                }
                messages.append(.object(object))
            case .tool:
                var object: [String: JSONValue] = ["role": .string("tool"),
                                                   "content": .string(message.isError ? "ERROR: " + message.content : message.content)]
                if let name = callNames[message.toolCallID] { object["tool_name"] = .string(names.wire(name)) }
                messages.append(.object(object))
            }
        }
        var options: [String: JSONValue] = ["num_predict": .integer(Int64(request.maxTokens))]
        if let temperature = request.temperature { options["temperature"] = .number(temperature) }
        if !request.stop.isEmpty { options["stop"] = .array(request.stop.map(JSONValue.string)) }
        var body: [String: JSONValue] = [
            "model": .string(request.model),
            "messages": .array(messages),
            "stream": .bool(request.stream),   // Ollama streams unless told not to
            "options": .object(options),
        ]
        if !request.tools.isEmpty && request.toolChoice != .none {
            body["tools"] = .array(request.tools.map { tool in
                .object(["type": .string("function"),
                         "function": .object(["name": .string(names.wire(tool.name)),
                                              "description": .string(tool.description),
                                              "parameters": tool.parameters])])
            })
        }
        return JSONValue.object(body).bytes
    }

    public func completion(from body: [UInt8], for request: ChatRequest) throws(ModelError) -> ChatCompletion {
        let json = try JSONValue.decode(body, what: "the Ollama answer")
        var decoder = StreamDecoder(names: WireToolNames(request.tools), model: request.model)
        _ = try decoder.handle(json, raw: body)
        return try decoder.finish()
    }

    public func error(status: Int, headers: [(String, String)], body: [UInt8]) -> ModelError {
        let json = JSONValue.parse(String(decoding: body, as: UTF8.self))
        var error = Self.error(json?["error"]?.string ?? ProviderText.excerpt(body), status: status)
        error.retryAfterMilliseconds = ProviderText.retryAfter(headers)
        return error
    }

    static func error(_ message: String, status: Int?) -> ModelError {
        var code = status.map(ProviderText.code(forStatus:)) ?? .badResponse
        if message.contains("not found") { code = .notFound }
        if message.lowercased().contains("context") && message.lowercased().contains("exceed") { code = .contextTooLong }
        return ModelError(code, "ollama: \(message)", status: status)
    }

    public func streamDecoder(for request: ChatRequest) -> any ChatStreamDecoder {
        StreamDecoder(names: WireToolNames(request.tools), model: request.model)
    }

    struct StreamDecoder: ChatStreamDecoder {
        let names: WireToolNames
        var lines = LineSplitter()
        var assembly = StreamAssembly()
        var done = false
        var doneReason: String?
        var calls = 0

        init(names: WireToolNames, model: String) {
            self.names = names
            assembly.completion.model = model
        }

        mutating func consume(_ bytes: [UInt8]) throws(ModelError) -> [ChatDelta] {
            var deltas: [ChatDelta] = []
            for line in try lines.lines(in: bytes) where !line.isEmpty {
                deltas += try handle(line)
            }
            return deltas
        }

        mutating func finish() throws(ModelError) -> ChatCompletion {
            if let line = lines.finish(), !line.isEmpty { _ = try handle(line) }
            guard done else { throw ModelError(.badResponse, "ollama: the stream ended before \"done\": true") }
            var completion = assembly.finished()
            completion.stopReason = switch doneReason {
            case "length": .maxTokens
            case _ where !completion.toolCalls.isEmpty: .toolUse
            case "stop", nil: .endTurn
            default: .other
            }
            return completion
        }

        private mutating func handle(_ line: String) throws(ModelError) -> [ChatDelta] {
            guard let json = JSONValue.parse(line) else {
                throw ModelError(.badResponse, "ollama: a stream line that is not JSON: \(ProviderText.excerpt(Array(line.utf8)))")
            }
            return try handle(json, raw: Array(line.utf8))
        }

        mutating func handle(_ json: JSONValue, raw: [UInt8]) throws(ModelError) -> [ChatDelta] {
            if let message = json["error"]?.string { throw OllamaChat.error(message, status: nil) }
            guard json["done"] != nil else {
                throw ModelError(.badResponse, "ollama: an answer without \"done\": \(ProviderText.excerpt(raw))")
            }
            if let model = json["model"]?.string { assembly.completion.model = model }
            var deltas: [ChatDelta] = []
            if let text = json["message"]?["content"]?.string, !text.isEmpty { deltas.append(.text(text)) }
            for call in json["message"]?["tool_calls"]?.array ?? [] {
                let index = calls
                calls += 1
                let function = call["function"]
                deltas.append(.toolCallStarted(index: index, id: call["id"]?.string ?? "call_\(index)",
                                               name: names.original(function?["name"]?.string ?? "")))
                switch function?["arguments"] {
                case .object(let object)?:
                    deltas.append(.toolArguments(index: index, fragment: JSONValue.object(object).text))
                case .string(let text)?:
                    deltas.append(.toolArguments(index: index, fragment: text))
                default:
                    break
                }
            }
            if json["done"] == .bool(true) {
                done = true
                doneReason = json["done_reason"]?.string
                assembly.completion.usage = TokenUsage(input: json["prompt_eval_count"]?.int ?? 0,
                                                       output: json["eval_count"]?.int ?? 0)
            }
            for delta in deltas { assembly.apply(delta) }
            return deltas
        }
    }
}
