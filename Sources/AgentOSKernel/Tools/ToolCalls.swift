import AgentOSCapabilities
import AgentOSMCP
import AgentOSConfinement
import AgentOSProtocol
import AgentOSStore
import AgentOSTools
import Crypto
import Foundation
import Synchronization

/// The tools the kernel offers: the built-ins, and later those of MCP servers.
final class ToolRegistry: Sendable {
    private let tools = Mutex<[String: ToolDefinition]>([:])

    init(_ definitions: [ToolDefinition] = BuiltinTools.all) {
        tools.withLock { tools in
            for definition in definitions { tools[definition.name] = definition }
        }
    }

    func definition(named name: String) -> ToolDefinition? {
        tools.withLock { $0[name] }
    }

    /// Every tool, by name.
    func all() -> [ToolDefinition] {
        tools.withLock { $0.values.sorted { $0.name < $1.name } }
    }

    /// Adds the tools of MCP server `server`; false (nothing added) if
    /// another server of that name has tools here.
    func register(server: String, _ definitions: [ToolDefinition]) -> Bool {
        tools.withLock { tools in
            guard !tools.values.contains(where: { $0.mcpServer == server }) else { return false }
            for definition in definitions { tools[definition.name] = definition }
            return true
        }
    }

    /// Removes the tools of MCP server `server`.
    func unregister(server: String) {
        tools.withLock { tools in tools = tools.filter { $0.value.mcpServer != server } }
    }
}

/// Tool calls: an agent's ask checked against its grants, approved where
/// the grant says so, run as its own confined child, answered and recorded.
struct ToolCalls {
    let services: KernelServices

    func list() -> Agentos_V1_ToolList {
        var list = Agentos_V1_ToolList()
        list.tools = services.tools.all().map { tool in
            var info = Agentos_V1_ToolInfo()
            info.name = tool.name
            info.description_p = tool.summary
            info.capabilityKind = tool.kind.rawValue
            info.action = tool.action
            info.parametersSchema = tool.schemaJSON
            info.source = tool.source
            return info
        }
        return list
    }

    /// What a call will do once allowed: the ask it is checked as, and how
    /// to run it and read its result.
    struct Prepared {
        var resource: String
        /// What runs: a confined child (`plan`), or a call to an MCP server.
        var plan: ToolSandbox.Plan
        var mcp: (server: String, tool: String)?
        /// What runs instead of a child of its own (agent.spawn: the child agent is the confined child).
        var direct: (@Sendable () async throws -> (JSONValue, Bool))?
        /// http.fetch: its first hop (its method is the action checked).
        var httpTarget: HTTPFetchTool.Target?
        /// The action checked when it is not the tool's own (http.fetch: the method).
        var action: String?
        var arguments = ToolArguments([:])
        var result: @Sendable (ToolSandbox.Outcome) -> (JSONValue, Bool)
        /// The answer without a run (a file that does not exist), given
        /// only once the check allowed the ask: nothing is told about what
        /// the agent may not see.
        var immediate: (JSONValue, Bool)?
        /// The calling agent's host uid: the run acts as it.
        var uid: UInt32 = 0
    }

