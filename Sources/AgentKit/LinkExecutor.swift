import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The agent's socket thread as a task executor. Tasks that prefer it
/// (`Agent.executor`) run on the thread that reads the kernel's frames: an
/// answer read there resumes its caller on the same thread, with no other
/// thread to wake, which is most of a round trip's cost on a busy machine.
/// The thread runs queued jobs between reads, one batch at a time, so code
/// on it should not block for long (it delays every answer). Once the
/// connection is gone the thread ends and later jobs go to the global
/// executor: a task that still prefers this one keeps running.
public final class LinkExecutor: TaskExecutor, Sendable {
    private struct State {
        var jobs: [UnownedJob] = []
        /// The thread is (about to be) waiting in poll: a job from another
        /// thread must wake it.
        var sleeping = false
        /// Something for the thread to look at came while it was awake.
        var nudged = false
        /// The thread has ended: jobs go to the global executor, and the
        /// wake sockets are closed.
        var retired = false
    }

    private let state = Mutex(State())
    /// The socket thread, once it runs.
    private let thread = Atomic<UInt>(0)
    /// A socketpair: a byte on `wakeWrite` ends the thread's poll.
    let wakeRead: Int32
    private let wakeWrite: Int32

    init() throws(AgentKitError) {
        var pair: [Int32] = [-1, -1]
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        guard socketpair(AF_UNIX, flags, 0, &pair) == 0 else {
            throw AgentKitError(.system, "socketpair for the socket thread: \(String(cString: strerror(errno)))")
        }
        (wakeRead, wakeWrite) = (pair[0], pair[1])
    }

    deinit {
        // Closed here if the thread never ran (the hello failed).
        if !state.withLock({ $0.retired }) {
            Glibc.close(wakeRead)
            Glibc.close(wakeWrite)
        }
    }

    /// Called first thing on the socket thread.
    func adoptCurrentThread() {
        thread.store(pthread_self(), ordering: .releasing)
    }

    /// Whether the caller runs on the socket thread.
    var isCurrent: Bool {
        thread.load(ordering: .acquiring) == pthread_self()
    }

    /// Ends the socket thread's wait (if it waits), so it looks again.
    func wake() {
        let sleeping = state.withLock { state -> Bool in
            guard !state.retired else { return false }
            defer { state.sleeping = false }
            if !state.sleeping { state.nudged = true }
            return state.sleeping
        }
        if sleeping {
            var byte: UInt8 = 1
            _ = send(wakeWrite, &byte, 1, Int32(MSG_NOSIGNAL))
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let (wake, retired) = state.withLock { state -> (Bool, Bool) in
            if state.retired { return (false, true) }
            state.jobs.append(job)
            defer { state.sleeping = false }
            return (state.sleeping, false)
        }
        if retired {
            globalConcurrentExecutor.enqueue(ExecutorJob(job))
        } else if wake {
            var byte: UInt8 = 1
            _ = send(wakeWrite, &byte, 1, Int32(MSG_NOSIGNAL))
        }
    }

    /// On the socket thread: runs the jobs queued now (not those they
    /// queue: the thread reads and writes between two batches); false if
    /// there were none.
    func runJobs() -> Bool {
        let jobs = state.withLock { state -> [UnownedJob] in
            defer { state.jobs.removeAll(keepingCapacity: true) }
            return state.jobs
        }
        for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        return !jobs.isEmpty
    }

    /// On the socket thread, before it waits: true if it may (no job and
    /// nothing else came meanwhile); from then on a new job writes a wake byte.
    func prepareToSleep() -> Bool {
        state.withLock { state in
            guard state.jobs.isEmpty, !state.nudged else {
                state.nudged = false
                return false
            }
            state.sleeping = true
            return true
        }
    }

    /// On the socket thread, after its wait: drops the wake bytes.
    func awake() {
        state.withLock { $0.sleeping = false }
        var bytes = [UInt8](repeating: 0, count: 64)
        while recv(wakeRead, &bytes, bytes.count, Int32(MSG_DONTWAIT)) > 0 {}
    }

    /// On the socket thread, as it ends: what is queued and what comes
    /// later goes to the global executor.
    func retire() {
        let jobs = state.withLock { state -> [UnownedJob] in
            state.retired = true
            defer { state.jobs = [] }
            return state.jobs
        }
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
        for job in jobs { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }
}
