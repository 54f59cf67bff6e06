// One supervision tree as a pure state machine: events in, actions out, the
// time injected. Each supervisor works through a queue of steps one at a
// time, as an OTP supervisor handles one message at a time: a start is
// finished before the next step, a stop too, so start order and reverse
// stop order hold by construction. Nested supervisors live in the same
// machine; their start ends when their own boot ends, their stop when
// their last child stopped.
//
// Not thread-safe: one owner (an actor in the kernel) drives it.

public final class SupervisionTree {
    public let name: String
    private var nodes: [String: Node] = [:]
    private var timers: [TimerID: TimerPurpose] = [:]
    private var nextTimer: UInt64 = 1
    private var nextIncarnation: UInt64 = 1
    private var output: [SupervisionAction] = []
    private var now: Int64 = 0
    /// Set once the root has ended: the tree does nothing more.
    public private(set) var ended: SupervisorExit?
    public private(set) var booted = false

    public init(name: String, root: SupervisorSpec) {
        self.name = name
        nodes[""] = Node(path: [], spec: root)
    }

    // MARK: Events

    /// Starts the tree: the root's children in order.
    public func boot(now: Int64) -> [SupervisionAction] {
        self.now = now
        guard !booted, let root = nodes[""] else { return [] }
        booted = true
        enqueueBoot(root)
        advance(root)
        return drain()
    }

    /// A worker is up (exec'd, or ready when it must say so).
    public func started(_ ref: ChildRef, pid: Int32, now: Int64) -> [SupervisionAction] {
        self.now = now
        guard let (node, index) = locate(ref), case .starting = node.children[index].status else { return drain() }
        node.children[index].status = .running(pid: pid)
        node.children[index].startedAt = now
        emit(.report(.started(path: ref.path, pid: pid)))
        if case .starting(let id, _) = node.busy, id == node.children[index].spec.id { node.busy = nil }
        advance(node)
        return drain()
    }

    /// A worker could not be started (spawn error, no readiness in time, exit before ready).
    public func startFailed(_ ref: ChildRef, reason: String, now: Int64) -> [SupervisionAction] {
        self.now = now
        guard let (node, index) = locate(ref), case .starting = node.children[index].status else { return drain() }
        childStartFailed(node, index: index, reason: reason)
        return drain()
    }

    /// A worker process ended.
    public func exited(_ ref: ChildRef, status: ExitStatus, now: Int64) -> [SupervisionAction] {
        self.now = now
        guard let (node, index) = locate(ref) else { return drain() }
        let child = node.children[index]
        switch child.status {
        case .starting:
            // Died before it counted as started: a failed start.
            childStartFailed(node, index: index, reason: "exited while starting (\(status))")
        case .stopping(_, let timer, let mode):
            if let timer { cancelTimer(timer) }
            emit(.report(.exited(path: ref.path, status: status, outcome: .stopped)))
            childStopped(node, index: index, mode: mode)
        case .running:
            let outcome = Self.classify(status, spec: child.spec)
            emit(.report(.exited(path: ref.path, status: status, outcome: outcome)))
            node.children[index].status = .stopped
            node.children[index].startedAt = nil
            node.queue.append(.handleExit(child.spec.id, incarnation: ref.incarnation, outcome))
            advance(node)
        case .stopped, .restarting, .backoff:
            break
        }
        return drain()
    }

    public func timerFired(_ id: TimerID, now: Int64) -> [SupervisionAction] {
        self.now = now
        guard let purpose = timers.removeValue(forKey: id) else { return drain() }
        switch purpose {
        case .shutdownTimeout(let path, let childID):
            guard let node = nodes[path], let index = node.index(of: childID),
                  case .stopping(let pid, let timer, let mode) = node.children[index].status, timer == id else { break }
            node.children[index].status = .stopping(pid: pid, timer: nil, mode: mode)
            killSubtree(node, index: index)
        case .backoff(let path, let childID):
            guard let node = nodes[path], let index = node.index(of: childID),
                  case .backoff(let timer) = node.children[index].status, timer == id else { break }
            node.children[index].status = .restarting
            node.queue.append(.start(childID, .restart))
            advance(node)
        case .delay(let path):
            guard let node = nodes[path], case .delay(let timer) = node.busy, timer == id else { break }
            node.busy = nil
            advance(node)
        }
        return drain()
    }