    func call(_ request: Agentos_V1_ToolCallRequest, agentID: String) async throws -> Agentos_V1_ToolCallResponse {
        let started = ContinuousClock.now
        let callID = randomHexID(length: 12)
        let agent = try await services.lifecycle.resolve(agentID)
        let digest = Self.digest(request.argumentsJson)
        var recorded: [String: String] = ["call": callID, "tool": request.tool, "arguments_sha256": digest]

        // Refusals before anything runs are recorded too (and so audited).
        func refuse(_ error: KernelError) -> KernelError {
            recorded["outcome"] = "refused"
            recorded["reason"] = error.message
            _ = try? services.events.record("tool.refused", agentID: agentID,
                                            "\(agent.name) was refused \(request.tool): \(error.message)", data: recorded)
            return error
        }
        guard let tool = services.tools.definition(named: request.tool) else {
            throw refuse(KernelError(.notFound, "no tool '\(request.tool)' (agentctl tools lists them)"))
        }
        var prepared: Prepared
        do {
            let arguments = try tool.validate(request.argumentsJson)
            prepared = try await prepare(tool, arguments, agentID: agentID)
        } catch let error as ToolError {
            throw refuse(KernelError(.invalidArgument, error.message))
        } catch {
            throw refuse(KernelError.from(error))
        }
        let askText = CapabilityCalls.text(tool.kind, prepared.resource)
        recorded["resource"] = askText

        // The check: denied is an event of its own (capability.denied).
        let grantID: String
        let needsApproval: Bool
        let action = prepared.action ?? tool.action
        switch services.capabilities.check(agentID: agentID, agentName: agent.name, kind: tool.kind,
                                           action: action, resource: prepared.resource) {
        case .denied(let reasons):
            throw refuse(KernelError(.permissionDenied,
                                     "\(tool.name) needs \(tool.kind) \(action) on \(prepared.resource): "
                                         + reasons.joined(separator: "; ")))
        case .allowed(let id, let approval):
            grantID = id
            needsApproval = approval
        }
        recorded["grant"] = grantID
        var plan = prepared.plan
        let grant = services.capabilities.grant(id: grantID)
        guard let grant else {
            throw refuse(KernelError(.permissionDenied, "\(tool.name): grant \(grantID) was revoked during the call"))
        }
        // The check resolved the path again: it must be the one the run binds.
        if tool.kind == .file, (try? FilePaths.canonical(prepared.resource)) != prepared.resource {
            throw refuse(KernelError(.permissionDenied, "\(tool.name): \(prepared.resource) changed during the call (a symlink?)"))
        }
        if let limit = grant.capability.constraints.timeoutMilliseconds {
            plan.timeoutMilliseconds = min(plan.timeoutMilliseconds, limit)
        }
        if tool.name == BuiltinTools.shellExecute.name, let allowlist = grant.capability.constraints.allowlist {
            do {
                try ShellTool.restrict(&plan, to: allowlist, landlockABI: Int(services.hostStatus.landlockAbi))
            } catch {
                throw refuse(KernelError.from(error))
            }
        }

        if needsApproval {
            var pending = Agentos_V1_PendingCall()
            pending.callID = callID
            pending.agent = agentID
            pending.agentName = agent.name
            pending.tool = tool.name
            pending.argumentsJson = request.argumentsJson
            pending.action = action
            pending.resource = askText
            pending.grantID = grantID
            pending.requestedAtNs = unixNanoseconds()
            pending.deadlineNs = pending.requestedAtNs + services.configuration.approvalTimeoutMilliseconds * 1_000_000
            switch await services.approvals.decision(for: pending) {
            case .approved:
                recorded["approved"] = "operator"
            case .denied(let reason):
                throw refuse(KernelError(.permissionDenied, "\(tool.name) call \(callID): \(reason)"))
            }
            // Minutes may have passed: the grant must still be there.
            guard services.capabilities.grant(id: grantID) != nil else {
                throw refuse(KernelError(.permissionDenied, "\(tool.name) call \(callID): grant \(grantID) was revoked while it waited"))
            }
        }

        let table = services.capabilities
        let isGranted: @Sendable (Set<String>) -> Bool = { ids in ids.allSatisfy { table.grant(id: $0) != nil } }
        if let (server, serverTool) = prepared.mcp {
            let timeout = min(grant.capability.constraints.timeoutMilliseconds ?? MCPServers.callTimeoutMilliseconds,
                              MCPServers.callTimeoutMilliseconds * 60)
            let mcp = services.mcp
            let arguments = request.argumentsJson
            prepared.direct = {
                guard let session = mcp.session(server) else {
                    throw KernelError(.notRunning, "MCP server \(server) is not running (its supervisor may be restarting it)")
                }
                do {
                    let result = try await session.call(tool: serverTool, argumentsJSON: arguments,
                                                        timeout: .milliseconds(timeout))
                    return (JSONValue.parse(result.json) ?? .string(result.json), result.isError)
                } catch {
                    throw KernelError(.unsupported, "\(tool.name): \(error)")
                }
            }
        }
        if let target = prepared.httpTarget {
            let timeout = min(prepared.arguments.integer("timeout_ms") ?? HTTPFetchTool.defaultTimeoutMilliseconds,
                              grant.capability.constraints.timeoutMilliseconds ?? Int64.max)
            let fetcher = HTTPFetchTool(services: services, agentID: agentID, agentName: agent.name)
            let arguments = prepared.arguments
            prepared.direct = { try await fetcher.fetch(arguments, first: target, firstGrant: grantID, timeoutMilliseconds: timeout) }
        }
        func failed(_ error: any Error, _ what: String) -> KernelError {
            let kernelError = KernelError.from(error)
            recorded["outcome"] = "failed"
            recorded["reason"] = kernelError.message
            _ = try? services.events.record("tool.failed", agentID: agentID,
                                            "\(agent.name)'s \(tool.name) call \(what): \(kernelError.message)", data: recorded)
            return kernelError
        }
        func answer(_ result: JSONValue, isError: Bool, outcome: String? = nil) throws -> Agentos_V1_ToolCallResponse {
            try self.answer(result, isError: isError, outcome: outcome, callID: callID, grantID: grantID,
                            approved: needsApproval, started: started, agentID: agentID, agentName: agent.name,
                            tool: tool.name, resource: prepared.resource, recorded: recorded)
        }
        if let direct = prepared.direct {
            let (result, isError): (JSONValue, Bool)
            do {
                (result, isError) = try await services.toolSandbox.revocable(agentID: agentID, grantIDs: [grantID],
                                                                           isGranted: isGranted, direct)
            } catch {
                throw failed(error, "failed")
            }
            return try answer(result, isError: isError)
        }
        if let (result, isError) = prepared.immediate {
            return try answer(result, isError: isError)
        }
        let outcome: ToolSandbox.Outcome
        do {
            outcome = try await services.toolSandbox.run(plan, uid: prepared.uid, agentID: agentID, grantID: grantID,
                                                          isGranted: isGranted)
        } catch {
            throw failed(error, "could not run")
        }
        // Revoked while it ran: it was killed for that, and says so.
        if services.capabilities.grant(id: grantID) == nil {
            recorded["outcome"] = "revoked"
            _ = try? services.events.record("tool.failed", agentID: agentID,
                                            "\(agent.name)'s \(tool.name) call was killed: grant \(grantID) was revoked while it ran",
                                            data: recorded)
            throw KernelError(.permissionDenied, "\(tool.name): grant \(grantID) was revoked while the call ran; its run was killed")
        }
        let (result, isError) = prepared.result(outcome)
        recorded["exit"] = outcome.exit.description
        return try answer(result, isError: isError, outcome: outcome.timedOut ? "timeout" : nil)
    }

