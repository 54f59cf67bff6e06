import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The agent's socket thread as a task executor. Tasks that prefer it
/// (`Agent.executor`, `Agent.run`) run on the thread that reads the
/// kernel's frames: an answer read there resumes its caller on the same
/// thread, with no other thread to wake, which is most of a round trip's
/// cost on a busy machine. The thread runs queued jobs between reads, so
/// code on it should not block for long (it delays every answer).
public final class LinkExecutor: TaskExecutor, Sendable {
    private struct State {
        var jobs: [UnownedJob] = []
        /// The thread is (about to be) waiting in poll: a job from another
        /// thread must wake it.
        var sleeping = false
        /// Something for the thread to look at came while it was awake.
        var nudged = false
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
        let wake = state.withLock { state -> Bool in
            state.jobs.append(job)
            defer { state.sleeping = false }
            return state.sleeping
        }
        if wake {
            var byte: UInt8 = 1
            _ = send(wakeWrite, &byte, 1, Int32(MSG_NOSIGNAL))
        }
    }

    /// On the socket thread: runs what is queued (and what those jobs
    /// queue); false if there was nothing.
    func runJobs() -> Bool {
        var ran = false
        while true {
            let jobs = state.withLock { state -> [UnownedJob] in
                defer { state.jobs.removeAll(keepingCapacity: true) }
                return state.jobs
            }
            if jobs.isEmpty { return ran }
            ran = true
            for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }

    /// On the socket thread, before it waits: true if it may (no job came
    /// meanwhile); from then on a new job writes a wake byte.
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
}
