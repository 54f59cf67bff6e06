import AgentOSPolicy
import AgentOSProtocol
import AgentOSStore
import AgentOSSupervision
import Foundation
import Logging

/// Binds the pure supervision state machine to real confined processes:
/// one SupervisionTree per applied policy; its actions become Lifecycle
/// runs, signals and timers, and what happens to the agents comes back to
/// it as events. Applied policies and checkpoints live in the store, so a
/// restarted kernel starts every tree again.
actor PolicySupervisor {
    /// Exits this soon after exec, while the tree boots, count as failed
    /// starts: "started" for a plain process means it survived its exec.
    static let bootSettleMilliseconds: Int64 = 10
    /// Largest checkpoint an agent may save.
    static let maximumCheckpointBytes = 1 << 20

    private let lifecycle: Lifecycle
    private let store: StateStore
    private let events: EventHub
    private let parser: PolicyParser
    private let logger: Logger
    private let clock = ContinuousClock()
    private let epoch: ContinuousClock.Instant
    private var applied: [String: AppliedPolicy] = [:]
    /// Capabilities a spawner delegated to a dynamic child (agent.spawn), by
    /// the child's full path: made again at each of its starts.
    private var delegations: [String: [Agentos_V1_Delegation]] = [:]
    /// Live workers: agent id → (policy, child ref).
    private var workers: [String: (policy: String, ref: ChildRef)] = [:]
    private var stopping = false
    /// Policies an apply or delete is working on: one at a time per name.
    private var inProgress: Set<String> = []
    /// Where an applied policy's model budgets go.
    private let budgets: ModelBudgets
    /// Writes this supervisor's events, in order. A step that starts a
    /// child queues them and goes on (the child's start record waits for
    /// them: `Lifecycle.run(_:after:)`), so the start does not wait for a
    /// commit; every other write waits for its turn.
    private let eventWriter = DispatchQueue(label: "agentos.supervisor.events")

    init(lifecycle: Lifecycle, store: StateStore, events: EventHub, parser: PolicyParser = PolicyParser(),
         budgets: ModelBudgets, logger: Logger) {
        self.budgets = budgets
        self.lifecycle = lifecycle
        self.store = store
        self.events = events
        self.parser = parser
        self.logger = logger
        self.epoch = clock.now
    }

    /// Milliseconds on a monotonic clock: the state machine's time.
    private var now: Int64 {
        let elapsed = epoch.duration(to: clock.now).components
        return elapsed.seconds * 1_000 + elapsed.attoseconds / 1_000_000_000_000_000
    }

    // MARK: Start and stop with the kernel

    /// Starts every stored policy's tree again (after a restart of agentd,
    /// clean or not), each with a fresh restart history.
    func restore(reason: String) async {
        let stored: [PolicyRecord]
        do {
            stored = try store.policies()
        } catch {
            logger.error("cannot read applied policies: \(error)")
            return
        }
        for policy in stored {
            do {
                let document = try parser.parse(text: policy.source, file: policy.file)
                record(kind: "policy.restored", policy: policy.name,
                       "policy \(policy.name) (\(policy.file)) started again from its spec: \(reason)")
                try await startTree(document, appliedAt: policy.appliedAt)
            } catch let error as PolicyError {
                record(kind: "policy.restore-failed", policy: policy.name,
                       "policy \(policy.name) no longer validates and was not started: \(error.problems.first?.description ?? "")")
            } catch {
                record(kind: "policy.restore-failed", policy: policy.name,
                       "policy \(policy.name) could not be started again: \(KernelError.from(error).message)")
            }
        }
    }

    /// Stops every tree (each in reverse start order), keeping them applied
    /// for the next start. Bounded: the kernel kills what remains after.
    func stopAll(timeout: Duration) async {
        stopping = true
        for name in applied.keys.sorted() {
            feed(name) { tree, now in tree.shutdown(now: now) }
        }
        let deadline = clock.now + timeout
        while applied.values.contains(where: { $0.tree.ended == nil }), clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    // MARK: Operator calls

    func apply(source: String, file: String, dryRun: Bool) async throws -> Agentos_V1_ApplyResponse {
        guard !stopping else { throw KernelError(.shuttingDown, "the kernel is shutting down") }
        let document: PolicyDocument
        do {
            document = try parser.parse(text: source, file: file)
        } catch {
            let problems = error.problems.map(\.description)
            throw KernelError(.invalidPolicy, problems.first.map { problems.count > 1 ? "\($0) (and \(problems.count - 1) more)" : $0 }
                                  ?? "invalid policy", detail: ["problems": problems.joined(separator: "\n")])
        }
        guard inProgress.insert(document.name).inserted else {
            throw KernelError(.conflict, "policy '\(document.name)' is being applied or deleted right now: try again",
                              detail: ["reason": "busy"])
        }
        defer { inProgress.remove(document.name) }
        var response = Agentos_V1_ApplyResponse()
        response.policy = document.name
        if let current = applied[document.name] {
            guard current.document.file == document.file || current.tree.ended != nil else {
                throw KernelError(.alreadyExists,
                                  "policy '\(document.name)' is already applied from \(current.document.file): "
                                      + "delete it first (agentctl delete \(document.name)) or apply that file")
            }
            let diff = PolicyDiff(old: current.document, new: document)
            response.unchanged = diff.unchanged
            response.restarted = diff.changed
            response.started = diff.added
            response.stopped = diff.removed
            if dryRun || (diff.isEmpty && current.tree.ended == nil) {
                response.tree = treeNode(document.name)
                return response
            }
            let restartPaths = diff.restartPaths(in: document)
            if current.tree.ended == nil, current.booted, !diff.rootChanged, !restartPaths.contains("") {
                // In place: only what changed stops or starts.
                let appliedAt = unixNanoseconds()
                try store.savePolicy(PolicyRecord(name: document.name, file: document.file, source: document.source,
                                                  appliedAt: appliedAt),
                                     event: EventRecord(time: appliedAt, kind: "policy.reapplied", message:
                                         "policy \(document.name) re-applied: \(diff.summary)",
                                                        data: ["policy": document.name, "file": document.file]))
                current.document = document
                registerBudgets(document)
                let changed = Set(restartPaths.map { $0.split(separator: "/").map(String.init) })
                feed(document.name) { tree, now in tree.reconcile(document.root, changed: changed, now: now) }
                try await waitUntilSettled(document.name)
                response.tree = treeNode(document.name)
                return response
            }
            // The root's own flags changed (or the tree had ended): start it again.
            try await stopTree(document.name, reason: "re-applied with a changed spec")
        } else {
            response.created = true
            response.started = PolicyDiff(old: nil, new: document).added
            if dryRun { return response }
        }
        let appliedAt = unixNanoseconds()
        try store.savePolicy(PolicyRecord(name: document.name, file: document.file, source: document.source,
                                          appliedAt: appliedAt),
                             event: EventRecord(time: appliedAt, kind: "policy.applied", message:
                                 "policy \(document.name) applied from \(document.file): \(document.supervisorCount) supervisor(s), \(document.workerCount) worker spec(s)",
                                                data: ["policy": document.name, "file": document.file]))
        do {
            try await startTree(document, appliedAt: appliedAt)
        } catch {
            // A tree that cannot start is not applied: nothing of it runs.
            _ = try? store.deletePolicy(document.name, event: EventRecord(
                time: unixNanoseconds(), kind: "policy.failed", message: "policy \(document.name) did not start: \(KernelError.from(error).message)",
                data: ["policy": document.name]))
            applied[document.name] = nil
            throw error
        }
        response.tree = treeNode(document.name)
        return response
    }

    func list() -> [Agentos_V1_PolicySummary] {
        applied.values.sorted { $0.appliedAt < $1.appliedAt }.map(summary)
    }

    func delete(_ name: String) async throws -> Agentos_V1_PolicySummary {
        guard applied[name] != nil else {
            let known = applied.keys.sorted()
            throw KernelError(.notFound, "no policy '\(name)' is applied"
                                  + (known.isEmpty ? "" : " (applied: \(known.joined(separator: ", ")))"))
        }
        guard inProgress.insert(name).inserted else {
            throw KernelError(.conflict, "policy '\(name)' is being applied or deleted right now: try again",
                              detail: ["reason": "busy"])
        }
        defer { inProgress.remove(name) }
        try await stopTree(name, reason: "deleted")
        var last = applied[name].map(summary) ?? Agentos_V1_PolicySummary()
        last.state = "stopped"
        try store.deletePolicy(name, event: EventRecord(time: unixNanoseconds(), kind: "policy.deleted",
                                                        message: "policy \(name) deleted: its tree is stopped and forgotten",
                                                        data: ["policy": name]))
        applied[name] = nil
        // Its workers' working memory ends with the policy's life.
        _ = try? store.deleteMemory(namespacePrefix: "working:" + name + "/")
        return last
    }

    func tree(_ policy: String) throws -> [Agentos_V1_TreeNode] {
        if policy.isEmpty { return applied.values.sorted { $0.appliedAt < $1.appliedAt }.map { treeNode($0.document.name) } }
        guard applied[policy] != nil else { throw KernelError(.notFound, "no policy '\(policy)' is applied") }
        return [treeNode(policy)]
    }

    enum ChildCall: String { case restart = "restart", terminate = "terminate", start = "start", delete = "delete" }

    func child(_ call: ChildCall, path: String) async throws -> Agentos_V1_TreeNode {
        let (policy, childPath) = try split(path)
        guard let entry = applied[policy] else { throw KernelError(.notFound, "no policy '\(policy)' is applied") }
        let before = findNode(treeNode(policy), path: path)
        do {
            switch call {
            case .restart:
                let actions = try entry.tree.restartChild(childPath, now: now)
                perform(actions, policy: policy)
            case .terminate:
                let actions = try entry.tree.terminateChild(childPath, now: now)
                perform(actions, policy: policy)
                try await waitUntil(policy, path: path) { $0 == nil || $0?.state == "stopped" }
            case .start:
                guard let spec = entry.document.root.child(at: childPath) else {
                    throw KernelError(.notFound, "\(path): no such child in policy \(policy)'s spec")
                }
                let actions = try entry.tree.startChild(under: Array(childPath.dropLast()), spec, now: now)
                perform(actions, policy: policy)
            case .delete:
                try entry.tree.deleteChild(childPath, now: now)
            }
        } catch let error as SupervisionError {
            throw Self.kernelError(error, path: path)
        }
        if call == .restart || call == .start {
            try await waitUntil(policy, path: path) { $0?.state != "restarting" && $0?.state != "starting" }
        }
        if call == .delete, let before { return before }
        return findNode(treeNode(policy), path: path) ?? Agentos_V1_TreeNode()
    }

    func spawn(supervisor path: String, arguments: [String],
               delegations: [Agentos_V1_Delegation] = []) async throws -> Agentos_V1_TreeNode {
        let (policy, supervisorPath) = try split(path, allowRoot: true)
        guard let entry = applied[policy] else { throw KernelError(.notFound, "no policy '\(policy)' is applied") }
        let childPath: [String]
        do {
            let (newPath, actions) = try entry.tree.startDynamicChild(under: supervisorPath, arguments: arguments, now: now)
            childPath = newPath
            // Before its start (and again at each restart): what its spawner handed it.
            if !delegations.isEmpty { self.delegations[([policy] + newPath).joined(separator: "/")] = delegations }
            perform(actions, policy: policy)
        } catch {
            throw Self.kernelError(error, path: path)
        }
        let full = ([policy] + childPath).joined(separator: "/")
        // A new child at a path an earlier boot handed out: its own model spending starts afresh.
        budgets.resetOwnSpend(of: full)
        try await waitUntil(policy, path: full) { $0?.state != "restarting" && $0?.state != "starting" }
        return findNode(treeNode(policy), path: full) ?? Agentos_V1_TreeNode()
    }

    func checkpoints(_ path: String) throws -> [Agentos_V1_Checkpoint] {
        if path.isEmpty { return try store.checkpoints().map { Self.wire($0, withData: false) } }
        let (policy, childPath) = try split(path)
        guard let record = try store.checkpoint(policy: policy, path: childPath.joined(separator: "/")) else {
            throw KernelError(.notFound, "\(path) has saved no checkpoint")
        }
        return [Self.wire(record, withData: true)]
    }

    // MARK: Agent calls

    func ready(agentID: String) async throws {
        // Its start may not have registered it yet (the agent can be faster
        // than the actor hop after the spawn).
        for _ in 0..<40 where workers[agentID] == nil { try? await Task.sleep(for: .milliseconds(5)) }
        guard workers[agentID] != nil else {
            throw KernelError(.invalidArgument, "ready: this agent is not a supervised child")
        }
        readinessResults.removeValue(forKey: agentID)?.resume(returning: true)
    }

    func saveCheckpoint(agentID: String, data: [UInt8]) throws -> Agentos_V1_Checkpoint {
        guard let (policy, ref) = workers[agentID] else {
            throw KernelError(.invalidArgument, "save_checkpoint: this agent is not a supervised child")
        }
        guard data.count <= Self.maximumCheckpointBytes else {
            throw KernelError(.invalidArgument, "checkpoint of \(data.count) bytes: at most \(Self.maximumCheckpointBytes)")
        }
        let record = CheckpointRecord(policy: policy, path: ref.pathString, agentID: agentID, savedAt: unixNanoseconds(),
                                      data: data)
        try store.saveCheckpoint(record)
        return Self.wire(record, withData: false)
    }

    func loadCheckpoint(agentID: String) throws -> Agentos_V1_Checkpoint {
        guard let (policy, ref) = workers[agentID] else {
            throw KernelError(.invalidArgument, "load_checkpoint: this agent is not a supervised child")
        }
        return try store.checkpoint(policy: policy, path: ref.pathString).map { Self.wire($0, withData: true) }
            ?? Agentos_V1_Checkpoint()
    }

    // MARK: Trees

    private func registerBudgets(_ document: PolicyDocument) {
        do {
            try budgets.setPolicy(document.name, document.budgets)
        } catch {
            logger.error("policy \(document.name): cannot store its model budgets: \(error)")
        }
    }

    private func startTree(_ document: PolicyDocument, appliedAt: Int64) async throws {
        registerBudgets(document)
        let entry = AppliedPolicy(document: document, appliedAt: appliedAt)
        applied[document.name] = entry
        feed(document.name) { tree, now in tree.boot(now: now) }
        // The apply answers once the tree is up, or has failed to start.
        await withCheckedContinuation { continuation in
            if entry.booted || entry.tree.ended != nil {
                continuation.resume()
            } else {
                entry.bootWaiters.append(continuation)
            }
        }
        eventsWritten()
        if !entry.booted, let reason = entry.tree.ended {
            throw KernelError(.spawnFailed, "policy \(document.name): \(reason); nothing of it is running")
        }
    }

    /// Stops a tree and waits until its last process is gone.
    private func stopTree(_ name: String, reason: String) async throws {
        guard let entry = applied[name], entry.tree.ended == nil else { return }
        record(kind: "policy.stopping", policy: name, "policy \(name): stopping its tree (\(reason))")
        feed(name) { tree, now in tree.shutdown(now: now) }
        await withCheckedContinuation { continuation in
            if entry.tree.ended != nil { continuation.resume() } else { entry.endWaiters.append(continuation) }
        }
        // Nothing of the tree restarts any more: its armed replacements go now.
        await lifecycle.discardArmedReplacements(of: Array(entry.lastAgent.values))
        eventsWritten()
    }

    /// Returns once every event queued so far is written: an admin call
    /// answers only then, so that its caller finds them in the log.
    private func eventsWritten() {
        eventWriter.sync {}
    }

    /// Runs one input through a tree and carries out what it asks for.
    private func feed(_ policy: String, _ body: (SupervisionTree, Int64) -> [SupervisionAction]) {
        guard let entry = applied[policy] else { return }
        perform(body(entry.tree, now), policy: policy)
    }

    private func perform(_ actions: [SupervisionAction], policy: String) {
        guard let entry = applied[policy] else { return }
        // The step's plain reports are written together, in one commit,
        // before anything else it does takes effect (a restart's exit and
        // restarting come before its start, in the log as in time).
        var reports: [EventRecord] = []
        var started = false
        // After a start, nothing of this step follows: the rest is queued too.
        defer { write(&reports, entry, queued: started) }
        for action in actions {
            if case .report(let report) = action, let event = plainEvent(report, policy: policy, entry: entry) {
                reports.append(event)
                continue
            }
            guard case .start(let ref, let launch, let extra) = action else {
                write(&reports, entry)
                perform(action, policy: policy, entry: entry)
                continue
            }
            guard let settings = entry.document.launch(for: launch) else {
                write(&reports, entry)
                feed(policy) { tree, now in tree.startFailed(ref, reason: "no launch settings for \(launch)", now: now) }
                continue
            }
            // The spawn begins now; its start is recorded once the reports
            // before it are (written meanwhile, while its sandbox is readied).
            let written = Handoff<Void>()
            start(ref, settings, extra: extra, policy: policy, entry: entry, after: written)
            write(&reports, entry, queued: true, then: written)
            started = true
        }
    }

    private func start(_ ref: ChildRef, _ settings: WorkerLaunch, extra: [String], policy: String, entry: AppliedPolicy,
                       after written: Handoff<Void>) {
        let request = runRequest(policy: policy, ref: ref, settings, extraArguments: extra)
        let settle = entry.booted ? 0 : Self.bootSettleMilliseconds
        let tree = ObjectIdentifier(entry)
        let lifecycle = self.lifecycle
        // The agent this start replaces (its armed replacement may serve),
        // and whether this one gets one: a child that is restarted, once it
        // has been (a child that never ends costs no second sandbox).
        let replacing = entry.lastAgent[ref.pathString]
        let restarted = replacing != nil && entry.document.isRestarted(at: ref.path)
        // Detached: the spawn begins now, not once this actor has written
        // the events of the rest of this step's actions.
        Task.detached {
            let started: Result<AgentRecord, KernelError>
            do {
                started = .success(try await lifecycle.run(request, after: written, replacing: replacing,
                                                           armsReplacement: restarted))
            } catch {
                started = .failure(KernelError.from(error))
            }
            await self.startWorker(policy: policy, tree: tree, ref: ref, started: started,
                                   readiness: settings.readiness, startTimeout: settings.startTimeoutMilliseconds,
                                   settle: settle)
        }
    }

    /// One action of a step other than a start.
    private func perform(_ action: SupervisionAction, policy: String, entry: AppliedPolicy) {
        switch action {
        case .start:
            break   // see `perform(_:policy:)`
        case .terminate(let ref):
            let lifecycle = self.lifecycle
            if let agentID = entry.agentID(of: ref) { Task { await lifecycle.signal(id: agentID, SIGTERM) } }
        case .kill(let ref):
            let lifecycle = self.lifecycle
            if let agentID = entry.agentID(of: ref) { Task { await lifecycle.signal(id: agentID, SIGKILL) } }
        case .startTimer(let id, let at):
            let delay = max(0, at - now)
            entry.timers[id] = Task {
                try? await Task.sleep(for: .milliseconds(delay))
                guard !Task.isCancelled else { return }
                self.timerFired(policy: policy, id)
            }
        case .cancelTimer(let id):
            entry.timers.removeValue(forKey: id)?.cancel()
        case .report(let report):
            handle(report, policy: policy, entry: entry)
        }
    }

    private func timerFired(policy: String, _ id: TimerID) {
        guard let entry = applied[policy], entry.timers.removeValue(forKey: id) != nil else { return }
        feed(policy) { tree, now in tree.timerFired(id, now: now) }
    }

    /// A worker's spawn ended (`started`): tell the tree, once the worker is
    /// ready if its readiness is notify.
    private func startWorker(policy: String, tree: ObjectIdentifier, ref: ChildRef,
                             started: Result<AgentRecord, KernelError>,
                             readiness: WorkerLaunch.Readiness, startTimeout: Int64, settle: Int64) async {
        let record: AgentRecord
        switch started {
        case .success(let spawned):
            record = spawned
        case .failure(let error):
            guard let entry = applied[policy], ObjectIdentifier(entry) == tree else { return }
            feed(policy) { tree, now in tree.startFailed(ref, reason: error.message, now: now) }
            return
        }
        guard let entry = applied[policy], ObjectIdentifier(entry) == tree else {
            // The tree it was started for is gone (deleted, or replaced by a new one of that name).
            await lifecycle.signal(id: record.id, SIGKILL)
            return
        }
        entry.current[ref.pathString] = (ref, record.id)
        // Only a child that is restarted needs it (a temporary one, such as
        // a dynamic pool's worker, would leave an entry per spawn).
        if entry.document.isRestarted(at: ref.path) {
            entry.lastAgent[ref.pathString] = record.id
        }
        workers[record.id] = (policy, ref)
        let agentID = record.id
        Task { await self.watchExit(policy: policy, tree: tree, ref: ref, agentID: agentID) }
        switch readiness {
        case .notify:
            let ready = await waitForReadiness(agentID: agentID, timeoutMilliseconds: startTimeout)
            guard workers[agentID] != nil else { return }  // it exited meanwhile
            guard ready else {
                feed(policy) { tree, now in
                    tree.startFailed(ref, reason: "no readiness within \(startTimeout) ms", now: now)
                }
                await lifecycle.signal(id: agentID, SIGKILL)
                return
            }
        case .none:
            if settle > 0 { try? await Task.sleep(for: .milliseconds(settle)) }
            guard workers[agentID] != nil else { return }
        }
        let pid = record.pid
        feed(policy) { tree, now in tree.started(ref, pid: pid, now: now) }
    }

    private func waitForReadiness(agentID: String, timeoutMilliseconds: Int64) async -> Bool {
        let timeout = Task {
            try? await Task.sleep(for: .milliseconds(timeoutMilliseconds))
            self.readinessTimedOut(agentID)
        }
        defer { timeout.cancel() }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            // It may have exited already (its exit watcher ran first).
            if workers[agentID] == nil {
                continuation.resume(returning: false)
            } else {
                readinessResults[agentID] = continuation
            }
        }
    }

    private var readinessResults: [String: CheckedContinuation<Bool, Never>] = [:]
    /// An agent's end, while the step it causes runs: `write` takes it.
    private var endingAgent: EndingAgent?

    private func readinessTimedOut(_ agentID: String) {
        readinessResults.removeValue(forKey: agentID)?.resume(returning: false)
    }

    private func watchExit(policy: String, tree: ObjectIdentifier, ref: ChildRef, agentID: String) async {
        let ending = await lifecycle.watchEnd(agentID)
        let record = if let ending { ending.record } else { try? await lifecycle.wait(agentID) }
        workers[agentID] = nil
        // An exit before readiness ends the wait for it.
        readinessResults.removeValue(forKey: agentID)?.resume(returning: false)
        guard let entry = applied[policy], ObjectIdentifier(entry) == tree else {
            ending?.written(false)   // the lifecycle writes it
            return
        }
        let status = Self.exitStatus(record?.exit)
        // The end is written with the first events of the step it causes
        // (`write` takes it); if the step wrote nothing, the lifecycle does.
        endingAgent = ending
        feed(policy) { tree, now in tree.exited(ref, status: status, now: now) }
        endingAgent?.written(false)
        endingAgent = nil
        if entry.current[ref.pathString]?.agentID == agentID { entry.current[ref.pathString] = nil }
    }

    private func handle(_ report: SupervisionReport, policy: String, entry: AppliedPolicy) {
        switch report {
        case .treeStarted:
            entry.booted = true
            record(kind: "policy.started", policy: policy, "policy \(policy): tree started")
            for waiter in entry.bootWaiters { waiter.resume() }
            entry.bootWaiters.removeAll()
        case .treeStopped(let reason):
            record(kind: "policy.stopped", policy: policy, "policy \(policy): tree stopped: \(reason)",
                   data: ["reason": reason.description])
            for timer in entry.timers.values { timer.cancel() }
            entry.timers.removeAll()
            for waiter in entry.bootWaiters { waiter.resume() }
            entry.bootWaiters.removeAll()
            for waiter in entry.endWaiters { waiter.resume() }
            entry.endWaiters.removeAll()
        default:
            break   // every other report is a plain event, written with its step (`plainEvent`)
        }
        entry.changed()
    }

    // MARK: Helpers

    private func runRequest(policy: String, ref: ChildRef, _ settings: WorkerLaunch,
                            extraArguments: [String]) -> Agentos_V1_RunRequest {
        var request = Agentos_V1_RunRequest()
        let name = ([policy] + ref.path).joined(separator: ".")
        if Lifecycle.isValidName(name) { request.name = name }
        request.argv = [settings.program] + settings.args + extraArguments
        request.env = settings.env
        request.env["AGENTOS_POLICY"] = policy
        request.env["AGENTOS_CHILD_PATH"] = ([policy] + ref.path).joined(separator: "/")
        request.env["AGENTOS_INCARNATION"] = String(ref.incarnation)
        request.capabilities = settings.capabilities
        request.capabilitySource = "policy:" + ([policy] + ref.path).joined(separator: "/")
        request.delegations = delegations[([policy] + ref.path).joined(separator: "/")] ?? []
        if let server = settings.mcpServer { request.mcpServer = server }
        if let workdir = settings.workdir { request.workDir = workdir }
        if let memory = settings.limits.memoryBytes { request.limits.memoryBytes = UInt64(clamping: memory) }
        if let pids = settings.limits.pids { request.limits.pids = UInt32(clamping: pids) }
        if let cpus = settings.limits.cpus { request.limits.cpus = cpus }
        if let timeout = settings.limits.timeoutMilliseconds { request.limits.timeoutMs = UInt64(clamping: timeout) }
        request.sandbox.readOnly = settings.sandbox.readOnly
        request.sandbox.readWrite = settings.sandbox.readWrite
        if let size = settings.sandbox.tmpSizeBytes { request.sandbox.tmpSize = UInt64(clamping: size) }
        request.sandbox.network = settings.sandbox.network
        request.sandbox.seccomp = settings.sandbox.seccomp
        return request
    }

    /// A report that is only an event (not the tree's start or stop).
    private func plainEvent(_ report: SupervisionReport, policy: String, entry: AppliedPolicy) -> EventRecord? {
        switch report {
        case .treeStarted, .treeStopped:
            return nil
        default:
            let (kind, message, data) = Self.describe(report, policy: policy, entry: entry)
            return Self.event(kind, policy: policy, message, agentID: data["agent"] ?? "", data: data)
        }
    }

    /// Writes a step's events in one commit and empties the list; an
    /// ended agent's end (the step's cause) first, if it is not written yet.
    /// `queued`: returns at once (`written` is fulfilled after the commit);
    /// else once the events are written.
    private func write(_ reports: inout [EventRecord], _ entry: AppliedPolicy, queued: Bool = false,
                       then written: Handoff<Void>? = nil) {
        let ending = endingAgent
        endingAgent = nil
        guard !reports.isEmpty || ending != nil || written != nil else { return }
        let batch = reports
        reports = []
        let events = self.events
        let store = self.store
        let logger = self.logger
        let commit: @Sendable () -> Void = {
            // The end, when not written here, the lifecycle writes alone.
            var wroteEnd = false
            if !batch.isEmpty || ending != nil {
                do {
                    if let ending {
                        try events.record(batch, after: ending.record, ended: ending.event)
                        wroteEnd = true
                    } else {
                        try events.record(batch)
                    }
                } catch {
                    logger.error("cannot record events \(batch.map(\.kind)): \(error)")
                    // The end alone, still before the replacement's start record.
                    if let ending, let stored = try? store.update(ending.record, event: ending.event) {
                        events.publish(stored)
                        wroteEnd = true
                    }
                }
            }
            ending?.written(wroteEnd)
            written?.fulfil(())
        }
        if queued {
            eventWriter.async(execute: commit)
        } else {
            eventWriter.sync(execute: commit)
        }
        entry.changed()
    }

    private func record(kind: String, policy: String, _ message: String, agentID: String = "",
                        data: [String: String] = [:]) {
        let event = Self.event(kind, policy: policy, message, agentID: agentID, data: data)
        let events = self.events
        let logger = self.logger
        eventWriter.sync {
            do {
                try events.record([event])
            } catch {
                logger.error("cannot record event \(kind): \(error)")
            }
        }
    }

    /// A supervision event: every one names its policy.
    private static func event(_ kind: String, policy: String, _ message: String, agentID: String,
                              data: [String: String]) -> EventRecord {
        var data = data
        data["policy"] = policy
        return EventRecord(time: unixNanoseconds(), kind: kind, agentID: agentID, message: message, data: data)
    }

    private static func describe(_ report: SupervisionReport, policy: String,
                                 entry: AppliedPolicy) -> (String, String, [String: String]) {
        func name(_ path: [String]) -> String { ([policy] + path).joined(separator: "/") }
        switch report {
        case .started(let path, let pid):
            var data = ["path": name(path)]
            if let pid { data["pid"] = String(pid) }
            if let agent = entry.current[path.joined(separator: "/")]?.agentID { data["agent"] = agent }
            return ("supervision.started", pid.map { "\(name(path)) started: pid \($0)" } ?? "\(name(path)) started (supervisor)", data)
        case .startFailed(let path, let reason):
            return ("supervision.start-failed", "\(name(path)) failed to start: \(reason)", ["path": name(path), "reason": reason])
        case .exited(let path, let status, let outcome):
            var data = ["path": name(path), "outcome": outcome.rawValue]
            if let agent = entry.current[path.joined(separator: "/")]?.agentID { data["agent"] = agent }
            if let status { data["status"] = status.description }
            let how = status.map { " (\($0))" } ?? ""
            return ("supervision.exited", "\(name(path)) exited\(how): \(outcome.rawValue)", data)
        case .restarting(let path, let delay):
            return ("supervision.restarting", "\(name(path)) restarting" + (delay > 0 ? " in \(delay) ms" : ""),
                    ["path": name(path), "delay_ms": String(delay)])
        case .gaveUp(let path):
            return ("supervision.gave-up", "\(name(path)): reached max restart intensity, giving up", ["path": name(path)])
        case .autoShutdown(let path):
            return ("supervision.auto-shutdown", "\(name(path)): significant children ended, shutting down", ["path": name(path)])
        case .treeStarted, .treeStopped:
            return ("supervision.tree", "", [:])
        }
    }

    private static func exitStatus(_ exit: ExitRecord?) -> AgentOSSupervision.ExitStatus {
        guard let exit else { return .signaled(SIGKILL) }
        switch exit.reason {
        case "oom": return .oomKilled
        case "timeout": return .timedOut
        default:
            if let code = exit.code { return .exited(code) }
            if let signal = exit.signal { return .signaled(signal) }
            return .signaled(SIGKILL)
        }
    }

    /// The machine's errors, worded with the full child path (policy included).
    private static func kernelError(_ error: SupervisionError, path: String) -> KernelError {
        let reason = ["reason": error.code]
        switch error {
        case .notFound: return KernelError(.notFound, "\(path): no such child (see agentctl tree)")
        case .invalidSpec(let message): return KernelError(.invalidPolicy, "\(path): \(message)")
        case .running: return KernelError(.conflict, "\(path) is running (terminate it first)", detail: reason)
        case .restarting: return KernelError(.conflict, "\(path) is restarting", detail: reason)
        case .alreadyPresent:
            return KernelError(.conflict, "\(path) is already present and stopped: use agentctl restart", detail: reason)
        case .alreadyStarted: return KernelError(.conflict, "\(path) is already started", detail: reason)
        case .notSupported:
            return KernelError(.conflict, "\(path): not supported on a child of a dynamic supervisor (use terminate)",
                               detail: reason)
        case .maxChildren: return KernelError(.conflict, "\(path) has max_children children already", detail: reason)
        case .notDynamic: return KernelError(.conflict, "\(path) is not a dynamic supervisor", detail: reason)
        case .notRunning: return KernelError(.conflict, "\(path): its supervisor is stopping", detail: reason)
        }
    }

    private func split(_ path: String, allowRoot: Bool = false) throws -> (String, [String]) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let policy = parts.first, !policy.isEmpty, !parts.contains(""), allowRoot || parts.count > 1 else {
            throw KernelError(.invalidArgument,
                              "invalid child path '\(path)': use POLICY/CHILD[/CHILD...], e.g. team/workers/w1")
        }
        return (policy, Array(parts.dropFirst()))
    }

    /// Waits (bounded) until a child reaches a state; the tree changes only
    /// through this actor, so each change is a moment to look again.
    private func waitUntil(_ policy: String, path: String,
                           _ condition: (Agentos_V1_TreeNode?) -> Bool) async throws {
        let deadline = clock.now + Self.answerDeadline
        let wake = wakeAt(deadline, policy: policy)
        defer {
            wake.cancel()
            eventsWritten()
        }
        while let entry = applied[policy], entry.tree.ended == nil, !condition(findNode(treeNode(policy), path: path)) {
            guard clock.now < deadline else { return }
            await withCheckedContinuation { entry.changeWaiters.append($0) }
        }
    }

    /// How long an admin call waits for the tree to settle before answering
    /// with the state it is in (a child with `shutdown: infinity` may never stop).
    static let answerDeadline: Duration = .seconds(60)

    /// Wakes a policy's change waiters at `deadline`, so that they look at the clock.
    private func wakeAt(_ deadline: ContinuousClock.Instant, policy: String) -> Task<Void, Never> {
        Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            guard !Task.isCancelled else { return }
            self.applied[policy]?.changed()
        }
    }

    /// Waits (bounded) until no child is starting, restarting or stopping.
    private func waitUntilSettled(_ policy: String) async throws {
        func busy(_ node: Agentos_V1_TreeNode) -> Bool {
            ["starting", "stopping"].contains(node.state) || node.children.contains(where: busy)
        }
        let deadline = clock.now + Self.answerDeadline
        let wake = wakeAt(deadline, policy: policy)
        defer {
            wake.cancel()
            eventsWritten()
        }
        while let entry = applied[policy], entry.tree.ended == nil, busy(treeNode(policy)), clock.now < deadline {
            await withCheckedContinuation { entry.changeWaiters.append($0) }
        }
    }

    /// The live node at a full path (POLICY/CHILD/...), or nil.
    func node(_ path: String) -> Agentos_V1_TreeNode? {
        let policy = String(path.split(separator: "/").first ?? "")
        guard applied[policy] != nil else { return nil }
        return findNode(treeNode(policy), path: path)
    }

    private func findNode(_ node: Agentos_V1_TreeNode, path: String) -> Agentos_V1_TreeNode? {
        Self.find(node, path: path)
    }

    /// The node at `path` in a tree.
    nonisolated static func find(_ node: Agentos_V1_TreeNode, path: String) -> Agentos_V1_TreeNode? {
        if node.path == path { return node }
        for child in node.children {
            if path == child.path || path.hasPrefix(child.path + "/"), let found = find(child, path: path) { return found }
        }
        return nil
    }

    private func summary(_ entry: AppliedPolicy) -> Agentos_V1_PolicySummary {
        var summary = Agentos_V1_PolicySummary()
        summary.name = entry.document.name
        summary.file = entry.document.file
        summary.appliedAtNs = entry.appliedAt
        if let reason = entry.tree.ended {
            summary.state = "stopped"
            summary.endedReason = reason.description
        } else {
            summary.state = entry.booted ? "running" : "starting"
        }
        func count(_ info: ChildInfo) {
            for child in info.children {
                if child.isSupervisor {
                    summary.supervisors += 1
                    count(child)
                } else if child.state == .running {
                    summary.workers += 1
                }
            }
        }
        count(entry.tree.snapshot())
        summary.supervisors += 1
        return summary
    }

    private func treeNode(_ policy: String) -> Agentos_V1_TreeNode {
        guard let entry = applied[policy] else { return Agentos_V1_TreeNode() }
        let wallNow = unixNanoseconds()
        let monotonicNow = now
        func convert(_ info: ChildInfo, spec: ChildSpec?, supervisor: SupervisorSpec?) -> Agentos_V1_TreeNode {
            var node = Agentos_V1_TreeNode()
            node.path = ([policy] + info.path).joined(separator: "/")
            node.id = info.path.isEmpty ? policy : info.id
            node.supervisor = info.isSupervisor
            node.state = entry.tree.ended != nil && info.path.isEmpty ? "stopped" : info.state.rawValue
            if let pid = info.pid { node.pid = pid }
            if let agent = entry.current[info.path.joined(separator: "/")]?.agentID, !info.isSupervisor {
                node.agentID = agent
            }
            if let restarts = info.restartsInWindow { node.restartsInWindow = UInt32(restarts) }
            if let started = info.startedAt { node.startedAtNs = wallNow - (monotonicNow - started) * 1_000_000 }
            if let supervisor {
                node.strategy = supervisor.strategy.rawValue
                node.intensity = UInt32(clamping: supervisor.intensity)
                node.periodMs = UInt64(clamping: supervisor.periodMilliseconds)
            }
            if let spec { node.restart = spec.restart.rawValue }
            node.extraArgs = info.extraArguments
            node.incarnation = info.incarnation
            node.children = info.children.map { child in
                let childSpec = supervisor.flatMap { sup in
                    sup.children.first { $0.id == child.id } ?? sup.template
                }
                var nested: SupervisorSpec?
                if case .supervisor(let inner) = childSpec?.kind { nested = inner }
                return convert(child, spec: childSpec, supervisor: nested)
            }
            return node
        }
        return convert(entry.tree.snapshot(), spec: nil, supervisor: entry.document.root)
    }

    private static func wire(_ record: CheckpointRecord, withData: Bool) -> Agentos_V1_Checkpoint {
        var checkpoint = Agentos_V1_Checkpoint()
        checkpoint.path = record.policy + "/" + record.path
        checkpoint.savedAtNs = record.savedAt
        checkpoint.size = UInt64(record.data.count)
        checkpoint.agentID = record.agentID
        if withData { checkpoint.data = Data(record.data) }
        return checkpoint
    }
}