    /// Stops the whole tree: every child in reverse start order, per its shutdown spec.
    public func shutdown(now: Int64) -> [SupervisionAction] {
        self.now = now
        if let root = nodes[""], booted, ended == nil { stopSupervisor(root, reason: .shutdown) }
        return drain()
    }

    // MARK: Admin calls (OTP's supervisor API)

    /// terminate_child: idempotent; keeps the spec unless temporary (or dynamic).
    public func terminateChild(_ path: [String], now: Int64) throws(SupervisionError) -> [SupervisionAction] {
        self.now = now
        let (node, index) = try locateChild(path)
        try node.requireRunning(path)
        switch node.children[index].status {
        case .running, .starting:
            node.queue.append(.terminate(node.children[index].spec.id, .manual))
            advance(node)
        case .stopping:
            break
        case .restarting, .backoff, .stopped:
            if case .backoff(let timer) = node.children[index].status { cancelTimer(timer) }
            // An exit still waiting for its restart decision is dropped, as OTP does.
            let id = node.children[index].spec.id
            node.queue.removeAll { step in
                if case .handleExit(id, _, _) = step { return true }
                if case .start(id, .restart) = step { return true }
                return false
            }
            node.children[index].status = .stopped
            if node.children[index].spec.restart == .temporary || node.spec.strategy == .dynamic {
                node.children.remove(at: index)
            }
        }
        return drain()
    }

    /// restart_child: only for a stopped child of a static supervisor.
    public func restartChild(_ path: [String], now: Int64) throws(SupervisionError) -> [SupervisionAction] {
        self.now = now
        let (node, index) = try locateChild(path)
        let name = path.joined(separator: "/")
        guard node.spec.strategy != .dynamic else { throw .notSupported(name) }
        try node.requireRunning(path)
        switch node.children[index].status {
        case .running, .starting, .stopping: throw .running(name)
        case .restarting, .backoff: throw .restarting(name)
        case .stopped:
            node.queue.append(.start(node.children[index].spec.id, .manual))
            node.children[index].status = .restarting
            advance(node)
        }
        return drain()
    }

    /// delete_child: only for a stopped child of a static supervisor.
    public func deleteChild(_ path: [String], now: Int64) throws(SupervisionError) {
        self.now = now
        let (node, index) = try locateChild(path)
        let name = path.joined(separator: "/")
        guard node.spec.strategy != .dynamic else { throw .notSupported(name) }
        switch node.children[index].status {
        case .running, .starting, .stopping: throw .running(name)
        case .restarting, .backoff: throw .restarting(name)
        case .stopped: node.children.remove(at: index)
        }
    }

    /// start_child on a static supervisor: the new child goes last in start order.
    public func startChild(under supervisorPath: [String], _ spec: ChildSpec,
                           now: Int64) throws(SupervisionError) -> [SupervisionAction] {
        self.now = now
        guard let node = nodes[Self.key(supervisorPath)] else { throw .notFound(supervisorPath.joined(separator: "/")) }
        let name = (supervisorPath + [spec.id]).joined(separator: "/")
        if node.spec.strategy == .dynamic { throw .notSupported(name) }
        try node.requireRunning(supervisorPath)
        if let index = node.index(of: spec.id) {
            if case .stopped = node.children[index].status { throw .alreadyPresent(name) }
            throw .alreadyStarted(name)
        }
        var probe = node.spec
        probe.children = node.children.map(\.spec) + [spec]
        if let problem = probe.problems(at: supervisorPath).first { throw .invalidSpec(problem.description) }
        node.children.append(Child(spec: spec, launch: name, extraArguments: []))
        node.queue.append(.start(spec.id, .manual))
        node.children[node.children.count - 1].status = .restarting
        advance(node)
        return drain()
    }

    /// start_child on a dynamic supervisor: a new child from its template,
    /// with `arguments` appended to the template's. Returns the new child's path.
    public func startDynamicChild(under supervisorPath: [String], arguments: [String],
                                  now: Int64) throws(SupervisionError) -> ([String], [SupervisionAction]) {
        self.now = now
        let name = supervisorPath.joined(separator: "/")
        guard let node = nodes[Self.key(supervisorPath)] else { throw .notFound(name) }
        guard node.spec.strategy == .dynamic, let template = node.spec.template else { throw .notDynamic(name) }
        try node.requireRunning(supervisorPath)
        if let maximum = node.spec.maxChildren, node.children.count >= maximum { throw .maxChildren(name) }
        node.dynamicSerial += 1
        var spec = template
        spec.id = "\(template.id)-\(node.dynamicSerial)"
        let launch = (supervisorPath + [template.id]).joined(separator: "/")
        node.children.append(Child(spec: spec, launch: launch, extraArguments: arguments))
        node.children[node.children.count - 1].status = .restarting
        node.queue.append(.start(spec.id, .manual))
        advance(node)
        return (supervisorPath + [spec.id], drain())
    }

