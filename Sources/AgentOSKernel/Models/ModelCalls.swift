import AgentOSModels
import AgentOSProtocol
import AgentOSTools
import Foundation
import Synchronization

/// `model_complete` and `models`: a call of an agent (checked against
/// `capability://model/PROVIDER:MODEL`, its tokens charged to the grant) or
/// of an operator, through the gateway; recorded as an event without its
/// content (and never with a key).
struct ModelCalls {
    let services: KernelServices

    /// Who asks: an agent (checked and charged) or an operator.
    enum Caller {
        case agent(id: String)
        case `operator`
    }

    func complete(_ request: Agentos_V1_ModelCompleteRequest, caller: Caller,
                  onDelta: @escaping @Sendable (Agentos_V1_ModelDelta) async throws -> Void) async throws -> Agentos_V1_ModelCompletion {
        let callID = randomHexID(length: 12)
        let gateway = services.models
        let name: ModelName
        var chat: ChatRequest
        do {
            name = try ModelName(parsing: request.model)
            chat = try Self.chatRequest(request)
        } catch {
            throw Self.kernelError(error)
        }
        var agentID = ""
        var agentName = "operator"
        var grantID = ""
        var group = "operator"
        var priority = 0
        var identity = ""
        var accounts: [String] = []
        var reservation: ModelBudgets.Reservation?
        defer { reservation.map(services.budgets.release) }
        if case .agent(let id) = caller {
            let agent = try await services.lifecycle.resolve(id)
            agentID = id
            agentName = agent.name
            identity = try await services.bus.agent(id, lifecycle: services.lifecycle).identity
            group = identity.split(separator: "/").first.map(String.init) ?? id
            priority = await services.goals.priority(of: identity) ?? 0
            switch services.capabilities.check(agentID: id, agentName: agent.name, kind: .model, action: "complete",
                                               resource: name.description) {
            case .denied(let reasons):
                throw KernelError(.permissionDenied, "calling \(name) needs capability://model/\(name)?action=complete: "
                                      + reasons.joined(separator: "; "))
            case .allowed(let id, _):
                grantID = id
            }
            // The grant's token allowance bounds what the answer may spend.
            if let grant = services.capabilities.grant(id: grantID), let left = services.capabilities.remainingTokens(grant) {
                chat.maxTokens = max(1, min(chat.maxTokens, left))
            }
            // So do the budgets of the agent, its supervisors, its policy and its spawner.
            accounts = services.budgets.chain(for: identity)
            do {
                let held = try services.budgets.admit(accounts, maxTokens: chat.maxTokens)
                reservation = held
                if let left = held.tokens { chat.maxTokens = max(1, min(chat.maxTokens, left)) }
            } catch {
                _ = try? services.events.record("model.refused", agentID: id, "\(agent.name)'s call to \(name) was refused: \(error.message)",
                                                data: ["model": name.description, "reason": "budget",
                                                       "account": error.detail["account"] ?? ""])
                throw error
            }
        }
        var recorded: [String: String] = ["call": callID, "model": name.description, "stream": request.stream ? "true" : "false"]
        if !grantID.isEmpty { recorded["grant"] = grantID }
        let outcome: ModelGateway.Outcome
        let pieces = PieceCount()
        let price = (try? gateway.configuration.settings(for: name))?.price(of: name.model)
        /// Charges the grant chain and the budgets, records the counts; the cost.
        func charge(_ usage: TokenUsage, estimated: Bool) -> Int64 {
            let cost = price?.microdollars(usage) ?? 0
            if !grantID.isEmpty { services.capabilities.charge(tokens: usage.total, to: grantID) }
            if !accounts.isEmpty { services.budgets.charge(accounts, usage: usage, costMicrodollars: cost) }
            recorded["input_tokens"] = String(usage.input)
            recorded["output_tokens"] = String(usage.output)
            recorded["cost_microdollars"] = String(cost)
            if estimated { recorded["usage"] = "estimated" }
            return cost
        }
        // A stream that ended early still used what it delivered: charged
        // (estimated), so hanging up mid-answer is not a way around a budget.
        func chargePartial() {
            guard pieces.value > 0 else { return }
            let input = chat.system.utf8.count + chat.messages.reduce(0) { $0 + $1.content.utf8.count }
            _ = charge(.estimated(inputBytes: input, pieces: pieces.value), estimated: true)
        }
        do {
            outcome = try await gateway.complete(chat, model: name, priority: priority, group: group,
                                                 timeoutMilliseconds: request.timeoutMs == 0 ? nil : Int64(min(request.timeoutMs, 3_600_000)),
                                                 onDelta: { delta in
                                                     pieces.add()
                                                     try await onDelta(Self.wire(delta))
                                                 })
        } catch let error as ModelError {
            chargePartial()
            recorded["reason"] = error.code.rawValue
            if let status = error.status { recorded["status"] = String(status) }
            _ = try? services.events.record("model.failed", agentID: agentID,
                                            "\(agentName)'s call to \(name) failed: \(error.message)", data: recorded)
            throw Self.kernelError(error)
        } catch {
            chargePartial()
            throw error
        }
        let usage = outcome.completion.usage
        let cost = charge(usage, estimated: outcome.usageEstimated)
        recorded["attempts"] = String(outcome.attempts)
        recorded["duration_ms"] = String(outcome.durationNanoseconds / 1_000_000)
        recorded["stop_reason"] = outcome.completion.stopReason.rawValue
        _ = try? services.events.record("model.completed", agentID: agentID,
                                        "\(agentName) called \(name): \(usage.input)+\(usage.output) tokens", data: recorded)
        var completion = Self.wire(outcome.completion)
        completion.callID = callID
        completion.model = name.description
        completion.usage.costMicrodollars = UInt64(max(0, cost))
        completion.usage.estimated = outcome.usageEstimated
        completion.attempts = UInt32(outcome.attempts)
        completion.durationUs = outcome.durationNanoseconds / 1_000
        completion.grantID = grantID
        return completion
    }