    /// The answer of a call that ran, recorded first (`tool.called`).
    private func answer(_ result: JSONValue, isError: Bool, outcome: String?, callID: String, grantID: String,
                        approved: Bool, started: ContinuousClock.Instant, agentID: String, agentName: String,
                        tool: String, resource: String, recorded: [String: String]) throws -> Agentos_V1_ToolCallResponse {
        var recorded = recorded
        let microseconds = CapabilityCalls.nanoseconds(ContinuousClock.now - started) / 1_000
        recorded["outcome"] = outcome ?? (isError ? "error" : "ok")
        recorded["duration_us"] = String(microseconds)
        // An MCP tool's resource is its name: said once.
        let target = resource == tool ? "" : " on \(resource)"
        _ = try services.events.record("tool.called", agentID: agentID,
                                       "\(agentName) called \(tool)\(target): \(recorded["outcome"] ?? "")", data: recorded)
        var response = Agentos_V1_ToolCallResponse()
        response.callID = callID
        response.resultJson = result.text
        response.isError = isError
        response.grantID = grantID
        response.durationUs = microseconds
        response.approved = approved
        return response
    }

    /// SHA-256 of the arguments as sent: the audit chain names them without holding them.
    static func digest(_ text: String) -> String {
        StateStore.hex(SHA256.hash(data: Data(text.utf8)))
    }

    // MARK: Preparing each built-in

    private func prepare(_ tool: ToolDefinition, _ arguments: ToolArguments, agentID: String) async throws -> Prepared {
        if let server = tool.mcpServer, let serverTool = tool.mcpTool {
            let plan = ToolSandbox.Plan(program: "", arguments: [], timeoutMilliseconds: 0, stdoutLimit: 0)
            return Prepared(resource: tool.name, plan: plan, mcp: (server, serverTool), result: { _ in (.null, true) })
        }
        if tool.name == BuiltinTools.httpFetch.name {
            let target = try HTTPFetchTool.target(arguments.string("url") ?? "")
            let plan = ToolSandbox.Plan(program: "", arguments: [], timeoutMilliseconds: 0, stdoutLimit: 0)
            var prepared = Prepared(resource: target.resource, plan: plan, httpTarget: target, result: { _ in (.null, true) })
            prepared.action = (arguments.string("method") ?? "GET").lowercased()
            prepared.arguments = arguments
            return prepared
        }
        if tool.name == BuiltinTools.agentSpawn.name {
            let spawner = SpawnTool(services: services, agentID: agentID)
            let (supervisor, delegations) = try spawner.prepare(arguments)
            let extra = arguments.strings("args") ?? []
            let plan = ToolSandbox.Plan(program: "", arguments: [], timeoutMilliseconds: 0, stdoutLimit: 0)
            return Prepared(resource: supervisor, plan: plan,
                            direct: { try await spawner.spawn(supervisor: supervisor, arguments: extra, delegations: delegations) },
                            result: { _ in (.null, true) })
        }
        let (uid, limits) = try await services.lifecycle.toolIdentity(of: agentID)
        var prepared: Prepared
        switch tool.name {
        case BuiltinTools.fileRead.name, BuiltinTools.fileList.name, BuiltinTools.fileWrite.name:
            prepared = try FileTool(services: services, limits: limits).prepare(tool, arguments)
        case BuiltinTools.shellExecute.name:
            prepared = try ShellTool(services: services, limits: limits, agentID: agentID).prepare(arguments)
        default:
            throw KernelError(.unsupported, "tool \(tool.name) cannot run here yet")
        }
        prepared.uid = uid
        return prepared
    }

    /// A tool run's limits: the calling agent's, never looser than these.
    static func toolLimits(_ agent: ResourceLimits) -> ResourceLimits {
        var limits = agent
        limits.pids = min(agent.pids ?? Self.toolPids, Self.toolPids)
        return limits
    }

    static let toolPids = 256
}
