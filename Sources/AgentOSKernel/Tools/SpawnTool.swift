import AgentOSCapabilities
import AgentOSProtocol
import AgentOSTools
import Foundation

/// agent.spawn: start_child on a dynamic supervisor for the calling agent,
/// with capabilities delegated from its own grants. The ask is `agent
/// spawn` on the supervisor's path (so `max` counts spawns); each delegated
/// URI must be within a grant the caller holds (checked before anything
/// starts), and the child gets it before its first call, as a grant
/// delegated from that one: revoked with it, counted against it.
struct SpawnTool {
    let services: KernelServices
    let agentID: String

    func prepare(_ arguments: ToolArguments) throws -> (resource: String, delegations: [Agentos_V1_Delegation]) {
        guard let supervisor = arguments.string("supervisor") else {
            throw KernelError(.invalidArgument, "agent.spawn: no supervisor")
        }
        let parts = supervisor.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 1, !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw KernelError(.invalidArgument, "agent.spawn: supervisor '\(supervisor)' is not a path POLICY/PATH")
        }
        var delegations: [Agentos_V1_Delegation] = []
        let held = services.capabilities.grants(of: agentID)
        for uri in arguments.strings("capabilities") ?? [] {
            let child: Capability
            do {
                child = try Capability(parsing: uri)
            } catch {
                throw KernelError(.invalidArgument, "agent.spawn: capability \(uri): \(error.message)")
            }
            let candidates = held.filter { $0.capability.kind == child.kind }
            guard let parent = candidates.first(where: { $0.capability.problem(delegating: child) == nil }) else {
                let why = candidates.map { "\($0.record.id): \($0.capability.problem(delegating: child) ?? "")" }
                throw KernelError(.permissionDenied, "agent.spawn: \(uri) is not within a capability you hold"
                    + (why.isEmpty ? " (you hold no \(child.kind) capability)" : " (" + why.joined(separator: "; ") + ")"))
            }
            var delegation = Agentos_V1_Delegation()
            delegation.uri = child.description
            delegation.parentID = parent.record.id
            delegation.holder = agentID
            delegations.append(delegation)
        }
        return (supervisor, delegations)
    }

    /// The child started: where it is and what it got.
    func spawn(supervisor: String, arguments: [String],
               delegations: [Agentos_V1_Delegation]) async throws -> (JSONValue, Bool) {
        let node = try await services.supervisor.spawn(supervisor: supervisor, arguments: arguments,
                                                       delegations: delegations)
        // What the child spends on models counts against its spawner's budgets too.
        let spawner = try await services.bus.agent(agentID, lifecycle: services.lifecycle).identity
        services.budgets.setSpawner(of: node.path, to: spawner)
        var result: [String: JSONValue] = [
            "path": .string(node.path), "agent": .string(node.agentID), "state": .string(node.state),
            "pid": .integer(Int64(node.pid)),
        ]
        if !node.agentID.isEmpty {
            let granted = services.capabilities.grants(of: node.agentID).filter { $0.record.parentID != nil }
            result["capabilities"] = .array(granted.map {
                .object(["id": .string($0.record.id), "uri": .string($0.record.uri),
                         "from": .string($0.record.parentID ?? "")])
            })
        }
        return (.object(result), node.state != "running")
    }
}
