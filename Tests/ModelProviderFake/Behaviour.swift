import Foundation

/// What the HTTP handler writes for one request.
enum FakeResponse {
    /// A whole response with a Content-Length.
    case full(status: Int, headers: [(String, String)], body: [UInt8])
    /// 200, chunked; each event flushed as it is written. complete false: the
    /// connection is closed after the events, without the chunked terminator.
    case stream(headers: [(String, String)], events: [[UInt8]], complete: Bool)
    /// 200 with a Content-Length larger than the body sent; then the connection closes.
    case truncated(headers: [(String, String)], declaredLength: Int, body: [UInt8])
}

struct Plan {
    /// Milliseconds to wait (on the event loop's scheduler) before answering.
    var delayMilliseconds = 0
    var response: FakeResponse

    init(delayMilliseconds: Int = 0, _ response: FakeResponse) {
        self.delayMilliseconds = delayMilliseconds
        self.response = response
    }

    static func json(_ status: Int, _ body: Wire, headers: [(String, String)] = []) -> Plan {
        Plan(.full(status: status, headers: [("content-type", "application/json")] + headers, body: body.bytes))
    }

    /// The `garbage` model: 200, JSON content type, a body that is not JSON.
    static let garbage = Plan(.full(status: 200, headers: [("content-type", "application/json")],
                                    body: Array("this is not json".utf8)))
}

/// What a request's "model" asks the fake to do.
enum Behaviour: Equatable {
    enum Kind: Equatable { case echo, script }
    case answer(Kind, delayMilliseconds: Int, cut: Bool)
    case rateLimited
    case overloaded
    case tooLong
    case garbage
    case unknown

    /// Reads the model name; `count` increments and returns how many requests
    /// have named this exact model so far (this one included).
    static func of(model: String, count: (String) -> Int) -> Behaviour {
        switch model {
        case "echo": return .answer(.echo, delayMilliseconds: 0, cut: false)
        case "script": return .answer(.script, delayMilliseconds: 0, cut: false)
        case "too-long": return .tooLong
        case "garbage": return .garbage
        case "cut": return .answer(.echo, delayMilliseconds: 0, cut: true)
        default: break
        }
        if let limit = number(after: "rate-limit-", in: model) {
            return count(model) <= limit ? .rateLimited : .answer(.echo, delayMilliseconds: 0, cut: false)
        }
        if let limit = number(after: "overloaded-", in: model) {
            return count(model) <= limit ? .overloaded : .answer(.echo, delayMilliseconds: 0, cut: false)
        }
        if let milliseconds = number(after: "slow-", in: model) {
            return .answer(.echo, delayMilliseconds: milliseconds, cut: false)
        }
        return .unknown
    }

    private static func number(after prefix: String, in model: String) -> Int? {
        guard model.hasPrefix(prefix) else { return nil }
        let digits = model.dropFirst(prefix.count)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }
}

/// The parts of a conversation the fake's answers depend on, read from any
/// of the three request formats.
struct Conversation {
    /// Every text the request carries (system, messages, tool results): the input token count.
    var texts: [String] = []
    /// The text of each user message that has text, in order.
    var userTexts: [String] = []
    /// The content of each tool result, in order.
    var toolResults: [String] = []

    var inputTokens: Int { max(1, texts.reduce(0) { $0 + Text.words($1) }) }
}

enum Answer {
    case text(String)
    /// argumentsJSON: the call's arguments as JSON text (an object).
    case toolCall(index: Int, name: String, argumentsJSON: String)

    var outputTokens: Int {
        switch self {
        case .text(let text): return Text.words(text)
        case .toolCall(_, _, let arguments): return max(1, Text.words(arguments))
        }
    }

    struct ScriptError: Error { var message: String }

    static func make(_ kind: Behaviour.Kind, for conversation: Conversation) -> Result<Answer, ScriptError> {
        switch kind {
        case .echo:
            return .success(.text("echo: " + (conversation.userTexts.last ?? "")))
        case .script:
            return script(conversation)
        }
    }

    /// The `script` model: the first user message is
    /// {"calls":[{"tool":NAME,"arguments":{...}}, ...], "answer":TEXT}.
    private static func script(_ conversation: Conversation) -> Result<Answer, ScriptError> {
        guard let first = conversation.userTexts.first,
              let object = try? JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any]
        else { return .failure(ScriptError(message: "script: the first user message is not a JSON object")) }
        let calls = object["calls"] as? [Any] ?? []
        let answer = object["answer"] as? String ?? ""
        let done = conversation.toolResults.count
        if done < calls.count {
            guard let call = calls[done] as? [String: Any], let name = call["tool"] as? String else {
                return .failure(ScriptError(message: "script: calls[\(done)] has no \"tool\""))
            }
            let arguments = call["arguments"] ?? [String: Any]()
            guard arguments is [String: Any] else {
                return .failure(ScriptError(message: "script: calls[\(done)].arguments is not an object"))
            }
            return .success(.toolCall(index: done, name: name, argumentsJSON: Wire.serialise(arguments)))
        }
        if conversation.toolResults.isEmpty { return .success(.text(answer)) }
        return .success(.text(([answer] + conversation.toolResults).joined(separator: " | ")))
    }
}

/// Reading request JSON.
enum Read {
    /// A content that is a string, or a list of blocks/parts of which the
    /// {"type":"text","text":...} ones count; nil when it holds no text.
    static func text(_ content: Any?) -> String? {
        if let string = content as? String { return string }
        guard let blocks = content as? [Any] else { return nil }
        let texts = blocks.compactMap { block -> String? in
            guard let block = block as? [String: Any], block["type"] as? String == "text" else { return nil }
            return block["text"] as? String
        }
        return texts.isEmpty ? nil : texts.joined(separator: "\n")
    }

    static func isPresent(_ value: Any?) -> Bool {
        guard let value else { return false }
        return !(value is NSNull)
    }
}
