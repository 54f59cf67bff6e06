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
    }

    private let state = Mutex(State())
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
            guard state.jobs.isEmpty else { return false }
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
