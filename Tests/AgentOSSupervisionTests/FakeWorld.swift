@testable import AgentOSSupervision

/// Instant fake processes around a SupervisionTree: a start succeeds at once
/// with a new pid (unless told to fail), SIGTERM ends a worker at once
/// (unless it ignores it), SIGKILL always does. Timers fire when the clock
/// is moved past them. Everything the tree asks for is logged in order.
final class FakeWorld {
    let tree: SupervisionTree
    private(set) var now: Int64 = 0
    /// "start a", "terminate b", "kill c", and reports as "exited a abnormal", ...
    private(set) var log: [String] = []
    private(set) var reports: [SupervisionReport] = []
    /// Reports with the time they were made.
    private(set) var timedReports: [(time: Int64, batch: Int, report: SupervisionReport)] = []
    /// How many inputs have been fed (each ends with the world quiet again).
    private(set) var batch = 0
    /// Process actions with the batch they belong to.
    private(set) var batchedLog: [(batch: Int, entry: String)] = []
    private(set) var live: [String: (ref: ChildRef, pid: Int32)] = [:]
    private(set) var extraArguments: [String: [String]] = [:]
    private var timers: [TimerID: Int64] = [:]
    private var nextPID: Int32 = 100
    /// Paths whose next starts fail (each entry: how many more fail; Int.max: all).
    var failingStarts: [String: Int] = [:]
    /// Workers that ignore SIGTERM (only SIGKILL ends them).
    var ignoresTerm: Set<String> = []
    private var pending: [() -> [SupervisionAction]] = []

    init(_ root: SupervisorSpec, name: String = "t") {
        tree = SupervisionTree(name: name, root: root)
    }

    func boot() { run { self.tree.boot(now: self.now) } }

    func pid(_ path: String) -> Int32? { live[path]?.pid }

    /// The worker ends on its own.
    func exit(_ path: String, _ status: ExitStatus = .exited(1)) {
        guard let entry = live[path] else {
            preconditionFailure("\(path) is not running; live: \(live.keys.sorted())")
        }
        live[path] = nil
        run { self.tree.exited(entry.ref, status: status, now: self.now) }
    }

    func crash(_ path: String) { exit(path, .exited(1)) }

    /// Moves the clock, firing due timers in time order.
    func advance(by milliseconds: Int64) { advance(to: now + milliseconds) }

    func advance(to time: Int64) {
        while let (id, at) = timers.filter({ $0.value <= time }).min(by: { $0.value < $1.value }) {
            now = max(now, at)
            timers[id] = nil
            run { self.tree.timerFired(id, now: self.now) }
        }
        now = time
    }

    func admin(_ body: (SupervisionTree, Int64) throws -> [SupervisionAction]) throws {
        let actions = try body(tree, now)
        run { actions }
    }

    func clearLog() { log.removeAll() }

    /// The log without reports: what happened to processes.
    var processLog: [String] { log.filter { !$0.hasPrefix("report") } }

    var timerCount: Int { timers.count }

    private func run(_ first: @escaping () -> [SupervisionAction]) {
        pending.append(first)
        guard pending.count == 1 else { return }
        batch += 1
        while let next = pending.first {
            for action in next() { perform(action) }
            pending.removeFirst()
        }
    }

    private func perform(_ action: SupervisionAction) {
        switch action {
        case .start(let ref, _, _): batchedLog.append((batch, "start \(ref.pathString)"))
        case .terminate(let ref): batchedLog.append((batch, "terminate \(ref.pathString)"))
        case .kill(let ref): batchedLog.append((batch, "kill \(ref.pathString)"))
        default: break
        }
        switch action {
        case .start(let ref, let launch, let extra):
            log.append("start \(ref.pathString)")
            let path = ref.pathString
            if let remaining = failingStarts[path], remaining > 0 {
                failingStarts[path] = remaining == Int.max ? remaining : remaining - 1
                pending.append { self.tree.startFailed(ref, reason: "cannot start \(launch)", now: self.now) }
            } else {
                nextPID += 1
                let pid = nextPID
                live[path] = (ref, pid)
                extraArguments[path] = extra
                pending.append { self.tree.started(ref, pid: pid, now: self.now) }
            }
        case .terminate(let ref):
            log.append("terminate \(ref.pathString)")
            let path = ref.pathString
            if !ignoresTerm.contains(path), live[path]?.ref == ref {
                live[path] = nil
                pending.append { self.tree.exited(ref, status: .signaled(15), now: self.now) }
            }
        case .kill(let ref):
            log.append("kill \(ref.pathString)")
            let path = ref.pathString
            if live[path]?.ref == ref {
                live[path] = nil
                pending.append { self.tree.exited(ref, status: .signaled(9), now: self.now) }
            }
        case .startTimer(let id, let at):
            timers[id] = at
        case .cancelTimer(let id):
            timers[id] = nil
        case .report(let report):
            reports.append(report)
            timedReports.append((now, batch, report))
            log.append("report " + Self.describe(report))
        }
    }

    static func describe(_ report: SupervisionReport) -> String {
        func name(_ path: [String]) -> String { path.isEmpty ? "<root>" : path.joined(separator: "/") }
        switch report {
        case .started(let path, _): return "started \(name(path))"
        case .startFailed(let path, _): return "start_failed \(name(path))"
        case .exited(let path, _, let outcome): return "exited \(name(path)) \(outcome.rawValue)"
        case .restarting(let path, let delay): return "restarting \(name(path)) \(delay)ms"
        case .gaveUp(let path): return "gave_up \(name(path))"
        case .autoShutdown(let path): return "auto_shutdown \(name(path))"
        case .treeStarted: return "tree_started"
        case .treeStopped(let reason): return "tree_stopped \(reason)"
        }
    }
}

/// Specs in the scenarios' shorthand.
func worker(_ id: String, _ restart: RestartType = .permanent, significant: Bool = false,
            shutdown: ShutdownSpec? = nil, backoff: Backoff? = nil) -> ChildSpec {
    ChildSpec(id: id, restart: restart, shutdown: shutdown, significant: significant, backoff: backoff)
}

func sup(_ strategy: Strategy = .oneForOne, _ intensity: Int = 3, _ periodMilliseconds: Int64 = 5_000,
         auto: AutoShutdown = .never, _ children: [ChildSpec]) -> SupervisorSpec {
    SupervisorSpec(strategy: strategy, intensity: intensity, periodMilliseconds: periodMilliseconds,
                   autoShutdown: auto, children: children)
}