    // MARK: Re-applying a changed spec

    /// Brings a running tree to a new spec in place: children the new spec
    /// drops stop (newest first) and go; children whose own settings
    /// changed (`changed`: their paths) stop and start again from the new
    /// spec; new children start at their place in the start order; every
    /// other child keeps running, untouched. Subtrees recurse. A changed
    /// root (its own flags) is not handled here: restart the tree.
    public func reconcile(_ newRoot: SupervisorSpec, changed: Set<[String]>, now: Int64) -> [SupervisionAction] {
        self.now = now
        if let root = nodes[""], root.phase == .running || root.phase == .booting {
            reconcile(root, with: newRoot, changed: changed)
        }
        return drain()
    }

    private func reconcile(_ node: Node, with spec: SupervisorSpec, changed: Set<[String]>) {
        guard spec.strategy != .dynamic else {
            node.spec = spec
            return
        }
        let wanted = Set(spec.children.map(\.id))
        var steps: [Step] = []
        // Dropped children: stop newest first; the spec goes with the stop.
        for child in node.children.reversed() where !wanted.contains(child.spec.id) {
            steps.append(.terminate(child.spec.id, .removal))
        }
        var reordered: [Child] = []
        for newSpec in spec.children {
            let path = node.path + [newSpec.id]
            if var existing = node.children.first(where: { $0.spec.id == newSpec.id }) {
                if changed.contains(path) {
                    // Stopped as it was (its old kind and shutdown), then
                    // started from the new spec.
                    steps.append(.terminate(newSpec.id, .replacement))
                    steps.append(.replace(newSpec))
                    steps.append(.start(newSpec.id, .restart))
                } else if case .supervisor(let nested) = newSpec.kind, let sub = nodes[Self.key(path)] {
                    existing.spec = newSpec
                    reconcile(sub, with: nested, changed: changed)
                } else {
                    existing.spec = newSpec
                }
                reordered.append(existing)
            } else {
                var added = Child(spec: newSpec, launch: Self.key(path), extraArguments: [])
                added.status = .restarting
                reordered.append(added)
                steps.append(.start(newSpec.id, .manual))
            }
        }
        // Dropped children stay listed until their stop step has run.
        for child in node.children where !wanted.contains(child.spec.id) { reordered.append(child) }
        node.children = reordered
        node.spec = spec
        node.queue += steps
        advance(node)
    }

    // MARK: Queries

    /// which_children: in reverse start order, as OTP answers.
    public func whichChildren(_ supervisorPath: [String]) throws(SupervisionError) -> [ChildInfo] {
        guard let node = nodes[Self.key(supervisorPath)] else { throw .notFound(supervisorPath.joined(separator: "/")) }
        return node.children.reversed().map { info(node, $0) }
    }

    public func countChildren(_ supervisorPath: [String]) throws(SupervisionError) -> ChildCounts {
        guard let node = nodes[Self.key(supervisorPath)] else { throw .notFound(supervisorPath.joined(separator: "/")) }
        var counts = ChildCounts(specs: node.children.count, active: 0, supervisors: 0, workers: 0)
        for child in node.children {
            if child.spec.isSupervisor { counts.supervisors += 1 } else { counts.workers += 1 }
            if case .running = child.status { counts.active += 1 }
        }
        return counts
    }

    /// The whole tree, children in start order (for `agentctl tree`).
    public func snapshot() -> ChildInfo {
        let root = nodes[""]
        return ChildInfo(path: [], id: name, isSupervisor: true,
                         state: ended != nil ? .stopped : (root?.phase == .running ? .running : .starting),
                         pid: nil, incarnation: 0, startedAt: nil,
                         restartsInWindow: root.map { restartsInWindow($0) },
                         children: root.map { node in node.children.map { info(node, $0) } } ?? [],
                         extraArguments: [])
    }

