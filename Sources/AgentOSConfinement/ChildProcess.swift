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
        var waiters: [CheckedContinuation<ProcessExit, Never>] = []
    }

    private let state: Mutex<State>

    init(pid: Int32, pidfd: Int32) {
        self.pid = pid
        self.state = Mutex(State(pidfd: pidfd))
    }

    /// The exit status once reaped, nil while running.
    public var exitStatus: ProcessExit? { state.withLock { $0.exit } }

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
    /// so this reaches the descendants that stayed in it).
    public func signalGroup(_ signal: Int32) {
        state.withLock { state in
            guard state.exit == nil else { return }
            _ = kill(-pid, signal)
        }
    }

    /// Waits until the child has exited and been reaped.
    public func exit() async -> ProcessExit {
        await withCheckedContinuation { continuation in
            let done: ProcessExit? = state.withLock { state in
                if let exit = state.exit { return exit }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Called by the reactor thread once the pidfd is readable.
    func reap() -> Bool {
        var exited: Int32 = 0, status: Int32 = 0, core: Int32 = 0
        let fd = state.withLock { $0.pidfd }
        let rc = aos_pidfd_wait(fd, 1, &exited, &status, &core)
        guard rc == 0 else { return rc != EAGAIN }
        let exit: ProcessExit = exited != 0
            ? .exited(code: status)
            : .signaled(signal: status, coreDumped: core != 0)
        let waiters = state.withLock { state -> [CheckedContinuation<ProcessExit, Never>] in
            state.exit = exit
            if state.pidfd >= 0 { close(state.pidfd) }
            state.pidfd = -1
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: exit) }
        return true
    }

    var pidfd: Int32 { state.withLock { $0.pidfd } }
}
