import AgentOSProtocol
import Foundation

// Model calls through the kernel's gateway: the kernel holds the keys,
// checks capability://model/PROVIDER:MODEL, retries, and charges tokens.

/// One turn of a conversation with a model (Codable: an agent keeps its
/// conversation in its checkpoint).
public struct ModelMessage: Sendable, Equatable, Codable {
    public enum Role: String, Sendable, Codable {
        case user, assistant, tool
    }

    public var role: Role
    public var content: String
    /// Assistant: the tool calls the model asked for.
    public var toolCalls: [ModelToolCall]
    /// Tool: the call this result answers, and whether it is an error.
    public var toolCallID: String
    public var isError: Bool

    public init(role: Role, content: String, toolCalls: [ModelToolCall] = [], toolCallID: String = "", isError: Bool = false) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.isError = isError
    }

    public static func user(_ text: String) -> ModelMessage { ModelMessage(role: .user, content: text) }

    public static func assistant(_ text: String, toolCalls: [ModelToolCall] = []) -> ModelMessage {
        ModelMessage(role: .assistant, content: text, toolCalls: toolCalls)
    }

    public static func toolResult(_ callID: String, _ content: String, isError: Bool = false) -> ModelMessage {
        ModelMessage(role: .tool, content: content, toolCallID: callID, isError: isError)
    }

    var wire: Agentos_V1_ModelMessage {
        var wire = Agentos_V1_ModelMessage()
        wire.role = role.rawValue
        wire.content = content
        wire.toolCalls = toolCalls.map(\.wire)
        wire.toolCallID = toolCallID
        wire.isError = isError
        return wire
    }
}

/// A tool call the model asked for: the tool's registry name and its
/// arguments as JSON text (what the model wrote, if it is not an object).
public struct ModelToolCall: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var argumentsJSON: String

    public init(id: String, name: String, argumentsJSON: String) {
        self.id = id
        self.name = name
        self.argumentsJSON = argumentsJSON
    }

    init(_ wire: Agentos_V1_ModelToolCall) {
        self.init(id: wire.id, name: wire.name, argumentsJSON: wire.argumentsJson)
    }

    var wire: Agentos_V1_ModelToolCall {
        var wire = Agentos_V1_ModelToolCall()
        wire.id = id
        wire.name = name
        wire.argumentsJson = argumentsJSON
        return wire
    }
}

/// A tool offered to the model.
public struct ModelTool: Sendable, Equatable {
    public var name: String
    public var description: String
    /// A JSON Schema object, as text.
    public var parametersSchema: String

    public init(name: String, description: String, parametersSchema: String) {
        self.name = name
        self.description = description
        self.parametersSchema = parametersSchema
    }

    /// A registry tool (`Agent.tools()`), offered as it is.
    public init(_ tool: Agentos_V1_ToolInfo) {
        self.init(name: tool.name, description: tool.description_p, parametersSchema: tool.parametersSchema)
    }
}

/// What to ask a model.
public struct ModelRequest: Sendable {
    /// PROVIDER:MODEL, e.g. anthropic:claude-sonnet-4-5.
    public var model: String
    public var system: String
    public var messages: [ModelMessage]
    public var tools: [ModelTool]
    /// auto, none, required, or a tool's name.
    public var toolChoice: String
    public var maxTokens: Int
    public var temperature: Double?
    public var stop: [String]
    /// The whole call, the kernel's retries included; nil: the provider's timeout.
    public var timeout: Duration?

    public init(model: String, system: String = "", messages: [ModelMessage], tools: [ModelTool] = [],
                toolChoice: String = "auto", maxTokens: Int = 1_024, temperature: Double? = nil, stop: [String] = [],
                timeout: Duration? = nil) {
        self.model = model
        self.system = system
        self.messages = messages
        self.tools = tools
        self.toolChoice = toolChoice
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.stop = stop
        self.timeout = timeout
    }

    func wire(stream: Bool) -> Agentos_V1_ModelCompleteRequest {
        var wire = Agentos_V1_ModelCompleteRequest()
        wire.model = model
        wire.system = system
        wire.messages = messages.map(\.wire)
        wire.tools = tools.map { tool in
            var entry = Agentos_V1_ModelTool()
            entry.name = tool.name
            entry.description_p = tool.description
            entry.parametersSchema = tool.parametersSchema
            return entry
        }
        wire.toolChoice = toolChoice
        wire.maxTokens = UInt32(clamping: maxTokens)
        if let temperature { wire.temperature = temperature }
        wire.stop = stop
        wire.stream = stream
        if let timeout {
            let (seconds, attoseconds) = timeout.components
            wire.timeoutMs = UInt64(max(1, seconds * 1_000 + attoseconds / 1_000_000_000_000_000))
        }
        return wire
    }
}

/// A model's answer, with what it cost.
public struct ModelAnswer: Sendable {
    public let callID: String
    public let model: String
    /// The model as the provider named it.
    public let providerModel: String
    public let content: String
    public let toolCalls: [ModelToolCall]
    /// end_turn, max_tokens, tool_use, stop_sequence, content_filter, other.
    public let stopReason: String
    public let inputTokens: Int
    public let outputTokens: Int
    public let costMicrodollars: Int
    public let attempts: Int

    init(_ wire: Agentos_V1_ModelCompletion) {
        callID = wire.callID
        model = wire.model
        providerModel = wire.providerModel
        content = wire.content
        toolCalls = wire.toolCalls.map(ModelToolCall.init)
        stopReason = wire.stopReason
        inputTokens = Int(wire.usage.inputTokens)
        outputTokens = Int(wire.usage.outputTokens)
        costMicrodollars = Int(wire.usage.costMicrodollars)
        attempts = Int(wire.attempts)
    }

    /// The assistant turn to append to the conversation.
    public var message: ModelMessage { .assistant(content, toolCalls: toolCalls) }
}

/// A piece of a streamed answer.
public enum ModelStreamEvent: Sendable {
    case text(String)
    case toolCallStarted(index: Int, id: String, name: String)
    case toolArguments(index: Int, fragment: String)
    /// The last event: the whole answer.
    case finished(ModelAnswer)
}

extension Agent {
    /// Asks a model; needs capability://model/PROVIDER:MODEL?action=complete.
    /// A spent token allowance is `.kernel(.resourceExhausted)`; a provider's
    /// failure after the kernel's retries `.kernel(.modelFailed)` with
    /// `detail["reason"]` (rate_limited, overloaded, context_too_long, ...).
    public func complete(_ request: ModelRequest) async throws -> ModelAnswer {
        guard case .modelComplete(let answer) = try await link.call(.modelComplete(request.wire(stream: false))) else {
            throw Self.unexpected("model_complete")
        }
        return ModelAnswer(answer)
    }

    /// Asks a model and hands out its answer as it arrives, ending with `.finished`.
    public func completeStreaming(_ request: ModelRequest) -> AsyncThrowingStream<ModelStreamEvent, any Error> {
        link.stream(.modelComplete(request.wire(stream: true))) { item in
            switch item {
            case .modelDelta(let delta):
                if !delta.toolName.isEmpty || !delta.toolCallID.isEmpty {
                    return .toolCallStarted(index: Int(delta.toolIndex), id: delta.toolCallID, name: delta.toolName)
                }
                if !delta.argumentsFragment.isEmpty {
                    return .toolArguments(index: Int(delta.toolIndex), fragment: delta.argumentsFragment)
                }
                return .text(delta.text)
            case .modelCompletion(let whole):
                return .finished(ModelAnswer(whole))
            default:
                return nil
            }
        }
    }
}