    /// Every worker that has (or may have) a process: what must be killed
    /// if the tree is abandoned.
    public func liveWorkers() -> [ChildRef] {
        nodes.values.flatMap { node in
            node.children.compactMap { child -> ChildRef? in
                guard !child.spec.isSupervisor else { return nil }
                switch child.status {
                case .starting, .running, .stopping: return ChildRef(path: node.path + [child.spec.id], incarnation: child.incarnation)
                default: return nil
                }
            }
        }
    }

    // MARK: Exit classification

    /// supervision.md: exit 0 or a success code is normal; a no-restart
    /// code is its own case; everything else is abnormal.
    static func classify(_ status: ExitStatus, spec: ChildSpec) -> ExitOutcome {
        guard case .exited(let code) = status else { return .abnormal }
        if spec.noRestartExitCodes.contains(code) { return .noRestart }
        if code == 0 || spec.successExitCodes.contains(code) { return .normal }
        return .abnormal
    }
}

// MARK: - Internals

extension SupervisionTree {
    enum StartMode: Hashable { case boot, restart, manual }

    /// Why a child is being stopped.
    enum StopMode: Hashable {
        /// A sibling died (one_for_all / rest_for_one): temporary specs go.
        case sibling
        /// terminate_child: temporary specs go.
        case manual
        /// Its supervisor is ending.
        case shutdown
        /// A re-applied policy dropped it: its spec goes once it stopped.
        case removal
        /// A re-applied policy changed it: stopped, then started from the new spec.
        case replacement
    }

    enum ChildStatus: Hashable {
        case stopped
        case starting
        case running(pid: Int32?)
        case stopping(pid: Int32?, timer: TimerID?, mode: StopMode)
        /// To be started by a queued step (a restart, a retry, a manual start).
        case restarting
        case backoff(TimerID)
    }

    struct Child {
        var spec: ChildSpec
        /// The path whose launch settings start it (a template's for dynamic children).
        var launch: String
        var extraArguments: [String]
        var status: ChildStatus = .stopped
        var incarnation: UInt64 = 0
        var startedAt: Int64?
    }

    enum Step: Hashable {
        case start(String, StartMode)
        case terminate(String, StopMode)
        /// A dynamic supervisor stops all its children at once, under one timer.
        case terminateAllAtOnce
        /// Decide on a child's restart after it exited on its own.
        case handleExit(String, incarnation: UInt64, ExitOutcome)
        /// Wait before the starts of a group restart (back-off).
        case delay(Int64)
        case bootDone
        /// A re-apply's new spec for a child, once its old run has stopped.
        case replace(ChildSpec)
        /// Stop every child (reverse order), then end with this reason.
        case stopAll(SupervisorExit)
        case finish(SupervisorExit)
    }

    enum Busy: Hashable {
        case starting(String, StartMode)
        case stopping(Set<String>)
        case delay(TimerID)
    }

    enum Phase: Hashable { case booting, running, stopping, stopped }

    enum TimerPurpose: Hashable {
        case shutdownTimeout(node: String, child: String)
        case backoff(node: String, child: String)
        case delay(node: String)
    }

    final class Node {
        let path: [String]
        var spec: SupervisorSpec
        var children: [Child]
        var restarts: [Int64] = []
        var queue: [Step] = []
        var busy: Busy?
        var phase: Phase = .booting
        var dynamicSerial = 0

        init(path: [String], spec: SupervisorSpec) {
            self.path = path
            self.spec = spec
            self.children = spec.children.map {
                Child(spec: $0, launch: (path + [$0.id]).joined(separator: "/"), extraArguments: [])
            }
        }

        var key: String { SupervisionTree.key(path) }

        func index(of id: String) -> Int? { children.firstIndex { $0.spec.id == id } }

        func requireRunning(_ path: [String]) throws(SupervisionError) {
            if phase == .stopping || phase == .stopped { throw .notRunning(self.path.joined(separator: "/")) }
        }
    }

    static func key(_ path: [String]) -> String { path.joined(separator: "/") }

    private func drain() -> [SupervisionAction] {
        defer { output.removeAll() }
        return output
    }

    private func emit(_ action: SupervisionAction) { output.append(action) }

    private func startTimer(after milliseconds: Int64, _ purpose: TimerPurpose) -> TimerID {
        let id = TimerID(raw: nextTimer)
        nextTimer += 1
        timers[id] = purpose
        emit(.startTimer(id, at: now + milliseconds))
        return id
    }

