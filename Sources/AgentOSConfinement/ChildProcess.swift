import CAgentOSShim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A spawned child. Signals go through its pidfd, so a recycled pid can
/// never be hit; the reactor thread reaps it and resolves `exit()`.
public final class ChildProcess: Sendable {
    public let pid: Int32

    private struct State {
        var pidfd: Int32
        var exit: ProcessExit?
        /// Told by the sandbox monitor before it is reaped (it still waits
        /// for the sandbox's namespaces to be torn down).
        var reported: ProcessExit?
        var waiters: [CheckedContinuation<ProcessExit, Never>] = []
    }

    private let state: Mutex<State>

    init(pid: Int32, pidfd: Int32) {
        self.pid = pid
        self.state = Mutex(State(pidfd: pidfd))
    }

    /// The exit status once reaped (or reported), nil while running.
    public var exitStatus: ProcessExit? { state.withLock { $0.exit ?? $0.reported } }

    /// Whether the child has ended, reaped yet or not (a pidfd is readable
    /// from the moment its process exits).
    public var hasEnded: Bool {
        state.withLock { state in
            if state.exit != nil || state.reported != nil || state.pidfd < 0 { return true }
            var descriptor = pollfd(fd: state.pidfd, events: Int16(POLLIN), revents: 0)
            return poll(&descriptor, 1, 0) > 0
        }
    }

    /// Sends `signal` to the child. Returns false when it has already exited.
    @discardableResult
    public func signal(_ signal: Int32) throws(ConfinementError) -> Bool {
        let result: Int32? = state.withLock { state in
            guard state.exit == nil, state.pidfd >= 0 else { return nil }
            return aos_pidfd_signal(state.pidfd, signal)
        }
        guard let result else { return false }
        if result == 0 { return true }
        if result == ESRCH { return false }
        throw ConfinementError.system("signal \(signalName(signal)) to pid \(pid)", errno: result)
    }

    /// Sends `signal` to the child's process group (it leads its own session,
    /// so the group holds it and the descendants that stayed in it). Only
    /// while the child is unreaped: until then its pid, which is the group's
    /// id, cannot be reused by an unrelated process.
    public func signalGroup(_ signal: Int32) {
        state.withLock { state in
            guard state.exit == nil else { return }
            _ = kill(-pid, signal)
        }
    }

    /// Waits until the child has exited and been reaped, or (a sandbox
    /// monitor) has reported how the agent it watched ended.
    public func exit() async -> ProcessExit {
        await withCheckedContinuation { continuation in
            let done: ProcessExit? = state.withLock { state in
                if let exit = state.exit ?? state.reported { return exit }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// The sandbox monitor's report of the agent's end: the waiters learn it
    /// now; the monitor itself is reaped when it exits.
    func report(_ exit: ProcessExit) {
        let waiters = state.withLock { state -> [CheckedContinuation<ProcessExit, Never>] in
            guard state.exit == nil, state.reported == nil else { return [] }
            state.reported = exit
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: exit) }
    }

    /// Called by the reactor thread once the pidfd is readable. Reaping and
    /// recording the exit happen under one lock, so `signalGroup` never sees
    /// a reaped child as running. Returns false while it has not exited.
    func reap() -> Bool {
        enum Outcome {
            case running
            case exited(ProcessExit, [CheckedContinuation<ProcessExit, Never>])
        }
        let outcome = state.withLock { state -> Outcome in
            var exited: Int32 = 0, status: Int32 = 0, core: Int32 = 0
            let rc = aos_pidfd_wait(state.pidfd, 1, &exited, &status, &core)
            if rc == EAGAIN { return .running }
            // Unwaitable (reaped by someone else): the status is lost; -1
            // says so rather than leaving waiters hanging.
            let exit: ProcessExit = rc != 0 ? .exited(code: -1)
                : exited != 0 ? .exited(code: status)
                : .signaled(signal: status, coreDumped: core != 0)
            let recorded = state.reported ?? exit
            state.exit = recorded
            if state.pidfd >= 0 { close(state.pidfd) }
            state.pidfd = -1
            defer { state.waiters.removeAll() }
            return .exited(recorded, state.waiters)
        }
        switch outcome {
        case .running:
            return false
        case .exited(let exit, let waiters):
            for waiter in waiters { waiter.resume(returning: exit) }
            return true
        }
    }

    var pidfd: Int32 { state.withLock { $0.pidfd } }
}