    func list() -> Agentos_V1_ModelList {
        var list = Agentos_V1_ModelList()
        let gateway = services.models
        list.providers = gateway.configuration.providers.values.sorted { $0.name < $1.name }.map { settings in
            var info = Agentos_V1_ModelProviderInfo()
            info.name = settings.name
            info.kind = settings.kind.rawValue
            info.baseURL = settings.baseURL
            info.keyName = settings.keyName ?? ""
            info.keyPresent = settings.keyName.map { gateway.keys.key($0) != nil } ?? false
            info.concurrency = UInt32(settings.concurrency)
            info.models = (settings.models ?? [:]).keys.sorted().map { model in
                var entry = Agentos_V1_ModelInfo()
                entry.name = "\(settings.name):\(model)"
                if let price = settings.price(of: model) {
                    entry.inputPrice = price.input
                    entry.outputPrice = price.output
                }
                return entry
            }
            return info
        }
        return list
    }

    // MARK: Wire conversions

    static func chatRequest(_ request: Agentos_V1_ModelCompleteRequest) throws -> ChatRequest {
        var messages: [ChatMessage] = []
        for (index, message) in request.messages.enumerated() {
            guard let role = ChatMessage.Role(rawValue: message.role) else {
                throw ModelError(.invalidRequest, "message \(index): role '\(message.role)' is not user, assistant or tool"
                                     + (message.role == "system" ? " (the system prompt goes in the request's system field)" : ""))
            }
            let calls = try message.toolCalls.map { call throws -> ChatToolCall in
                guard let arguments = JSONValue.parse(call.argumentsJson.isEmpty ? "{}" : call.argumentsJson) else {
                    return ChatToolCall(id: call.id, name: call.name, arguments: .string(call.argumentsJson))
                }
                guard case .object = arguments else {
                    throw ModelError(.invalidRequest, "message \(index): tool call \(call.id)'s arguments are not a JSON object")
                }
                return ChatToolCall(id: call.id, name: call.name, arguments: arguments)
            }
            messages.append(ChatMessage(role: role, content: message.content, toolCalls: calls,
                                        toolCallID: message.toolCallID, isError: message.isError))
        }
        let tools = try request.tools.map { tool throws -> ChatTool in
            let schema = tool.parametersSchema.isEmpty ? #"{"type":"object"}"# : tool.parametersSchema
            guard let parameters = JSONValue.parse(schema), case .object = parameters else {
                throw ModelError(.invalidRequest, "tool '\(tool.name)': parameters_schema is not a JSON object")
            }
            return ChatTool(name: tool.name, description: tool.description_p, parameters: parameters)
        }
        return ChatRequest(model: request.model, system: request.system, messages: messages, tools: tools,
                           toolChoice: ChatRequest.ToolChoice(parsing: request.toolChoice),
                           maxTokens: request.maxTokens == 0 ? 1_024 : Int(request.maxTokens),
                           temperature: request.hasTemperature ? request.temperature : nil,
                           stop: request.stop, stream: request.stream)
    }