    private func cancelTimer(_ id: TimerID) {
        if timers.removeValue(forKey: id) != nil { emit(.cancelTimer(id)) }
    }

    private func locate(_ ref: ChildRef) -> (Node, Int)? {
        guard let id = ref.path.last, let node = nodes[Self.key(ref.path.dropLast())],
              let index = node.index(of: id), node.children[index].incarnation == ref.incarnation else { return nil }
        return (node, index)
    }

    private func locateChild(_ path: [String]) throws(SupervisionError) -> (Node, Int) {
        guard let id = path.last, let node = nodes[Self.key(path.dropLast())], let index = node.index(of: id) else {
            throw .notFound(path.joined(separator: "/"))
        }
        return (node, index)
    }

    private static func key(_ path: ArraySlice<String>) -> String { path.joined(separator: "/") }

    private func enqueueBoot(_ node: Node) {
        node.queue = node.children.map { .start($0.spec.id, .boot) } + [.bootDone]
    }

    // MARK: The step loop

    /// Works through the node's queue until a step must wait for the world.
    private func advance(_ node: Node) {
        while node.busy == nil, !node.queue.isEmpty, node.phase != .stopped {
            let step = node.queue.removeFirst()
            perform(step, in: node)
        }
    }

    private func perform(_ step: Step, in node: Node) {
        switch step {
        case .start(let id, let mode):
            // Only a child still marked for this start: a terminate_child in
            // between, or a group restart that already started it, cancels it.
            guard let index = node.index(of: id) else { return }
            switch node.children[index].status {
            case .restarting: break
            case .stopped where mode == .boot: break
            default: return
            }
            startChild(node, index: index, mode: mode)
        case .terminate(let id, let mode):
            guard let index = node.index(of: id) else { return }
            stopChild(node, index: index, mode: mode)
        case .terminateAllAtOnce:
            // Busy while the stops go out, so that a child ending at once
            // does not let the node run ahead to its finish.
            node.busy = .stopping([])
            var waiting: Set<String> = []
            for id in node.children.reversed().map(\.spec.id) {
                guard let index = node.index(of: id) else { continue }
                if stopChild(node, index: index, mode: .shutdown, wait: false) { waiting.insert(id) }
            }
            waiting = waiting.filter { id in
                guard let index = node.index(of: id), case .stopping = node.children[index].status else { return false }
                return true
            }
            node.busy = waiting.isEmpty ? nil : .stopping(waiting)
        case .handleExit(let id, let incarnation, let outcome):
            guard let index = node.index(of: id), node.children[index].incarnation == incarnation,
                  case .stopped = node.children[index].status else { return }
            decideRestart(node, index: index, outcome: outcome)
        case .delay(let milliseconds):
            guard milliseconds > 0 else { return }
            node.busy = .delay(startTimer(after: milliseconds, .delay(node: node.key)))
        case .bootDone:
            node.phase = .running
            supervisorStarted(node)
        case .replace(let spec):
            guard let index = node.index(of: spec.id) else { return }
            node.children[index].spec = spec
            if case .supervisor = spec.kind {} else { removeSubtree(node.path + [spec.id]) }
        case .stopAll(let reason):
            node.phase = .stopping
            var steps: [Step] = []
            if node.spec.strategy == .dynamic {
                steps.append(.terminateAllAtOnce)
            } else {
                steps = node.children.reversed().map { .terminate($0.spec.id, .shutdown) }
            }
            node.queue = steps + [.finish(reason)]
        case .finish(let reason):
            finishSupervisor(node, reason: reason)
        }
    }

    private func startChild(_ node: Node, index: Int, mode: StartMode) {
        let child = node.children[index]
        let incarnation = nextIncarnation
        nextIncarnation += 1
        node.children[index].incarnation = incarnation
        node.children[index].status = .starting
        node.busy = .starting(child.spec.id, mode)
        let path = node.path + [child.spec.id]
        switch child.spec.kind {
        case .worker:
            emit(.start(ChildRef(path: path, incarnation: incarnation), launch: child.launch,
                        extraArguments: child.extraArguments))
        case .supervisor(let spec):
            // A fresh subtree: fresh restart history, no dynamic children.
            removeSubtree(path)
            let sub = Node(path: path, spec: spec)
            nodes[sub.key] = sub
            enqueueBoot(sub)
            advance(sub)
        }
    }

