// What goes into and comes out of the supervision state machine. The
// machine never touches a process: it asks for starts, stops and timers
// (actions) and is told what happened (events), with the time passed in.

/// One start of one child: its path from the root and a number that is new
/// for every start, so that news about an earlier start is recognised.
public struct ChildRef: Sendable, Hashable, CustomStringConvertible {
    public var path: [String]
    public var incarnation: UInt64

    public init(path: [String], incarnation: UInt64) {
        self.path = path
        self.incarnation = incarnation
    }

    public var pathString: String { path.joined(separator: "/") }
    public var description: String { "\(pathString)#\(incarnation)" }
}

/// How a worker process ended, as the process layer saw it.
public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)
    /// Killed by the OOM killer of its own cgroup.
    case oomKilled
    /// Killed by the kernel at its wall-clock timeout.
    case timedOut

    public var description: String {
        switch self {
        case .exited(let code): "exit \(code)"
        case .signaled(let signal): "signal \(signal)"
        case .oomKilled: "killed: out of memory"
        case .timedOut: "killed: timeout"
        }
    }
}

/// What an exit means to the supervisor (supervision.md, "Exit classification").
public enum ExitOutcome: String, Sendable, Hashable {
    /// Exit 0 or a listed success code (OTP's normal / shutdown).
    case normal
    /// Anything else: another code, a signal, OOM, timeout.
    case abnormal
    /// A listed no-restart code: kept, not restarted, whatever the restart type.
    case noRestart = "no_restart"
    /// Ended because its supervisor stopped it.
    case stopped
    /// A nested supervisor that gave up (reached max restart intensity).
    case escalated
}

/// Why a supervisor (or the whole tree) ended.
public enum SupervisorExit: Sendable, Hashable, CustomStringConvertible {
    /// Asked to stop: by its parent, by `delete`, by the kernel stopping.
    case shutdown
    /// Its significant children ended (auto_shutdown).
    case autoShutdown
    /// More restarts than `intensity` within `period`.
    case reachedMaxIntensity
    /// A child could not be started while the supervisor booted.
    case failedToStartChild(path: [String], reason: String)

    public var description: String {
        switch self {
        case .shutdown: "shutdown"
        case .autoShutdown: "auto_shutdown: significant children ended"
        case .reachedMaxIntensity: "reached max restart intensity"
        case .failedToStartChild(let path, let reason):
            "failed_to_start_child \(path.joined(separator: "/")): \(reason)"
        }
    }
}

/// A timer the machine asked for; handed back through `timerFired`.
public struct TimerID: Sendable, Hashable, CustomStringConvertible {
    public let raw: UInt64
    public var description: String { "timer \(raw)" }
}

/// Something worth an event record and an audit entry.
public enum SupervisionReport: Sendable, Hashable {
    /// A child is up; workers carry their pid, supervisors none.
    case started(path: [String], pid: Int32?)
    case startFailed(path: [String], reason: String)
    /// `status` is nil for a supervisor child.
    case exited(path: [String], status: ExitStatus?, outcome: ExitOutcome)
    case restarting(path: [String], delayMilliseconds: Int64)
    case gaveUp(path: [String])
    case autoShutdown(path: [String])
    case treeStarted
    case treeStopped(SupervisorExit)
}

/// What the process layer must do.
public enum SupervisionAction: Sendable, Hashable {
    /// Start the worker `launch` names (a static child's path, or a dynamic
    /// supervisor's template path) with `extraArguments` appended; answer
    /// with `started` or `startFailed` for `ref`.
    case start(ChildRef, launch: String, extraArguments: [String])
    /// SIGTERM to the worker; its exit comes back through `exited`.
    case terminate(ChildRef)
    /// SIGKILL to the worker's whole cgroup; its exit comes back through `exited`.
    case kill(ChildRef)
    case startTimer(TimerID, at: Int64)
    case cancelTimer(TimerID)
    case report(SupervisionReport)
}

/// The errors of OTP's admin calls, plus the few a dynamic supervisor adds.
public enum SupervisionError: Error, Sendable, Hashable, CustomStringConvertible {
    case notFound(String)
    case running(String)
    case restarting(String)
    case alreadyPresent(String)
    case alreadyStarted(String)
    /// restart_child / delete_child on a dynamic supervisor.
    case notSupported(String)
    case maxChildren(String)
    /// The named supervisor is not dynamic, or not a supervisor.
    case notDynamic(String)
    /// The supervisor is stopping or stopped.
    case notRunning(String)
    case invalidSpec(String)

    public var code: String {
        switch self {
        case .notFound: "not_found"
        case .running: "running"
        case .restarting: "restarting"
        case .alreadyPresent: "already_present"
        case .alreadyStarted: "already_started"
        case .notSupported: "not_supported"
        case .maxChildren: "max_children"
        case .notDynamic: "not_dynamic"
        case .notRunning: "not_running"
        case .invalidSpec: "invalid_spec"
        }
    }

    public var description: String {
        switch self {
        case .notFound(let path): "\(path): no such child"
        case .running(let path): "\(path) is running"
        case .restarting(let path): "\(path) is restarting"
        case .alreadyPresent(let path): "\(path) is already present (not running): use restart"
        case .alreadyStarted(let path): "\(path) is already started"
        case .notSupported(let path): "\(path): not supported on a dynamic supervisor"
        case .maxChildren(let path): "\(path) has its max_children running"
        case .notDynamic(let path): "\(path) is not a dynamic supervisor"
        case .notRunning(let path): "\(path) is not running"
        case .invalidSpec(let message): message
        }
    }
}

/// A child as `which_children` and `agentctl tree` show it.
public struct ChildInfo: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case starting, running, stopping, restarting, stopped
    }

    public var path: [String]
    public var id: String
    public var isSupervisor: Bool
    public var state: State
    public var pid: Int32?
    public var incarnation: UInt64
    /// When the current run started (the machine's clock), if running.
    public var startedAt: Int64?
    /// For supervisors: restarts within the current window.
    public var restartsInWindow: Int?
    /// For supervisors: their children, in start order.
    public var children: [ChildInfo]
    /// Extra arguments of a dynamic child.
    public var extraArguments: [String]
}

/// OTP's count_children.
public struct ChildCounts: Sendable, Hashable {
    public var specs: Int
    public var active: Int
    public var supervisors: Int
    public var workers: Int
}
