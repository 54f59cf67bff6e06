import AgentOSProtocol
import AgentOSScheduling
import AgentOSStore
import Foundation
import Logging

/// The goal queue: goals submitted with a priority, kept in the store, and
/// dispatched when fewer than `concurrency` run, highest effective priority
/// first (priority plus aging, so nothing starves; fair share between
/// policies at equal priority). A goal is dispatched by starting an agent
/// for it under a dynamic supervisor (`--goal ID` appended to the
/// template's arguments); that agent reads it (goal_get) and ends it
/// (goal_finish). An agent that ends without finishing it puts it back in
/// the queue, up to `maximumAttempts`; a kernel restart re-queues what ran.
actor GoalScheduler {
    static let maximumAttempts = 3
    static let maximumResultBytes = 64 * 1024
    static let maximumTextBytes = 64 * 1024

    private let store: StateStore
    private let events: EventHub
    private let supervisor: PolicySupervisor
    private let lifecycle: Lifecycle
    private let bus: Bus
    private let logger: Logger
    /// Goals handed to a running agent have targets "agent:IDENTITY".
    static let agentTargetPrefix = "agent:"
    static let goalContentType = "application/vnd.agentos.goal+json"
    let concurrency: Int

    private var queue = FairQueue<String>(agingMilliseconds: 10_000)
    private var goals: [String: GoalRecord] = [:]
    /// Running goals: the child path their agent runs at.
    private var running: [String: String] = [:]
    private var started = false
    /// The kernel is stopping: nothing more is dispatched, and what runs
    /// stays `running` in the store for the next start to queue again.
    private var stopping = false

    init(store: StateStore, events: EventHub, supervisor: PolicySupervisor, lifecycle: Lifecycle, concurrency: Int,
         bus: Bus, logger: Logger) {
        self.bus = bus
        self.store = store
        self.events = events
        self.supervisor = supervisor
        self.lifecycle = lifecycle
        self.concurrency = concurrency
        self.logger = logger
    }

    /// At kernel start, after the policies are restored: what was pending
    /// waits again; what ran when the kernel stopped is queued again.
    func start() async {
        do {
            for var goal in try store.goals(includeEnded: false) {
                if goal.state == .running {
                    goal.state = .pending
                    goal.agentID = ""
                    try save(goal, "goal.requeued", "goal \(goal.id) queued again: the kernel stopped while it ran")
                }
                goals[goal.id] = goal
                queue.push(goal.id, priority: goal.priority, group: goal.policy, now: goal.submittedAt / 1_000_000)
            }
        } catch {
            logger.error("cannot load the goal queue: \(error)")
        }
        started = true
        pump()
    }

    /// Before the trees stop: their agents' ends must not count as attempts.
    func stop() {
        stopping = true
    }

    // MARK: Operator calls

    func submit(_ request: Agentos_V1_GoalSubmitRequest) async throws -> Agentos_V1_GoalInfo {
        let text = request.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw KernelError(.invalidArgument, "a goal needs text") }
        guard text.utf8.count <= Self.maximumTextBytes else {
            throw KernelError(.invalidArgument, "a goal of \(text.utf8.count) bytes: at most \(Self.maximumTextBytes)")
        }
        guard abs(Int(request.priority)) <= 1_000 else {
            throw KernelError(.invalidArgument, "priority \(request.priority): give -1000 to 1000")
        }
        let target = try await resolveTarget(template: request.template, policy: request.policy, agent: request.agent)
        let now = unixNanoseconds()
        let owner = target.hasPrefix(Self.agentTargetPrefix) ? String(target.dropFirst(Self.agentTargetPrefix.count)) : target
        let goal = GoalRecord(id: randomHexID(length: 12), text: text, target: target,
                              policy: String(owner.split(separator: "/").first ?? ""), priority: Int(request.priority),
                              submittedAt: now)
        try store.insertGoal(goal)
        record("goal.submitted", goal, "goal \(goal.id) submitted for \(target) (priority \(goal.priority))")
        goals[goal.id] = goal
        queue.push(goal.id, priority: goal.priority, group: goal.policy, now: now / 1_000_000)
        pump()
        return wire(goals[goal.id] ?? goal)
    }

    func list(includeEnded: Bool, limit: Int, id: String = "") throws -> [Agentos_V1_GoalInfo] {
        if !id.isEmpty { return [wire(try lookup(id))] }
        return try store.goals(includeEnded: includeEnded, limit: limit).map { wire(goals[$0.id] ?? $0) }
    }

    func prioritize(_ reference: String, priority: Int) throws -> Agentos_V1_GoalInfo {
        var goal = try lookup(reference)
        guard goal.state == .pending else {
            throw KernelError(.conflict, "goal \(goal.id) is \(goal.state.rawValue): only a waiting goal can be re-prioritized",
                              detail: ["reason": goal.state.rawValue])
        }
        guard abs(priority) <= 1_000 else { throw KernelError(.invalidArgument, "priority \(priority): give -1000 to 1000") }
        _ = queue.removeAll { $0 == goal.id }
        goal.priority = priority
        try save(goal, "goal.prioritized", "goal \(goal.id) now has priority \(priority)")
        goals[goal.id] = goal
        // Its wait so far still counts (aging from the submission).
        queue.push(goal.id, priority: priority, group: goal.policy, now: goal.submittedAt / 1_000_000)
        pump()
        return wire(goal)
    }

    func cancel(_ reference: String, reason: String) async throws -> Agentos_V1_GoalInfo {
        var goal = try lookup(reference)
        guard !goal.state.hasEnded else {
            throw KernelError(.conflict, "goal \(goal.id) has already ended (\(goal.state.rawValue))", detail: ["reason": goal.state.rawValue])
        }
        let path = running[goal.id]
        _ = queue.removeAll { $0 == goal.id }
        goal.state = .cancelled
        goal.endedAt = unixNanoseconds()
        goal.result = reason.isEmpty ? "cancelled by an operator" : "cancelled: \(reason)"
        try save(goal, "goal.cancelled", "goal \(goal.id) cancelled")
        goals[goal.id] = goal
        if let path {
            _ = try? await supervisor.child(.terminate, path: path)
        }
        return wire(goal)
    }

    // MARK: Agent calls

    /// The goal, for the agent whose child path it was dispatched to.
    func get(_ id: String, identity: String, agentID: String) throws -> Agentos_V1_GoalInfo {
        var goal = try assigned(id, identity: identity)
        if goal.agentID != agentID {
            goal.agentID = agentID
            try store.updateGoal(goal)
            goals[goal.id] = goal
        }
        return wire(goal)
    }

    func finish(_ request: Agentos_V1_GoalFinishRequest, identity: String) throws -> Agentos_V1_GoalInfo {
        var goal = try assigned(request.id, identity: identity)
        guard goal.state == .running else {
            throw KernelError(.conflict, "goal \(goal.id) has already ended (\(goal.state.rawValue))", detail: ["reason": goal.state.rawValue])
        }
        guard request.result.utf8.count <= Self.maximumResultBytes else {
            throw KernelError(.invalidArgument, "a result of \(request.result.utf8.count) bytes: at most \(Self.maximumResultBytes)")
        }
        goal.state = request.failed ? .failed : .done
        goal.result = request.result
        goal.endedAt = unixNanoseconds()
        try save(goal, request.failed ? "goal.failed" : "goal.done",
                 "goal \(goal.id) \(request.failed ? "failed" : "done") (\(request.result.utf8.count) bytes of result)")
        goals[goal.id] = goal
        return wire(goal)
    }

    /// The priority of the goal the agent at `identity` works on: its model
    /// calls wait in the providers' queues at that priority.
    func priority(of identity: String) -> Int? {
        guard let id = running.first(where: { $0.value == identity })?.key, let goal = goals[id] else { return nil }
        return goal.priority
    }

    // MARK: Dispatch

    private func pump() {
        guard started, !stopping else { return }
        let now = unixNanoseconds() / 1_000_000
        while running.count < concurrency, let next = queue.pop(now: now) {
            guard var goal = goals[next.element], goal.state == .pending else { continue }
            goal.state = .running
            goal.attempts += 1
            goal.startedAt = unixNanoseconds()
            goals[goal.id] = goal
            running[goal.id] = ""   // its slot, before the spawn completes
            let snapshot = goal
            Task { await self.dispatch(snapshot) }
        }
    }

    private func dispatch(_ goal: GoalRecord) async {
        if goal.target.hasPrefix(Self.agentTargetPrefix) {
            await hand(goal, to: String(goal.target.dropFirst(Self.agentTargetPrefix.count)))
            return
        }
        do {
            try save(goal, "goal.dispatched", "goal \(goal.id) dispatched to \(goal.target) (attempt \(goal.attempts))")
            let node = try await supervisor.spawn(supervisor: goal.target, arguments: ["--goal", goal.id])
            running[goal.id] = node.path
            var updated = goals[goal.id] ?? goal
            updated.agentID = node.agentID
            goals[goal.id] = updated
            if updated.state == .running {
                try store.updateGoal(updated)
            } else {
                // Cancelled while its agent was being started.
                _ = try? await supervisor.child(.terminate, path: node.path)
            }
            await watch(goal.id, path: node.path, agentID: node.agentID)
        } catch {
            let kernelError = KernelError.from(error)
            if stopping || [.shuttingDown, .notRunning, .conflict].contains(kernelError.code) {
                // Not the goal's fault (the tree is stopping, restarting or full): it waits, no attempt counted.
                running[goal.id] = nil
                if var waiting = goals[goal.id], waiting.state == .running {
                    waiting.state = .pending
                    waiting.attempts -= 1
                    goals[goal.id] = waiting
                    try? store.updateGoal(waiting)
                    queue.push(goal.id, priority: waiting.priority, group: waiting.policy, now: waiting.submittedAt / 1_000_000)
                }
                if !stopping {
                    Task {
                        try? await Task.sleep(for: .seconds(1))
                        self.pump()
                    }
                }
                return
            }
            logger.warning("goal \(goal.id): cannot start its agent under \(goal.target): \(kernelError.message)")
            ended(goal.id, reason: "its agent could not be started under \(goal.target): \(kernelError.message)")
        }
    }

    /// A goal for a running agent: into its mailbox (durable, so a restarting
    /// worker still gets it); over when the agent finishes it or is gone.
    private func hand(_ goal: GoalRecord, to identity: String) async {
        running[goal.id] = identity
        do {
            try save(goal, "goal.dispatched", "goal \(goal.id) handed to \(identity) (attempt \(goal.attempts))")
            var message = Agentos_V1_SendRequest()
            message.to = identity
            message.contentType = Self.goalContentType
            message.payload = Data(#"{"goal":"\#(goal.id)","priority":\#(goal.priority),"text":\#(Self.jsonString(goal.text))}"#.utf8)
            _ = try await bus.submit(message, from: "scheduler", to: identity).value().get()
        } catch {
            ended(goal.id, reason: "it could not be handed to \(identity): \(KernelError.from(error).message)")
            return
        }
        while !stopping, goals[goal.id]?.state == .running {
            guard await isAlive(identity) else { break }
            try? await Task.sleep(for: .milliseconds(200))
        }
        ended(goal.id, reason: "\(identity) ended without finishing it")
    }

    /// A plain agent that is live, or a worker whose child is not stopped (restarting counts).
    private func isAlive(_ identity: String) async -> Bool {
        if identity.contains("/") {
            guard let node = await supervisor.node(identity) else {
                return false
            }
            return node.state != "stopped"
        }
        return (try? await lifecycle.resolve(identity))?.state.isLive ?? false
    }

    static func jsonString(_ text: String) -> String {
        let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Waits for the goal's child to end for good (a supervisor restart of
    /// it is waited through: the restarted agent goes on from its checkpoint).
    private func watch(_ id: String, path: String, agentID: String) async {
        var current = agentID
        while true {
            if !current.isEmpty { _ = try? await lifecycle.wait(current) }
            // Gone or stopped: over. Starting or restarting (its back-off may
            // be long): wait for its next agent, however long that takes.
            var next = ""
            while next.isEmpty {
                let node = await supervisor.node(path)
                guard let node, node.state != "stopped", !stopping else { break }
                if node.state == "running", !node.agentID.isEmpty, node.agentID != current {
                    next = node.agentID
                } else {
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            guard !next.isEmpty else { break }
            current = next
        }
        ended(id, reason: "its agent ended without finishing it")
    }

    /// The goal's agent is gone: free its slot; unfinished, it waits again
    /// (or fails after `maximumAttempts`).
    private func ended(_ id: String, reason: String) {
        running[id] = nil
        defer { pump() }
        // Stopping: it stays running in the store; the next start queues it again.
        guard !stopping, var goal = goals[id], goal.state == .running else { return }
        goal.agentID = ""
        if goal.attempts < Self.maximumAttempts {
            goal.state = .pending
            try? save(goal, "goal.requeued", "goal \(id) queued again: \(reason)")
            queue.push(id, priority: goal.priority, group: goal.policy, now: goal.submittedAt / 1_000_000)
        } else {
            goal.state = .failed
            goal.endedAt = unixNanoseconds()
            goal.result = "failed after \(goal.attempts) attempts: \(reason)"
            try? save(goal, "goal.failed", "goal \(id) failed: \(reason)")
        }
        goals[id] = goal
    }

    // MARK: Parts

    private func resolveTarget(template: String, policy: String, agent: String) async throws -> String {
        if !agent.isEmpty {
            guard template.isEmpty, policy.isEmpty else {
                throw KernelError(.invalidArgument, "give one of --template, --policy and --agent")
            }
            let identity = try await bus.recipient(agent, lifecycle: lifecycle)
            guard identity != Bus.operatorIdentity, await isAlive(identity) else {
                throw KernelError(.notRunning, "\(agent) is not running: a goal is handed to a running agent (or use --template)")
            }
            return Self.agentTargetPrefix + identity
        }
        switch (template.isEmpty, policy.isEmpty) {
        case (false, true):
            guard let node = await supervisor.node(template) else {
                let root = String(template.split(separator: "/").first ?? "")
                throw KernelError(.notFound, await supervisor.node(root) == nil
                    ? "no policy '\(root)' is applied" : "no supervisor \(template) (agentctl tree shows the applied policies)")
            }
            guard node.supervisor, node.strategy == "dynamic" else {
                throw KernelError(.invalidArgument, "\(template) is not a dynamic supervisor: goals start agents from a template")
            }
            return template
        case (true, false):
            guard let tree = try await supervisor.tree(policy).first, let node = Self.firstDynamic(tree) else {
                throw KernelError(.invalidArgument, "policy \(policy) has no dynamic supervisor to start goal agents under")
            }
            return node.path
        default:
            throw KernelError(.invalidArgument, "give the goal a --template (a dynamic supervisor's path), a --policy or an --agent")
        }
    }

    private static func firstDynamic(_ node: Agentos_V1_TreeNode) -> Agentos_V1_TreeNode? {
        if node.supervisor && node.strategy == "dynamic" { return node }
        for child in node.children { if let found = firstDynamic(child) { return found } }
        return nil
    }

    private func assigned(_ id: String, identity: String) throws -> GoalRecord {
        guard let goal = goals[id] ?? (try? store.goal(id)), goal.id == id else {
            throw KernelError(.notFound, "no goal '\(id)'")
        }
        guard let path = running[id],
              path == identity || (path.isEmpty && goal.state == .running && identity.hasPrefix(goal.target + "/")) else {
            throw KernelError(.permissionDenied, "goal \(id) is not this agent's (\(goal.state.rawValue))")
        }
        return goal
    }

    private func lookup(_ reference: String) throws -> GoalRecord {
        let stored = try store.goal(reference)
        return goals[stored.id] ?? stored
    }

    /// Stores the goal's new state, then its event.
    private func save(_ goal: GoalRecord, _ kind: String, _ message: String) throws {
        try store.updateGoal(goal)
        record(kind, goal, message)
    }

    private func record(_ kind: String, _ goal: GoalRecord, _ message: String) {
        _ = try? events.record(kind, agentID: goal.agentID, message,
                               data: ["goal": goal.id, "target": goal.target, "priority": String(goal.priority),
                                      "attempts": String(goal.attempts), "state": goal.state.rawValue])
    }

    private func wire(_ goal: GoalRecord) -> Agentos_V1_GoalInfo {
        var info = Agentos_V1_GoalInfo()
        info.id = goal.id
        info.text = goal.text
        info.target = goal.target
        info.policy = goal.policy
        info.priority = Int32(goal.priority)
        info.state = goal.state.rawValue
        info.result = goal.result
        info.agentID = goal.agentID
        info.attempts = UInt32(goal.attempts)
        info.submittedAtNs = goal.submittedAt
        info.startedAtNs = goal.startedAt
        info.endedAtNs = goal.endedAt
        // A waiting goal ages from its submission (a re-queued one too).
        info.effectivePriority = Int32(goal.state == .pending
            ? queue.effectivePriority(goal.priority, enqueuedAt: goal.submittedAt / 1_000_000, now: unixNanoseconds() / 1_000_000)
            : goal.priority)
        return info
    }
}