    /// Stops one child per its shutdown spec. Returns true if the caller
    /// must wait for it; with `wait`, marks the node busy until it has.
    @discardableResult
    private func stopChild(_ node: Node, index: Int, mode: StopMode, wait: Bool = true) -> Bool {
        let child = node.children[index]
        let path = node.path + [child.spec.id]
        switch child.status {
        case .running(let pid):
            var timer: TimerID?
            if case .supervisor = child.spec.kind {
                let id = child.spec.id
                if case .timeout(let milliseconds) = child.spec.shutdown {
                    timer = startTimer(after: milliseconds, .shutdownTimeout(node: node.key, child: id))
                }
                node.children[index].status = .stopping(pid: nil, timer: timer, mode: mode)
                guard let sub = nodes[Self.key(path)] else {
                    // No subtree left to stop: it has stopped.
                    childStopped(node, index: index, mode: mode)
                    return false
                }
                stopSupervisor(sub, reason: .shutdown)
                // It may have ended at once (no children running), and the
                // node may have moved on meanwhile: look the child up again.
                guard let current = node.index(of: id), case .stopping = node.children[current].status else {
                    return false
                }
                if child.spec.shutdown == .brutalKill { killSubtree(node, index: current) }
                if wait { node.busy = .stopping([id]) }
                return true
            } else {
                let ref = ChildRef(path: path, incarnation: child.incarnation)
                switch child.spec.shutdown {
                case .brutalKill:
                    emit(.kill(ref))
                case .timeout(let milliseconds):
                    emit(.terminate(ref))
                    timer = startTimer(after: milliseconds, .shutdownTimeout(node: node.key, child: child.spec.id))
                case .infinity:
                    emit(.terminate(ref))
                }
                node.children[index].status = .stopping(pid: pid, timer: timer, mode: mode)
            }
            if wait { node.busy = .stopping([child.spec.id]) }
            return true
        case .stopping:
            if wait { node.busy = .stopping([child.spec.id]) }
            return true
        case .starting:
            // Steps run one at a time, so a start in flight is not ours to stop.
            return false
        case .backoff(let timer):
            cancelTimer(timer)
            settleStopped(node, index: index, mode: mode)
            return false
        case .restarting, .stopped:
            settleStopped(node, index: index, mode: mode)
            return false
        }
    }

    /// After a stop: temporary children (and every dynamic one) are
    /// forgotten, unless their supervisor is ending; a child stopped for a
    /// group restart stays marked for its start.
    private func settleStopped(_ node: Node, index: Int, mode: StopMode) {
        let child = node.children[index]
        node.children[index].startedAt = nil
        if mode == .removal {
            node.children.remove(at: index)
        } else if mode == .replacement {
            node.children[index].status = .restarting
        } else if mode != .shutdown, child.spec.restart == .temporary || node.spec.strategy == .dynamic {
            node.children.remove(at: index)
        } else {
            node.children[index].status = mode == .sibling ? .restarting : .stopped
        }
    }

    /// SIGKILL to every worker in the child's subtree (a shutdown timeout ran out).
    private func killSubtree(_ node: Node, index: Int) {
        let child = node.children[index]
        let path = node.path + [child.spec.id]
        if case .supervisor = child.spec.kind {
            let prefix = Self.key(path)
            for sub in nodes.values where sub.key == prefix || sub.key.hasPrefix(prefix + "/") {
                for grandchild in sub.children where !grandchild.spec.isSupervisor {
                    switch grandchild.status {
                    case .running, .stopping:
                        emit(.kill(ChildRef(path: sub.path + [grandchild.spec.id], incarnation: grandchild.incarnation)))
                    default: break
                    }
                }
            }
        } else {
            emit(.kill(ChildRef(path: path, incarnation: child.incarnation)))
        }
    }

    /// A child this node was stopping has stopped.
    private func childStopped(_ node: Node, index: Int, mode: StopMode) {
        let id = node.children[index].spec.id
        settleStopped(node, index: index, mode: mode)
        if case .stopping(var waiting) = node.busy, waiting.contains(id) {
            waiting.remove(id)
            node.busy = waiting.isEmpty ? nil : .stopping(waiting)
        }
        advance(node)
    }

