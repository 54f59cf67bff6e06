import AgentOSConfinement
import AgentOSProtocol
import CAgentOSShim
import Foundation
import Synchronization

/// Runs one tool invocation as its own confined child: the same sandbox an
/// agent gets (its own uid, the seven namespaces, no capabilities, seccomp,
/// Landlock, its own cgroups), with only the paths the checked capability
/// covers, no network, and its output captured. It runs as the calling
/// agent's host user (what it writes is the agent's), so its helper starts
/// on the call's path (a held sandbox has a uid of its own). A run takes an
/// agent slot for its dir and cgroups, and the slot goes with everything in
/// its cgroups once the run has ended.
struct ToolSandbox: Sendable {
    let slots: AgentSlots
    let launcher: SandboxLauncher
    let seccomp: SeccompProfiles
    let landlockABI: Int
    let cgroups: CgroupManager?

    /// What to run and what it may see.
    struct Plan: Sendable {
        var program: String
        /// argv after argv[0].
        var arguments: [String]
        /// Resolved by agentd: bound with no symlink followed.
        var readOnly: [String] = []
        var readWrite: [String] = []
        /// The allowlist form: only these programs are in the root and may
        /// be exec'd (with the names that lead to them).
        var programs: [String] = []
        var programLinks: [(link: String, program: String)] = []
        /// Written to `input` in the private dir before the start.
        var input: [UInt8]?
        var limits = ResourceLimits()
        var timeoutMilliseconds: Int64
        /// Bytes kept of stdout and of stderr each; the rest is counted.
        var stdoutLimit: Int
        var stderrLimit = 64 << 10
        var environment: [String: String] = [:]
    }

    struct Outcome: Sendable {
        var exit: ProcessExit
        var stdout: [UInt8]
        var stderr: [UInt8]
        /// Bytes that came after the limit, dropped.
        var stdoutDropped: Int
        var stderrDropped: Int
        var timedOut: Bool
    }

    /// Name of the input file in a run's private dir.
    static let inputName = "input"
    static let tmpSize: UInt64 = 16 << 20

    /// Runs `plan` as host user `uid` (the calling agent's: what a tool
    /// writes is the agent's, as if it had written it).
    func run(_ plan: Plan, uid: UInt32) async throws -> Outcome {
        let capture = ToolOutput(stdoutLimit: plan.stdoutLimit, stderrLimit: plan.stderrLimit)
        // A held sandbox has its own uid already: a run as the agent starts its helper now.
        let slot = try slots.take(cold: true) { _ in false }
        defer { retire(slot) }
        slot.output.capture(into: capture)
        guard chown(slot.directory, uid, uid) == 0 else {
            throw KernelError(.spawnFailed, "cannot give \(slot.directory) to uid \(uid): \(errnoDescription(errno))")
        }
        if let input = plan.input {
            try Self.writeInput(input, to: slot.directory + "/" + Self.inputName, uid: uid)
        }
        do {
            var enforced = plan.limits
            if let pids = enforced.pids { enforced.pids = pids + Lifecycle.sandboxProcesses }
            if let cgroup = slot.cgroup { try cgroup.apply(enforced) }
            else if enforced != ResourceLimits() {
                throw KernelError(.unsupported, "cannot limit a tool run: no usable cgroups on this host")
            }
        } catch {
            throw KernelError.from(error)
        }

        // The work dir is the run's private dir, inside as outside.
        let workDir = slot.directory
        var environment = ["PATH": ProgramLookup.defaultSearchPath, "HOME": slot.directory, "LANG": "C.UTF-8"]
        environment.merge(plan.environment) { _, new in new }
        var sandbox = Lifecycle.SandboxRequest()
        sandbox.tmpSize = Self.tmpSize
        let options = SandboxLauncher.AgentOptions(
            hostname: "tool", workDir: workDir, sandbox: sandbox, landlockABI: landlockABI, program: plan.program,
            arguments: plan.arguments, environment: environment,
            strictReadOnly: plan.readOnly, strictReadWrite: plan.readWrite, programs: plan.programs, programLinks: plan.programLinks)

        let child: ChildProcess
        do {
            let cgroupFDs = try slot.cgroup?.openProcsFiles() ?? []
            defer { for fd in cgroupFDs { close(fd) } }
            let spec = try launcher.coldSpec(options, uid: uid, seccompPath: try seccomp.path(for: "default"),
                                             log: capture, socket: nil, cgroupFDs: cgroupFDs)
            child = try await launcher.reactor.spawn(spec)
        } catch {
            throw KernelError.from(error)
        }

        // The run's time limit: then everything in its cgroups dies.
        let timedOut = Mutex(false)
        let cgroup = slot.cgroup
        let timer = Task {
            try await Task.sleep(for: .milliseconds(plan.timeoutMilliseconds))
            timedOut.withLock { $0 = true }
            cgroup?.killAll()
            _ = try? child.signal(SIGKILL)
        }
        let exit = await child.exit()
        timer.cancel()
        // Output ends when the last holder of the pipes is gone (init
        // killed the namespace before it reported): a short wait at most.
        await capture.finished(within: .seconds(2))
        let output = capture.take()
        return Outcome(exit: exit, stdout: output.stdout, stderr: output.stderr, stdoutDropped: output.stdoutDropped,
                       stderrDropped: output.stderrDropped, timedOut: timedOut.withLock { $0 })
    }

