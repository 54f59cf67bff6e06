import AgentOSTools

/// One model call in the gateway's own terms; each provider's wire type
/// turns it into that provider's request body.
public struct ChatRequest: Sendable, Equatable {
    public var model: String
    /// The system prompt (Anthropic's `system`, a first `system` message for the others).
    public var system: String
    public var messages: [ChatMessage]
    public var tools: [ChatTool]
    public var toolChoice: ToolChoice
    public var maxTokens: Int
    public var temperature: Double?
    public var stop: [String]
    public var stream: Bool

    public init(model: String, system: String = "", messages: [ChatMessage], tools: [ChatTool] = [],
                toolChoice: ToolChoice = .auto, maxTokens: Int = 1_024, temperature: Double? = nil,
                stop: [String] = [], stream: Bool = false) {
        self.model = model
        self.system = system
        self.messages = messages
        self.tools = tools
        self.toolChoice = toolChoice
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.stop = stop
        self.stream = stream
    }

    /// Which tool the model should call, if any.
    public enum ToolChoice: Sendable, Equatable {
        case auto
        case none
        /// Some tool (Anthropic `any`, OpenAI `required`).
        case required
        case tool(String)

        /// `""`/`auto`, `none`, `required`/`any`, or a tool's name.
        public init(parsing text: String) {
            switch text {
            case "", "auto": self = .auto
            case "none": self = .none
            case "required", "any": self = .required
            default: self = .tool(text)
            }
        }
    }

    /// Why the request cannot be sent as it is (checked before any provider
    /// is asked, the same for all of them).
    public func problem() -> String? {
        if messages.isEmpty { return "at least one message is needed" }
        if maxTokens < 1 || maxTokens > 1_000_000 { return "max_tokens must be 1-1000000, not \(maxTokens)" }
        if let temperature, !(0...2).contains(temperature) { return "temperature must be 0-2, not \(temperature)" }
        if stop.count > 16 { return "at most 16 stop sequences" }
        var names = Set<String>()
        for tool in tools {
            guard ChatTool.isName(tool.name) else {
                return "tool name '\(tool.name)' must be 1-64 letters, digits, '_', '-' or '.'"
            }
            guard names.insert(tool.name).inserted else { return "tool '\(tool.name)' is listed twice" }
            guard case .object = tool.parameters else { return "tool '\(tool.name)': parameters must be a JSON Schema object" }
        }
        if case .tool(let name) = toolChoice, !names.contains(name) {
            return "tool_choice names '\(name)', which is not among the tools"
        }
        if toolChoice == .required && tools.isEmpty { return "tool_choice required needs tools" }
        var open = Set<String>()
        for (index, message) in messages.enumerated() {
            switch message.role {
            case .user:
                if message.content.isEmpty { return "message \(index): a user message needs content" }
            case .assistant:
                if message.content.isEmpty && message.toolCalls.isEmpty {
                    return "message \(index): an assistant message needs content or tool calls"
                }
                for call in message.toolCalls {
                    guard !call.id.isEmpty else { return "message \(index): a tool call without an id" }
                    guard case .object = call.arguments else { return "message \(index): tool call \(call.id)'s arguments are not an object" }
                    open.insert(call.id)
                }
            case .tool:
                guard !message.toolCallID.isEmpty else { return "message \(index): a tool message needs tool_call_id" }
                guard open.contains(message.toolCallID) else {
                    return "message \(index): tool_call_id '\(message.toolCallID)' answers no earlier assistant tool call"
                }
            }
        }
        return nil
    }
}

public struct ChatMessage: Sendable, Equatable {
    public enum Role: String, Sendable, Equatable {
        case user, assistant, tool
    }

    public var role: Role
    public var content: String
    /// Assistant: the calls the model asked for.
    public var toolCalls: [ChatToolCall]
    /// Tool: the call this answers, and whether the result is an error.
    public var toolCallID: String
    public var isError: Bool

    public init(role: Role, content: String, toolCalls: [ChatToolCall] = [], toolCallID: String = "", isError: Bool = false) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.isError = isError
    }

    public static func user(_ text: String) -> ChatMessage { ChatMessage(role: .user, content: text) }
}

public struct ChatToolCall: Sendable, Equatable {
    public var id: String
    public var name: String
    /// The arguments object as the model gave it. A model that produced
    /// text that is not a JSON object gets `.string(thatText)` here, so the
    /// caller can hand the problem back to it as a tool error.
    public var arguments: JSONValue

    public init(id: String, name: String, arguments: JSONValue) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }

    /// The arguments as text: the object's JSON, or what the model wrote.
    public var argumentsText: String {
        if case .string(let raw) = arguments { return raw }
        return arguments.text
    }

    /// Arguments text from a model: an object, or kept as the raw text.
    public static func arguments(fromText text: String) -> JSONValue {
        if text.isEmpty { return .object([:]) }
        if let value = JSONValue.parse(text), case .object = value { return value }
        return .string(text)
    }
}

public struct ChatTool: Sendable, Equatable {
    public var name: String
    public var description: String
    /// A JSON Schema object.
    public var parameters: JSONValue

    public init(name: String, description: String, parameters: JSONValue) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }

    /// Names every provider accepts (OpenAI: `^[a-zA-Z0-9_-]{1,64}$`;
    /// '.' is kept for the registry's names and mapped on the wire).
    static func isName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0)
        }
    }
}

/// Token counts as the provider reported them.
public struct TokenUsage: Sendable, Equatable {
    public var input: Int
    public var output: Int

    public init(input: Int = 0, output: Int = 0) {
        self.input = input
        self.output = output
    }

    public var total: Int { input + output }

    /// Counts for an answer whose provider reported none: about four bytes
    /// a token in, about a token a streamed piece (or four bytes) out.
    public static func estimated(inputBytes: Int, pieces: Int, outputBytes: Int = 0) -> TokenUsage {
        TokenUsage(input: max(1, inputBytes / 4), output: max(pieces, outputBytes / 4))
    }
}

/// Why the model stopped, in one vocabulary for every provider.
public enum StopReason: String, Sendable, Equatable {
    case endTurn = "end_turn"
    case maxTokens = "max_tokens"
    case toolUse = "tool_use"
    case stopSequence = "stop_sequence"
    case contentFilter = "content_filter"
    case other = "other"
}

/// A finished answer.
public struct ChatCompletion: Sendable, Equatable {
    public var id: String
    /// The model as the provider named it in its answer.
    public var model: String
    public var content: String
    public var toolCalls: [ChatToolCall]
    public var stopReason: StopReason
    public var usage: TokenUsage

    public init(id: String = "", model: String = "", content: String = "", toolCalls: [ChatToolCall] = [],
                stopReason: StopReason = .endTurn, usage: TokenUsage = TokenUsage()) {
        self.id = id
        self.model = model
        self.content = content
        self.toolCalls = toolCalls
        self.stopReason = stopReason
        self.usage = usage
    }
}

/// A piece of a streamed answer, as it arrives.
public enum ChatDelta: Sendable, Equatable {
    case text(String)
    /// A tool call began (its position among the answer's calls).
    case toolCallStarted(index: Int, id: String, name: String)
    /// More of a tool call's arguments text.
    case toolArguments(index: Int, fragment: String)
}