    private func childStartFailed(_ node: Node, index: Int, reason: String) {
        let child = node.children[index]
        let path = node.path + [child.spec.id]
        emit(.report(.startFailed(path: path, reason: reason)))
        node.children[index].status = .stopped
        var mode = StartMode.restart
        if case .starting(let id, let busyMode) = node.busy, id == child.spec.id {
            node.busy = nil
            mode = busyMode
        }
        switch mode {
        case .boot:
            // Stop what started, newest first, and end: failed_to_start_child.
            node.queue = [.stopAll(.failedToStartChild(path: path, reason: reason))]
        case .manual:
            // The caller's start failed; nothing restarts it (and a dynamic child goes).
            if child.spec.restart == .temporary || node.spec.strategy == .dynamic { node.children.remove(at: index) }
        case .restart:
            // Counts, and is retried after whatever else is pending.
            if !addRestart(node) {
                giveUp(node)
            } else {
                node.children[index].status = .restarting
                retry(node, from: index)
            }
        }
        advance(node)
    }

    private func retry(_ node: Node, from index: Int) {
        let id = node.children[index].spec.id
        switch node.spec.strategy {
        case .oneForOne, .dynamic:
            node.queue.append(.start(id, .restart))
        case .oneForAll:
            // The whole group again: drop the group's pending starts, stop the rest, start all.
            node.queue.removeAll { if case .start(_, .restart) = $0 { return true } else { return false } }
            node.queue += groupRestart(node, members: Array(node.children.indices))
        case .restForOne:
            let members = Array(index..<node.children.count)
            let ids = Set(members.map { node.children[$0].spec.id })
            node.queue.removeAll { if case .start(let other, .restart) = $0 { return ids.contains(other) } else { return false } }
            node.queue += groupRestart(node, members: members)
        }
    }

    /// Steps that stop `members` (newest first) and start them again in order.
    private func groupRestart(_ node: Node, members: [Int], delay: Int64 = 0) -> [Step] {
        let ids = members.map { node.children[$0].spec.id }
        var steps: [Step] = ids.reversed().map { .terminate($0, .sibling) }
        if delay > 0 { steps.append(.delay(delay)) }
        steps += ids.map { .start($0, .restart) }
        return steps
    }

    /// supervision.md's restart-type table, then the strategy.
    private func decideRestart(_ node: Node, index: Int, outcome: ExitOutcome) {
        let child = node.children[index]
        let restart: Bool
        switch (child.spec.restart, outcome) {
        case (.temporary, _): restart = false
        case (_, .noRestart): restart = false
        case (.permanent, _): restart = true
        case (.transient, .abnormal): restart = true
        case (.transient, .escalated): restart = child.spec.restartOnEscalation
        case (.transient, _): restart = false
        }
        guard restart else {
            if child.spec.restart == .temporary || node.spec.strategy == .dynamic { node.children.remove(at: index) }
            if child.spec.significant { checkAutoShutdown(node) }
            return
        }
        guard addRestart(node) else {
            giveUp(node)
            return
        }
        let delay = child.spec.backoff?.delay(restart: max(0, node.restarts.count - 1)) ?? 0
        emit(.report(.restarting(path: node.path + [child.spec.id], delayMilliseconds: delay)))
        switch node.spec.strategy {
        case .oneForOne, .dynamic:
            if delay > 0 {
                let timer = startTimer(after: delay, .backoff(node: node.key, child: child.spec.id))
                node.children[index].status = .backoff(timer)
            } else {
                node.children[index].status = .restarting
                node.queue.insert(.start(child.spec.id, .restart), at: 0)
            }
        case .oneForAll:
            node.children[index].status = .restarting
            node.queue.insert(contentsOf: groupRestart(node, members: Array(node.children.indices), delay: delay), at: 0)
        case .restForOne:
            node.children[index].status = .restarting
            node.queue.insert(contentsOf: groupRestart(node, members: Array(index..<node.children.count), delay: delay),
                              at: 0)
        }
    }

    /// OTP's add_restart: keep the restarts within the window (in ms), add
    /// now; false when more than `intensity` remain.
    private func addRestart(_ node: Node) -> Bool {
        node.restarts = node.restarts.filter { now - $0 <= node.spec.periodMilliseconds } + [now]
        return node.restarts.count <= node.spec.intensity
    }

    private func restartsInWindow(_ node: Node) -> Int {
        node.restarts.filter { now - $0 <= node.spec.periodMilliseconds }.count
    }

