import AgentOSProtocol
import ArgumentParser
import Foundation

/// `agentctl pending`: tool calls waiting for an operator.
struct PendingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pending",
        abstract: "Tool calls waiting for approval (grants with approve=operator).",
        discussion: """
            A call under an approve=operator grant waits until `agentctl approve CALL_ID` or \
            `agentctl deny CALL_ID`, or until agentd's --approval-timeout passes (then it is \
            denied). The agent that made it gets its result, or permission_denied.

            Examples:
              agentctl pending
              agentctl approve 7c1e2a --reason "checked the command"
              agentctl deny 7c1e2a --reason "not on a Friday"
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        guard case .pending(let list) = try connection.withKernel({ try $0.call(.pending(Agentos_V1_PendingRequest())) }) else {
            throw unexpectedResponse("pending")
        }
        if output.json {
            Output.json(list.calls.map(PendingCallJSON.init))
            return
        }
        if list.calls.isEmpty {
            Output.line("no tool call waits for approval")
            return
        }
        let now = Output.now()
        Output.table(["CALL", "AGENT", "TOOL", "RESOURCE", "ARGUMENTS", "WAITING", "DENIED IN"], list.calls.map { call in
            let arguments = call.argumentsJson.count > 60 ? String(call.argumentsJson.prefix(57)) + "..." : call.argumentsJson
            return [call.callID, call.agentName, call.tool, call.resource, arguments,
                    Output.duration(nanoseconds: now - call.requestedAtNs),
                    Output.duration(nanoseconds: max(0, call.deadlineNs - now))]
        })
    }
}

struct ApproveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve", abstract: "Let a waiting tool call run (see agentctl pending).")

    @OptionGroup var decision: ApprovalOptions
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        guard case .approve(let call) = try connection.withKernel({ try $0.call(.approve(decision.request)) }) else {
            throw unexpectedResponse("approve")
        }
        if output.json { Output.json(PendingCallJSON(call)) } else { Output.line("approved \(call.callID): \(call.tool) of \(call.agentName)") }
    }
}

struct DenyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deny", abstract: "Refuse a waiting tool call: the agent gets permission_denied.")

    @OptionGroup var decision: ApprovalOptions
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        guard case .deny(let call) = try connection.withKernel({ try $0.call(.deny(decision.request)) }) else {
            throw unexpectedResponse("deny")
        }
        if output.json { Output.json(PendingCallJSON(call)) } else { Output.line("denied \(call.callID): \(call.tool) of \(call.agentName)") }
    }
}

struct ApprovalOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The call's id from agentctl pending (a unique prefix will do).", valueName: "call-id"))
    var callID: String
    @Option(name: .long, help: ArgumentHelp("Why: recorded with the decision in the audit chain.", valueName: "text"))
    var reason: String?

    var request: Agentos_V1_ApprovalRequest {
        var request = Agentos_V1_ApprovalRequest()
        request.callID = callID
        request.reason = reason ?? ""
        return request
    }
}

struct PendingCallJSON: Encodable {
    let callID: String
    let agent: String
    let agentName: String
    let tool: String
    let arguments: String
    let action: String
    let resource: String
    let grant: String
    let requestedAt: String?
    let deadline: String?
    let decision: String?

    init(_ call: Agentos_V1_PendingCall) {
        callID = call.callID
        agent = call.agent
        agentName = call.agentName
        tool = call.tool
        arguments = call.argumentsJson
        action = call.action
        resource = call.resource
        grant = call.grantID
        requestedAt = Output.timestamp(call.requestedAtNs)
        deadline = Output.timestamp(call.deadlineNs)
        decision = call.decision.isEmpty ? nil : call.decision
    }

    enum CodingKeys: String, CodingKey {
        case agent, tool, arguments, action, resource, grant, deadline, decision
        case callID = "call_id"
        case agentName = "agent_name"
        case requestedAt = "requested_at"
    }
}