    static func wire(_ completion: ChatCompletion) -> Agentos_V1_ModelCompletion {
        var wire = Agentos_V1_ModelCompletion()
        wire.providerModel = completion.model
        wire.content = completion.content
        wire.toolCalls = completion.toolCalls.map { call in
            var entry = Agentos_V1_ModelToolCall()
            entry.id = call.id
            entry.name = call.name
            entry.argumentsJson = call.argumentsText
            return entry
        }
        wire.stopReason = completion.stopReason.rawValue
        wire.usage.inputTokens = UInt64(completion.usage.input)
        wire.usage.outputTokens = UInt64(completion.usage.output)
        return wire
    }

    static func wire(_ account: ModelBudgets.Account) -> Agentos_V1_ModelAccount {
        var wire = Agentos_V1_ModelAccount()
        wire.account = account.name
        wire.inputTokens = UInt64(max(0, account.spend.inputTokens))
        wire.outputTokens = UInt64(max(0, account.spend.outputTokens))
        wire.costMicrodollars = UInt64(max(0, account.spend.costMicrodollars))
        wire.calls = UInt64(max(0, account.spend.calls))
        if let budget = account.budget {
            if let tokens = budget.tokens { wire.budget.tokens = UInt64(tokens) }
            if let cost = budget.costMicrodollars { wire.budget.costMicrodollars = UInt64(cost) }
            if let rate = budget.requestsPerMinute { wire.budget.requestsPerMinute = UInt32(rate) }
        }
        return wire
    }

    static func wire(_ delta: ChatDelta) -> Agentos_V1_ModelDelta {
        var wire = Agentos_V1_ModelDelta()
        switch delta {
        case .text(let text):
            wire.text = text
        case .toolCallStarted(let index, let id, let name):
            wire.toolIndex = UInt32(index)
            wire.toolCallID = id
            wire.toolName = name
        case .toolArguments(let index, let fragment):
            wire.toolIndex = UInt32(index)
            wire.argumentsFragment = fragment
        }
        return wire
    }

    /// A model error as the agent sees it: a budget is resource_exhausted,
    /// a bad ask invalid_argument, an unknown model not_found, a provider's
    /// failure model_failed with the reason.
    static func kernelError(_ error: any Error) -> KernelError {
        guard let error = error as? ModelError else { return KernelError.from(error) }
        var detail = ["reason": error.code.rawValue]
        if let status = error.status { detail["status"] = String(status) }
        if let wait = error.retryAfterMilliseconds { detail["retry_after_ms"] = String(wait) }
        switch error.code {
        case .invalidRequest: return KernelError(.invalidArgument, error.message, detail: detail)
        case .notFound where error.status == nil: return KernelError(.notFound, error.message, detail: detail)
        case .budgetExhausted: return KernelError(.resourceExhausted, error.message, detail: detail)
        default: return KernelError(.modelFailed, error.message, detail: detail)
        }
    }
}

/// Pieces of a streamed answer handed on so far.
final class PieceCount: Sendable {
    private let count = Mutex(0)

    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