    private func giveUp(_ node: Node) {
        emit(.report(.gaveUp(path: node.path)))
        stopSupervisor(node, reason: .reachedMaxIntensity)
    }

    private func checkAutoShutdown(_ node: Node) {
        switch node.spec.autoShutdown {
        case .never:
            return
        case .anySignificant:
            break
        case .allSignificant:
            let stillRunning = node.children.contains { child in
                guard child.spec.significant else { return false }
                if case .stopped = child.status { return false }
                return true
            }
            if stillRunning { return }
        }
        emit(.report(.autoShutdown(path: node.path)))
        stopSupervisor(node, reason: .autoShutdown)
    }

    /// Ends a supervisor: whatever it was doing is dropped (a step in
    /// flight finishes first), then its children stop newest first.
    private func stopSupervisor(_ node: Node, reason: SupervisorExit) {
        guard node.phase != .stopping, node.phase != .stopped else { return }
        node.phase = .stopping
        if case .delay(let timer) = node.busy {
            cancelTimer(timer)
            node.busy = nil
        }
        node.queue = [.stopAll(reason)]
        advance(node)
    }

    private func supervisorStarted(_ node: Node) {
        guard let id = node.path.last else {
            emit(.report(.treeStarted))
            return
        }
        guard let parent = nodes[Self.key(node.path.dropLast())], let index = parent.index(of: id),
              case .starting = parent.children[index].status else { return }
        parent.children[index].status = .running(pid: nil)
        parent.children[index].startedAt = now
        emit(.report(.started(path: node.path, pid: nil)))
        if case .starting(let busyID, _) = parent.busy, busyID == id { parent.busy = nil }
        advance(parent)
    }

    private func finishSupervisor(_ node: Node, reason: SupervisorExit) {
        node.phase = .stopped
        node.queue.removeAll()
        nodes.removeValue(forKey: node.key)
        guard let id = node.path.last else {
            ended = reason
            emit(.report(.treeStopped(reason)))
            return
        }
        guard let parent = nodes[Self.key(node.path.dropLast())], let index = parent.index(of: id) else { return }
        let child = parent.children[index]
        switch child.status {
        case .stopping(_, let timer, let mode):
            if let timer { cancelTimer(timer) }
            emit(.report(.exited(path: node.path, status: nil, outcome: .stopped)))
            childStopped(parent, index: index, mode: mode)
        case .starting:
            if case .failedToStartChild(let path, let why) = reason {
                childStartFailed(parent, index: index, reason: "\(path.joined(separator: "/")): \(why)")
            } else {
                childStartFailed(parent, index: index, reason: reason.description)
            }
        case .running:
            let outcome: ExitOutcome = reason == .reachedMaxIntensity ? .escalated : .normal
            emit(.report(.exited(path: node.path, status: nil, outcome: outcome)))
            parent.children[index].status = .stopped
            parent.children[index].startedAt = nil
            parent.queue.append(.handleExit(id, incarnation: child.incarnation, outcome))
            advance(parent)
        case .stopped, .restarting, .backoff:
            break
        }
    }

    private func removeSubtree(_ path: [String]) {
        let prefix = Self.key(path)
        for key in nodes.keys where key == prefix || key.hasPrefix(prefix + "/") { nodes.removeValue(forKey: key) }
    }

    private func info(_ node: Node, _ child: Child) -> ChildInfo {
        let path = node.path + [child.spec.id]
        var state: ChildInfo.State
        var pid: Int32?
        switch child.status {
        case .stopped: state = .stopped
        case .starting: state = .starting
        case .running(let runningPID): state = .running; pid = runningPID
        case .stopping(let stoppingPID, _, _): state = .stopping; pid = stoppingPID
        case .restarting, .backoff: state = .restarting
        }
        var children: [ChildInfo] = []
        var restarts: Int?
        if child.spec.isSupervisor, let sub = nodes[Self.key(path)] {
            children = sub.children.map { info(sub, $0) }
            restarts = restartsInWindow(sub)
        }
        return ChildInfo(path: path, id: child.spec.id, isSupervisor: child.spec.isSupervisor, state: state, pid: pid,
                         incarnation: child.incarnation, startedAt: child.startedAt, restartsInWindow: restarts,
                         children: children, extraArguments: child.extraArguments)
    }
}
