import AgentOSTools
import Foundation

/// The kinds of provider the gateway speaks to, each in its own documented
/// wire format.
public enum ProviderKind: String, Sendable, CaseIterable, Codable {
    /// Anthropic Messages API (`POST /v1/messages`, SSE streaming).
    case anthropic
    /// OpenAI Chat Completions (`POST /v1/chat/completions`, SSE streaming).
    case openai
    /// Ollama's chat API (`POST /api/chat`, NDJSON streaming).
    case ollama
    /// Any server speaking OpenAI Chat Completions: llama.cpp's server,
    /// llama-cpp-python, vLLM, LM Studio.
    case openaiCompatible = "openai-compatible"

    /// The request and response format of this kind.
    public var wire: any ProviderWire {
        switch self {
        case .anthropic: AnthropicMessages()
        case .openai: OpenAIChat(tokenField: "max_completion_tokens")
        case .openaiCompatible: OpenAIChat(tokenField: "max_tokens")
        case .ollama: OllamaChat()
        }
    }

    /// Where the provider is when the config names no base URL.
    public var defaultBaseURL: String? {
        switch self {
        case .anthropic: "https://api.anthropic.com"
        case .openai: "https://api.openai.com"
        case .ollama: "http://127.0.0.1:11434"
        case .openaiCompatible: nil
        }
    }

    /// Whether calls need an API key (a compatible server may or may not).
    public var needsKey: Bool {
        switch self {
        case .anthropic, .openai: true
        case .ollama, .openaiCompatible: false
        }
    }
}

/// One provider's wire format: the request it takes, the answer, the
/// stream and the error shapes it sends. Pure: no I/O.
public protocol ProviderWire: Sendable {
    /// Appended to the configured base URL.
    var path: String { get }
    /// Headers besides content-type (authentication, API version).
    func headers(apiKey: String?) -> [(String, String)]
    func body(for request: ChatRequest) throws(ModelError) -> [UInt8]
    /// A whole (not streamed) answer with a 2xx status.
    func completion(from body: [UInt8], for request: ChatRequest) throws(ModelError) -> ChatCompletion
    /// What a non-2xx answer means.
    func error(status: Int, headers: [(String, String)], body: [UInt8]) -> ModelError
    /// Reads a 2xx streamed answer, chunk by chunk.
    func streamDecoder(for request: ChatRequest) -> any ChatStreamDecoder
}

/// Reads one streamed answer: deltas as bytes arrive, the whole answer at
/// the end (or an error if the stream stopped short).
public protocol ChatStreamDecoder: Sendable {
    mutating func consume(_ bytes: [UInt8]) throws(ModelError) -> [ChatDelta]
    mutating func finish() throws(ModelError) -> ChatCompletion
}

/// Tool names on the wire: the registry's names hold '.', which OpenAI and
/// Anthropic do not allow (`^[a-zA-Z0-9_-]{1,64}$`); '.' becomes "__" and
/// answers are mapped back by the request's own list, so nothing is guessed.
struct WireToolNames: Sendable {
    private var toWire: [String: String] = [:]
    private var fromWire: [String: String] = [:]

    init(_ tools: [ChatTool]) {
        for tool in tools {
            let wire = Self.wireName(tool.name)
            toWire[tool.name] = wire
            fromWire[wire] = tool.name
        }
    }

    static func wireName(_ name: String) -> String { name.replacingOccurrences(of: ".", with: "__") }

    func wire(_ name: String) -> String { toWire[name] ?? Self.wireName(name) }
    /// The registry's name for what the model called; an unknown name as it came.
    func original(_ wire: String) -> String { fromWire[wire] ?? wire }
}

/// Builds a completion from streamed pieces.
struct StreamAssembly: Sendable {
    var completion = ChatCompletion()
    private var arguments: [Int: String] = [:]
    private var order: [Int] = []
    private var calls: [Int: ChatToolCall] = [:]

    mutating func apply(_ delta: ChatDelta) {
        switch delta {
        case .text(let text):
            completion.content += text
        case .toolCallStarted(let index, let id, let name):
            if calls[index] == nil { order.append(index) }
            calls[index] = ChatToolCall(id: id, name: name, arguments: .object([:]))
        case .toolArguments(let index, let fragment):
            arguments[index, default: ""] += fragment
        }
    }

    func finished() -> ChatCompletion {
        var result = completion
        result.toolCalls = order.compactMap { index in
            guard var call = calls[index] else { return nil }
            call.arguments = ChatToolCall.arguments(fromText: arguments[index] ?? "")
            return call
        }
        return result
    }
}

// MARK: JSON helpers

extension JSONValue {
    subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var int: Int? {
        switch self {
        case .integer(let value): Int(value)
        case .number(let value) where value.rounded() == value && abs(value) < 1e15: Int(value)
        default: nil
        }
    }

    var array: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    var isNull: Bool { self == .null }

    var bytes: [UInt8] { Array(text.utf8) }

    static func decode(_ bytes: [UInt8], what: String) throws(ModelError) -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw ModelError(.badResponse, "\(what) is not JSON: \(ProviderText.excerpt(bytes))")
        }
    }
}

enum ProviderText {
    /// The start of a body, on one line, for error messages.
    static func excerpt(_ bytes: [UInt8], limit: Int = 200) -> String {
        let text = String(decoding: bytes.prefix(limit), as: UTF8.self)
            .replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
        if text.isEmpty { return "(empty)" }
        return bytes.count > limit ? text + "…" : text
    }

    /// retry-after (seconds or an HTTP date) or retry-after-ms, in ms.
    static func retryAfter(_ headers: [(String, String)], now: Date = Date()) -> Int64? {
        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name }?.1.trimmingCharacters(in: .whitespaces)
        }
        if let text = header("retry-after-ms"), let milliseconds = Double(text), milliseconds >= 0 {
            return Int64(milliseconds)
        }
        guard let text = header("retry-after") else { return nil }
        if let seconds = Double(text), seconds >= 0 { return Int64(seconds * 1_000) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return max(0, Int64(date.timeIntervalSince(now) * 1_000))
    }

    /// The error code a status means when the body says nothing more.
    static func code(forStatus status: Int) -> ModelError.Code {
        switch status {
        case 401, 403: .authentication
        case 404: .notFound
        case 408: .timeout
        case 429: .rateLimited
        case 500...599: .overloaded
        default: .invalidRequest
        }
    }
}
