import AgentOSProtocol
import ArgumentParser
import Foundation

/// `agentctl cap ...`: the kernel's capability table.
struct CapabilityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cap",
        abstract: "Grant, list, revoke and explain agents' capabilities.",
        discussion: """
            A capability is what an agent may ask the kernel to do, to which resources, within \
            which limits: capability://KIND/RESOURCE?action=A[,B]&CONSTRAINT=VALUE. Kinds: file, \
            http, shell, agent, memory, tool, model, topic. Patterns, matching and constraints: \
            Policies/README.md#capabilities. Policies grant their workers' capabilities when they \
            start; `agentctl run --cap URI` grants at start too.

            Examples:
              agentctl cap grant scraper 'capability://file/srv/data/**?action=read&rate=100/min'
              agentctl cap ls scraper
              agentctl cap explain scraper read file/srv/data/a.txt
              agentctl cap revoke 3f2a9c81d0e4 --reason "done with the data"
            """,
        subcommands: [CapGrantCommand.self, CapListCommand.self, CapRevokeCommand.self, CapExplainCommand.self],
        defaultSubcommand: CapListCommand.self)
}

struct CapGrantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grant", abstract: "Give a live agent a capability; prints its id.")

    @OptionGroup var agent: AgentReference
    @Argument(help: ArgumentHelp("The capability URI (quote it: it holds ? and &).", valueName: "uri"))
    var uri: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_CapGrantRequest()
        request.agent = agent.agent
        request.uri = uri
        guard case .capGrant(let info) = try connection.withKernel({ try $0.call(.capGrant(request)) }) else {
            throw unexpectedResponse("cap grant")
        }
        if output.json { Output.json(CapabilityJSON(info)) } else { Output.line(info.id) }
    }
}

struct CapListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "Live grants (of one agent, or all) with what each has left.")

    @Argument(help: ArgumentHelp("The agent (id, unique prefix or name); all agents if omitted.", valueName: "agent"))
    var agent: String?
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_CapListRequest()
        request.agent = agent ?? ""
        guard case .capList(let list) = try connection.withKernel({ try $0.call(.capList(request)) }) else {
            throw unexpectedResponse("cap ls")
        }
        if output.json {
            Output.json(list.capabilities.map(CapabilityJSON.init))
            return
        }
        Output.table(["ID", "AGENT", "CAPABILITY", "SOURCE", "USES", "LEFT"], list.capabilities.map { info in
            var left: [String] = []
            if info.hasRemainingUses { left.append("\(info.remainingUses) uses") }
            if info.hasRemainingInWindow { left.append("\(info.remainingInWindow) this window") }
            if info.hasRemainingTokens { left.append("\(info.remainingTokens) tokens") }
            if info.hasExpiresAtMs, let at = Output.timestamp(info.expiresAtMs * 1_000_000) { left.append("until \(at)") }
            if info.needsApproval { left.append("needs approval") }
            return [info.id, info.agentName.isEmpty ? String(info.agent.prefix(12)) : info.agentName, info.uri,
                    info.source + (info.parentID.isEmpty ? "" : " from \(info.parentID)"), String(info.uses),
                    left.isEmpty ? "-" : left.joined(separator: ", ")]
        })
    }
}

struct CapRevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a grant and everything delegated from it; the next check no longer finds them.")

    @Argument(help: ArgumentHelp("The grant's id (agentctl cap ls).", valueName: "id"))
    var id: String
    @Option(help: "Why, recorded with the revocation.")
    var reason: String?
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_CapRevokeRequest()
        request.id = id
        request.reason = reason ?? ""
        guard case .capRevoke(let response) = try connection.withKernel({ try $0.call(.capRevoke(request)) }) else {
            throw unexpectedResponse("cap revoke")
        }
        if output.json { Output.json(["revoked": response.revoked]) } else { response.revoked.forEach(Output.line) }
    }
}

struct CapExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Which grant allows an agent an action on a resource, or why none does (exit 1).",
        discussion: "RESOURCE starts with its kind: file/srv/data/a.txt, http/api.example.com/v1/items, tool/file.read. Nothing is counted or recorded.")

    @OptionGroup var agent: AgentReference
    @Argument(help: ArgumentHelp("The action, e.g. read, get, execute, call.", valueName: "action"))
    var action: String
    @Argument(help: ArgumentHelp("KIND/RESOURCE, e.g. file/srv/data/a.txt.", valueName: "resource"))
    var resource: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_CapExplainRequest()
        request.agent = agent.agent
        request.action = action
        request.resource = resource
        guard case .capExplain(let response) = try connection.withKernel({ try $0.call(.capExplain(request)) }) else {
            throw unexpectedResponse("cap explain")
        }
        if output.json {
            Output.json(CapabilityExplanationJSON(allowed: response.allowed, grant: response.grantID.isEmpty ? nil : response.grantID,
                                                  needs_approval: response.needsApproval, reasons: response.reasons))
        } else if response.allowed {
            Output.line("allowed by \(response.grantID)" + (response.needsApproval ? " (each use waits for operator approval)" : ""))
        } else {
            Output.line("denied:")
            for reason in response.reasons { Output.line("  " + reason) }
        }
        if !response.allowed { throw ExitCode(1) }
    }
}

struct CapabilityJSON: Encodable {
    var id: String
    var agent: String
    var agent_name: String
    var uri: String
    var parent: String?
    var source: String
    var granted_at: String?
    var uses: UInt64
    var remaining_uses: UInt64?
    var remaining_in_window: UInt64?
    var remaining_tokens: UInt64?
    var expires_at: String?
    var needs_approval: Bool

    init(_ info: Agentos_V1_CapabilityInfo) {
        id = info.id
        agent = info.agent
        agent_name = info.agentName
        uri = info.uri
        parent = info.parentID.isEmpty ? nil : info.parentID
        source = info.source
        granted_at = Output.timestamp(info.grantedAtNs)
        uses = info.uses
        remaining_uses = info.hasRemainingUses ? info.remainingUses : nil
        remaining_in_window = info.hasRemainingInWindow ? info.remainingInWindow : nil
        remaining_tokens = info.hasRemainingTokens ? info.remainingTokens : nil
        expires_at = info.hasExpiresAtMs ? Output.timestamp(info.expiresAtMs * 1_000_000) : nil
        needs_approval = info.needsApproval
    }
}

struct CapabilityExplanationJSON: Encodable {
    var allowed: Bool
    var grant: String?
    var needs_approval: Bool
    var reasons: [String]
}
