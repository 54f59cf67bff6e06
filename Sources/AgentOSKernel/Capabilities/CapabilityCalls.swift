import AgentOSCapabilities
import AgentOSProtocol
import AgentOSStore

/// The operator's capability calls: grant, list, revoke, explain.
struct CapabilityCalls {
    let services: KernelServices
    private var table: CapabilityTable { services.capabilities }

    func grant(_ request: Agentos_V1_CapGrantRequest) async throws -> Agentos_V1_CapabilityInfo {
        let (record, agent) = try await services.lifecycle.grantCapability(request.uri, to: request.agent)
        guard let granted = table.grants(of: agent.id).first(where: { $0.record.id == record.id }) else {
            throw KernelError(.internal, "capability \(record.id) vanished right after it was granted")
        }
        return info(granted, agentName: agent.name)
    }

    func list(_ request: Agentos_V1_CapListRequest) async throws -> Agentos_V1_CapabilityList {
        var list = Agentos_V1_CapabilityList()
        if request.agent.isEmpty {
            var names: [String: String] = [:]
            for grant in table.allGrants() {
                let name = names[grant.record.agentID] ?? (try? services.store.agent(id: grant.record.agentID))?.name ?? ""
                names[grant.record.agentID] = name
                list.capabilities.append(info(grant, agentName: name))
            }
        } else {
            let agent = try await services.lifecycle.resolve(request.agent)
            list.capabilities = table.grants(of: agent.id).map { info($0, agentName: agent.name) }
        }
        return list
    }

    func revoke(_ request: Agentos_V1_CapRevokeRequest) throws -> Agentos_V1_CapRevokeResponse {
        guard !request.id.isEmpty else { throw KernelError(.invalidArgument, "no capability id: see agentctl cap ls") }
        var response = Agentos_V1_CapRevokeResponse()
        response.revoked = try table.revoke(request.id, reason: request.reason.isEmpty ? "revoked by the operator" : request.reason)
        // At once for running agents too: what a revoked grant allowed stops.
        services.toolSandbox.revoked(Set(response.revoked))
        return response
    }

    func explain(_ request: Agentos_V1_CapExplainRequest) async throws -> Agentos_V1_CapExplainResponse {
        let agent = try await services.lifecycle.resolve(request.agent)
        let (kind, resource) = try Self.ask(request.action, request.resource)
        let start = ContinuousClock.now
        let decision = table.explain(agentID: agent.id, kind: kind, action: request.action, resource: resource)
        var answer = Self.answer(decision)
        answer.checkNs = Self.nanoseconds(ContinuousClock.now - start)
        return answer
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }

    // MARK: Agent calls

    /// The grants the calling agent holds.
    func held(by agentID: String) async throws -> Agentos_V1_CapabilityList {
        let agent = try await services.lifecycle.resolve(agentID)
        var list = Agentos_V1_CapabilityList()
        list.capabilities = table.grants(of: agentID).map { info($0, agentName: agent.name) }
        return list
    }

    /// The calling agent's ask: decided, counted and audited like any use.
    func check(_ request: Agentos_V1_CapCheckRequest, agentID: String) async throws -> Agentos_V1_CapExplainResponse {
        let agent = try await services.lifecycle.resolve(agentID)
        let (kind, resource) = try Self.ask(request.action, request.resource)
        return Self.answer(table.check(agentID: agentID, agentName: agent.name, kind: kind, action: request.action,
                                       resource: resource))
    }

    private static func answer(_ decision: CapabilityTable.Decision) -> Agentos_V1_CapExplainResponse {
        var response = Agentos_V1_CapExplainResponse()
        switch decision {
        case .allowed(let grantID, let approval):
            response.allowed = true
            response.grantID = grantID
            response.needsApproval = approval
        case .denied(let reasons):
            response.reasons = reasons
        }
        return response
    }

    /// An action and a `KIND/RESOURCE`, checked: the action must be one of the kind's.
    static func ask(_ action: String, _ text: String) throws(KernelError) -> (Capability.Kind, String) {
        let (kind, resource) = try ask(text)
        guard kind.actions.contains(action) else {
            throw KernelError(.invalidArgument, "'\(action)' is not a \(kind) action: use \(kind.actions.joined(separator: ", "))")
        }
        return (kind, resource)
    }

    /// `KIND/RESOURCE` (or a capability URI's front) as a kind and the
    /// resource as checks see it: a path for file and shell, `host/path`
    /// for http, the name for the rest.
    static func ask(_ text: String) throws(KernelError) -> (Capability.Kind, String) {
        let bare = text.hasPrefix(Capability.scheme) ? String(text.dropFirst(Capability.scheme.count)) : text
        let kindName = String(bare.prefix { $0 != "/" })
        guard let kind = Capability.Kind(rawValue: kindName) else {
            throw KernelError(.invalidArgument, "resource '\(text)': start with the kind, e.g. file/srv/data/a.txt "
                                  + "(kinds: \(Capability.Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let rest = String(bare.dropFirst(kindName.count))
        switch kind {
        case .file, .shell:
            guard rest.hasPrefix("/"), rest.count > 1 else {
                throw KernelError(.invalidArgument, "resource '\(text)': give the absolute path after \(kind)/")
            }
            return (kind, rest)
        default:
            let name = String(rest.drop { $0 == "/" })
            guard !name.isEmpty else { throw KernelError(.invalidArgument, "resource '\(text)': name it after \(kind)/") }
            return (kind, name)
        }
    }

    /// An ask as `ask(_:)` reads it: `file/srv/a.txt`, `tool/file.read`.
    static func text(_ kind: Capability.Kind, _ resource: String) -> String {
        kind.rawValue + (resource.hasPrefix("/") ? "" : "/") + resource
    }

    private func info(_ grant: CapabilityTable.Grant, agentName: String) -> Agentos_V1_CapabilityInfo {
        var info = Agentos_V1_CapabilityInfo()
        info.id = grant.record.id
        info.agent = grant.record.agentID
        info.agentName = agentName
        info.uri = grant.record.uri
        info.parentID = grant.record.parentID ?? ""
        info.source = grant.record.source
        info.grantedAtNs = grant.record.grantedAt
        info.uses = UInt64(max(0, grant.record.uses))
        let remaining = table.remaining(grant)
        if let uses = remaining.uses { info.remainingUses = UInt64(uses) }
        if let rate = remaining.rate { info.remainingInWindow = UInt64(rate) }
        if let tokens = table.remainingTokens(grant) { info.remainingTokens = UInt64(tokens) }
        if let expires = grant.capability.constraints.expiresAtMilliseconds { info.expiresAtMs = expires }
        info.needsApproval = grant.capability.constraints.approval == .operator
        return info
    }
}