/// One applied policy's live state. Owned by the PolicySupervisor actor.
final class AppliedPolicy {
    /// The spec in force (replaced by a re-apply).
    var document: PolicyDocument
    let tree: SupervisionTree
    let appliedAt: Int64
    var booted = false
    /// Child path → its current start and the agent running it.
    var current: [String: (ref: ChildRef, agentID: String)] = [:]
    /// The last agent started for each path, running or not: what a start
    /// there replaces (a one_for_all sibling's entry in `current` is gone
    /// by the time it is started again).
    var lastAgent: [String: String] = [:]
    var timers: [TimerID: Task<Void, Never>] = [:]
    var bootWaiters: [CheckedContinuation<Void, Never>] = []
    var endWaiters: [CheckedContinuation<Void, Never>] = []
    /// Waiting for the tree to change (admin calls that answer with the child's new state).
    var changeWaiters: [CheckedContinuation<Void, Never>] = []

    /// The agent running this start of a worker, if it still runs.
    func agentID(of ref: ChildRef) -> String? {
        guard let entry = current[ref.pathString], entry.ref == ref else { return nil }
        return entry.agentID
    }

    init(document: PolicyDocument, appliedAt: Int64) {
        self.document = document
        self.tree = SupervisionTree(name: document.name, root: document.root)
        self.appliedAt = appliedAt
    }

    func changed() {
        let waiters = changeWaiters
        changeWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }
}