    /// The slot goes in the background: the caller has its answer already.
    private func retire(_ slot: AgentSlots.Slot) {
        Task { await slots.retire(slot) }
    }

    /// The input file: the run's uid may read it, nobody else (the dir is the run's, 0700).
    private static func writeInput(_ bytes: [UInt8], to path: String, uid: UInt32) throws(KernelError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o400)
        guard fd >= 0 else { throw KernelError(.internal, "cannot create \(path): \(errnoDescription(errno))") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { buffer -> Int in
            var done = 0
            while done < buffer.count {
                let n = write(fd, buffer.baseAddress.map { $0 + done }, buffer.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                done += n
            }
            return done
        }
        guard written == bytes.count, fchown(fd, uid, uid) == 0 else {
            throw KernelError(.internal, "cannot write \(path): \(errnoDescription(errno))")
        }
    }
}

/// A tool run's stdout and stderr, each kept up to its limit; what comes
/// after is counted, not kept.
final class ToolOutput: OutputSink, Sendable {
    private struct State {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var stdoutDropped = 0
        var stderrDropped = 0
        var finished = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let stdoutLimit: Int
    private let stderrLimit: Int
    private let state = Mutex(State())

    init(stdoutLimit: Int, stderrLimit: Int) {
        self.stdoutLimit = stdoutLimit
        self.stderrLimit = stderrLimit
    }

    func write(_ bytes: UnsafeRawBufferPointer, stream: AgentOSConfinement.OutputStream) {
        state.withLock { state in
            if stream == .stdout {
                let room = max(0, stdoutLimit - state.stdout.count)
                state.stdout += bytes.prefix(room)
                state.stdoutDropped += bytes.count - min(room, bytes.count)
            } else {
                let room = max(0, stderrLimit - state.stderr.count)
                state.stderr += bytes.prefix(room)
                state.stderrDropped += bytes.count - min(room, bytes.count)
            }
        }
    }

    func finish() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.finished = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once both pipes are at end of file, or after `limit`.
    func finished(within limit: Duration) async {
        let timer = Task {
            try await Task.sleep(for: limit)
            self.finish()
        }
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.finished { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
        timer.cancel()
    }

    func take() -> (stdout: [UInt8], stderr: [UInt8], stdoutDropped: Int, stderrDropped: Int) {
        state.withLock { ($0.stdout, $0.stderr, $0.stdoutDropped, $0.stderrDropped) }
    }
}
