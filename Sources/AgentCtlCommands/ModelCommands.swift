import AgentOSProtocol
import ArgumentParser
import Foundation

/// `agentctl models`: the providers the kernel's gateway knows.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "The model providers the kernel can call: kind, endpoint, whether it has their key, models and prices.",
        discussion: """
            Providers come from agentd's config file (--config; without one: anthropic, openai \
            and ollama at their usual endpoints). Keys stay in the kernel: this shows only the \
            name of the variable or secrets entry that holds each key, and whether the kernel \
            has it. Agents call a model as PROVIDER:MODEL and need \
            capability://model/PROVIDER:MODEL?action=complete.

            Examples:
              agentctl models
              agentctl models --json
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        guard case .models(let list) = try connection.withKernel({ try $0.call(.models(Agentos_V1_ModelListRequest())) }) else {
            throw unexpectedResponse("models")
        }
        if output.json {
            Output.json(list.providers.map(ProviderJSON.init))
            return
        }
        Output.table(["PROVIDER", "KIND", "ENDPOINT", "KEY", "CONCURRENCY", "MODELS"], list.providers.map { provider in
            let key = provider.keyName.isEmpty ? "-" : "\(provider.keyName) (\(provider.keyPresent ? "set" : "missing"))"
            let models = provider.models.isEmpty ? "any" : provider.models.map { model in
                let name = String(model.name.dropFirst(provider.name.count + 1))
                return model.inputPrice > 0 || model.outputPrice > 0
                    ? "\(name) ($\(Self.price(model.inputPrice))/$\(Self.price(model.outputPrice)) per Mtok)" : name
            }.joined(separator: ", ")
            return [provider.name, provider.kind, provider.baseURL, key, String(provider.concurrency), models]
        })
    }

    static func price(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.3g", value)
    }
}

struct ProviderJSON: Encodable {
    struct Model: Encodable {
        let name: String
        let input_price: Double?
        let output_price: Double?
    }

    let name: String
    let kind: String
    let base_url: String
    let key_name: String?
    let key_present: Bool
    let concurrency: UInt32
    let models: [Model]

    init(_ provider: Agentos_V1_ModelProviderInfo) {
        name = provider.name
        kind = provider.kind
        base_url = provider.baseURL
        key_name = provider.keyName.isEmpty ? nil : provider.keyName
        key_present = provider.keyPresent
        concurrency = provider.concurrency
        models = provider.models.map { model in
            let priced = model.inputPrice > 0 || model.outputPrice > 0
            return Model(name: model.name, input_price: priced ? model.inputPrice : nil, output_price: priced ? model.outputPrice : nil)
        }
    }
}

/// `agentctl complete`: one model call through the kernel's gateway.
struct CompleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "complete",
        abstract: "Ask a model one question through the kernel's gateway (an operator's call: no capability needed).",
        discussion: """
            The kernel calls the provider with the key it holds, retries rate limits and \
            overload, and records a model.completed event with the tokens used (never the \
            text, never the key). With --stream the answer is printed as it arrives.

            Examples:
              agentctl complete local:smollm2 "Name three colours."
              agentctl complete anthropic:claude-sonnet-4-5 --system "Answer in one word." "Capital of France?"
              agentctl complete ollama:llama3.2 --stream --max-tokens 200 "Write a haiku about pipes."
              agentctl complete openai:gpt-4.1 --json "2+2?"
            """)

    @Argument(help: ArgumentHelp("PROVIDER:MODEL (agentctl models lists the providers).", valueName: "model"))
    var model: String
    @Argument(help: ArgumentHelp("The user message; '-' reads it from standard input.", valueName: "prompt"))
    var prompt: String
    @Option(name: .long, help: ArgumentHelp("The system prompt.", valueName: "text"))
    var system: String?
    @Option(name: .customLong("max-tokens"), help: ArgumentHelp("Most tokens of answer.", valueName: "n"))
    var maxTokens: UInt32 = 1_024
    @Option(name: .long, help: ArgumentHelp("Sampling temperature, 0-2.", valueName: "t"))
    var temperature: Double?
    @Option(name: .long, help: ArgumentHelp("Give up after this long, retries included (e.g. 30s, 2m).", valueName: "duration"))
    var timeout: String?
    @Flag(name: .long, help: "Print the answer as it arrives.")
    var stream = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if maxTokens == 0 { throw ValidationError("--max-tokens must be at least 1") }
        if let temperature, !(0...2).contains(temperature) { throw ValidationError("--temperature must be 0-2") }
        if let timeout {
            guard let milliseconds = try? Units.milliseconds(timeout), milliseconds >= 1 else {
                throw ValidationError("--timeout \(timeout): give a duration like 30s or 2m")
            }
        }
    }

    func run() throws {
        var request = Agentos_V1_ModelCompleteRequest()
        request.model = model
        if let system { request.system = system }
        var message = Agentos_V1_ModelMessage()
        message.role = "user"
        message.content = prompt == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : prompt
        request.messages = [message]
        request.maxTokens = maxTokens
        if let temperature { request.temperature = temperature }
        if let timeout { request.timeoutMs = UInt64(max(1, try Units.milliseconds(timeout))) }
        request.stream = stream
        let completion: Agentos_V1_ModelCompletion
        if stream {
            var last: Agentos_V1_ModelCompletion?
            let json = output.json
            try connection.withKernel { client in
                _ = try client.stream(.modelComplete(request)) { item in
                    switch item {
                    case .modelDelta(let delta) where !json:
                        if !delta.text.isEmpty { Output.write(delta.text) }
                    case .modelCompletion(let whole):
                        last = whole
                    default:
                        break
                    }
                    return true
                }
            }
            guard let last else { throw unexpectedResponse("complete") }
            completion = last
            if !json { Output.line("") }
        } else {
            guard case .modelComplete(let whole) = try connection.withKernel({ try $0.call(.modelComplete(request)) }) else {
                throw unexpectedResponse("complete")
            }
            completion = whole
            if !output.json { Output.line(completion.content) }
        }
        if output.json {
            Output.json(CompletionJSON(completion))
            return
        }
        for call in completion.toolCalls { Output.line("tool call \(call.id): \(call.name) \(call.argumentsJson)") }
        let cost = completion.usage.costMicrodollars > 0
            ? String(format: ", $%.6f", Double(completion.usage.costMicrodollars) / 1_000_000) : ""
        Output.error("\(completion.model) (\(completion.providerModel)): \(completion.usage.inputTokens) in, "
                     + "\(completion.usage.outputTokens) out\(cost), \(completion.stopReason), "
                     + "\(completion.durationUs / 1_000) ms, \(completion.attempts) attempt(s)", prefix: "")
    }
}

struct CompletionJSON: Encodable {
    struct ToolCall: Encodable {
        let id: String
        let name: String
        let arguments: String
    }

    let call_id: String
    let model: String
    let provider_model: String
    let content: String
    let tool_calls: [ToolCall]
    let stop_reason: String
    let input_tokens: UInt64
    let output_tokens: UInt64
    let cost_microdollars: UInt64
    let attempts: UInt32
    let duration_ms: Int64

    init(_ completion: Agentos_V1_ModelCompletion) {
        call_id = completion.callID
        model = completion.model
        provider_model = completion.providerModel
        content = completion.content
        tool_calls = completion.toolCalls.map { ToolCall(id: $0.id, name: $0.name, arguments: $0.argumentsJson) }
        stop_reason = completion.stopReason
        input_tokens = completion.usage.inputTokens
        output_tokens = completion.usage.outputTokens
        cost_microdollars = completion.usage.costMicrodollars
        attempts = completion.attempts
        duration_ms = completion.durationUs / 1_000
    }
}
