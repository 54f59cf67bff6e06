import AgentOSConfinement
import AgentOSMCP
import AgentOSProtocol
import AgentOSTools
import CAgentOSShim
import Foundation
import Synchronization

/// Runs one tool invocation as its own confined child: the same sandbox an
/// agent gets (the seven namespaces, no capabilities, seccomp, Landlock,
/// its own cgroups), with only the paths the checked capability covers, no
/// network, and its output captured. It runs as the calling agent's host
/// user, so that what it writes is the agent's.
///
/// After an agent's first tool call a sandbox is held for its next one
/// (started with the agent's uid, in a slot's cgroups, waiting for its
/// request), as `AgentSlots` does for spawns: a call then skips the
/// helper's exec, the namespaces and the base root. The allowlist form
/// (`programs`) builds a different root and always starts cold. Every run
/// takes a slot of its own (dir, cgroups) and the slot goes, with all that
/// ran in its cgroups, once the run has ended. When the agent ends, its
/// runs are killed and its held sandbox discarded before its uid is free.
final class ToolSandbox: Sendable {
    let slots: AgentSlots
    let launcher: SandboxLauncher
    let seccomp: SeccompProfiles
    let landlockABI: Int

    /// A call under way: a confined child, or (http.fetch, agent.spawn,
    /// an MCP server's tool) the kernel's own work for it.
    fileprivate struct Run {
        /// Ends it now: the child and its cgroup killed, or the call answered.
        let stop: @Sendable () -> Void
        /// Returns once nothing of it runs.
        let finished: @Sendable () async -> Void
        /// The grants that allowed it and those whose paths it sees:
        /// revoking any stops it.
        let grantIDs: Set<String>

        init(child: ChildProcess, cgroup: AgentCgroup?, grantIDs: Set<String>) {
            stop = {
                cgroup?.killAll()
                _ = try? child.signal(SIGKILL)
            }
            finished = { _ = await child.exit() }
            self.grantIDs = grantIDs
        }

        init(stop: @escaping @Sendable () -> Void, grantIDs: Set<String>) {
            self.stop = stop
            finished = {}
            self.grantIDs = grantIDs
        }
    }

    private struct State {
        /// One sandbox held per agent that calls tools, for its next call.
        var held: [String: AgentSlots.Slot] = [:]
        /// Holding one for the agent is under way.
        var holding: Set<String> = []
        var runs: [String: [UInt64: Run]] = [:]
        /// Agents whose tool runs are over for good, with when they ended
        /// (kept longer than any run may last: a call that started before
        /// its agent ended must not start its child after).
        var ended: [String: ContinuousClock.Instant] = [:]
        var nextRun: UInt64 = 0
        /// Runs under way per agent, from before their start.
        var inflight: [String: Int] = [:]
    }

    private let state = Mutex(State())

    init(slots: AgentSlots, launcher: SandboxLauncher, seccomp: SeccompProfiles, landlockABI: Int) {
        self.slots = slots
        self.launcher = launcher
        self.seccomp = seccomp
        self.landlockABI = landlockABI
    }

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
        /// Other grants whose paths the run sees: revoking one kills it too.
        var grants: [String] = []
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

    /// Tool runs one agent may have at once: each has its own cgroup with
    /// the agent's limits, so this bounds what an agent can hold through tools.
    static let maximumRunsPerAgent = 8

    /// Runs `plan` as host user `uid`, the calling agent's, allowed by
    /// `grantID`; `isGranted` says whether grants are still live.
    func run(_ plan: Plan, uid: UInt32, agentID: String, grantID: String,
             isGranted: @Sendable (Set<String>) -> Bool) async throws -> Outcome {
        let admitted = state.withLock { state -> Bool in
            guard state.inflight[agentID, default: 0] < Self.maximumRunsPerAgent else { return false }
            state.inflight[agentID, default: 0] += 1
            return true
        }
        guard admitted else {
            throw KernelError(.conflict, "agent \(agentID) has \(Self.maximumRunsPerAgent) tool runs under way already: "
                                  + "wait for one to end")
        }
        defer {
            state.withLock { state in
                state.inflight[agentID, default: 1] -= 1
                if state.inflight[agentID] == 0 { state.inflight[agentID] = nil }
            }
        }
        let capture = ToolOutput(stdoutLimit: plan.stdoutLimit, stderrLimit: plan.stderrLimit)
        let warm = plan.programs.isEmpty ? takeHeld(agentID) : nil
        let slot = try warm ?? slots.take(cold: true) { _ in false }
        defer {
            retire(slot)
            if plan.programs.isEmpty { holdNext(for: agentID, uid: uid) }
        }
        slot.output.capture(into: capture)
        if warm == nil, chown(slot.directory, uid, uid) != 0 {
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
        var environment = ["PATH": ProgramLookup.defaultSearchPath, "HOME": slot.directory, "LANG": "C.UTF-8"]
        environment.merge(plan.environment) { _, new in new }
        var sandbox = Lifecycle.SandboxRequest()
        sandbox.tmpSize = Self.tmpSize
        let options = SandboxLauncher.AgentOptions(
            hostname: "tool", workDir: slot.directory, sandbox: sandbox, landlockABI: landlockABI,
            program: plan.program, arguments: plan.arguments, environment: environment,
            strictReadOnly: plan.readOnly, strictReadWrite: plan.readWrite, programs: plan.programs,
            programLinks: plan.programLinks)

        let child: ChildProcess
        do {
            if let prepared = slot.prepared {
                let request = try launcher.request(options, filter: seccomp.filter(for: "default"))
                let ticket = try launcher.reactor.send(prepared.held, request: request)
                child = try await launcher.reactor.awaitStart(ticket)
            } else {
                let cgroupFDs = try slot.cgroup?.openProcsFiles() ?? []
                defer { for fd in cgroupFDs { close(fd) } }
                let spec = try launcher.coldSpec(options, uid: uid, seccompPath: try seccomp.path(for: "default"),
                                                 log: capture, socket: nil, cgroupFDs: cgroupFDs)
                child = try await launcher.reactor.spawn(spec)
            }
        } catch {
            throw KernelError.from(error)
        }
        let grantIDs = Set([grantID] + plan.grants)
        guard let runID = register(agentID, Run(child: child, cgroup: slot.cgroup, grantIDs: grantIDs)) else {
            // The agent ended while this run started: it does not outlive it.
            slot.cgroup?.killAll()
            _ = try? child.signal(SIGKILL)
            _ = await child.exit()
            throw KernelError(.notRunning, "agent \(agentID) ended during its tool call")
        }
        defer { unregister(agentID, runID) }
        // Registered, a revocation kills it; one that came before is caught here.
        guard isGranted(grantIDs) else {
            slot.cgroup?.killAll()
            _ = try? child.signal(SIGKILL)
            _ = await child.exit()
            throw KernelError(.permissionDenied, "a grant this call needed was revoked before its run started")
        }

        // The run's time limit, or the caller gone: then everything in its cgroups dies.
        let timedOut = Mutex(false)
        let cgroup = slot.cgroup
        let timer = Task {
            try await Task.sleep(for: .milliseconds(plan.timeoutMilliseconds))
            timedOut.withLock { $0 = true }
            cgroup?.killAll()
            _ = try? child.signal(SIGKILL)
        }
        let exit = await withTaskCancellationHandler {
            await child.exit()
        } onCancel: {
            cgroup?.killAll()
            _ = try? child.signal(SIGKILL)
        }
        timer.cancel()
        // Output ends when the last holder of the pipes is gone (init
        // killed the namespace before it reported): a short wait at most.
        await capture.finished(within: .seconds(2))
        let output = capture.take()
        return Outcome(exit: exit, stdout: output.stdout, stderr: output.stderr, stdoutDropped: output.stdoutDropped,
                       stderrDropped: output.stderrDropped, timedOut: timedOut.withLock { $0 })
    }

    /// Grants were revoked: the runs they allowed are killed now (their
    /// calls answer that the grant went). Returns how many.
    @discardableResult
    func revoked(_ grantIDs: Set<String>) -> Int {
        let runs = state.withLock { state in
            state.runs.values.flatMap { $0.values }.filter { !$0.grantIDs.isDisjoint(with: grantIDs) }
        }
        for run in runs { run.stop() }
        return runs.count
    }

    /// `body` (a call's work in the kernel itself), answered with
    /// PERMISSION_DENIED the moment one of `grantIDs` is revoked or its
    /// agent ends (the work is cancelled; a server may still finish what it
    /// was asked); `isGranted` catches a revocation that came first.
    func revocable<T: Sendable>(agentID: String, grantIDs: Set<String>, isGranted: @Sendable (Set<String>) -> Bool,
                                _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let answer = FirstAnswer<T>()
        return try await withCheckedThrowingContinuation { continuation in
            answer.set(continuation)
            let work = Task {
                do {
                    answer.resume(with: .success(try await body()))
                } catch {
                    answer.resume(with: .failure(error))
                }
            }
            let stop: @Sendable () -> Void = {
                if answer.resume(with: .failure(KernelError(.permissionDenied,
                                                            "a grant this call used was revoked (or its agent ended) while it ran"))) {
                    work.cancel()
                }
            }
            guard let runID = register(agentID, Run(stop: stop, grantIDs: grantIDs)) else {
                stop()
                return
            }
            answer.whenDone { self.unregister(agentID, runID) }
            if !isGranted(grantIDs) { stop() }
        }
    }

    /// What is left of an ended agent's tools: its runs (killed already)
    /// and its held sandbox, to be waited for.
    struct Leftovers: Sendable {
        fileprivate let agentID: String
        fileprivate let runs: [Run]
        fileprivate let held: AgentSlots.Slot?
        /// A sandbox was being held for it: wait until that one is gone too.
        fileprivate let holding: Bool
    }

    /// The agent has ended: no run starts for it any more, its runs are
    /// killed and none is held for it again. nil if it had nothing left;
    /// else `finish` returns once nothing of its tools runs (its uid may
    /// then go to another agent).
    func agentEnded(_ agentID: String) -> Leftovers? {
        let now = ContinuousClock.now
        let (held, runs, holding) = state.withLock { state -> (AgentSlots.Slot?, [Run], Bool) in
            state.ended[agentID] = now
            if state.ended.count > 1_024 {
                state.ended = state.ended.filter { now - $0.value < Self.endRemembered }
            }
            defer {
                state.held[agentID] = nil
                state.runs[agentID] = nil
            }
            return (state.held[agentID], Array((state.runs[agentID] ?? [:]).values), state.holding.contains(agentID))
        }
        for run in runs { run.stop() }
        return held == nil && runs.isEmpty && !holding ? nil
            : Leftovers(agentID: agentID, runs: runs, held: held, holding: holding)
    }

    func finish(_ leftovers: Leftovers) async {
        for run in leftovers.runs { await run.finished() }
        if let held = leftovers.held { await slots.retire(held, discarding: true) }
        // A hold under way discards itself (the agent has ended) before it
        // says it is done; its helper runs as the agent's uid until then.
        for _ in 0..<500 where leftovers.holding && state.withLock({ $0.holding.contains(leftovers.agentID) }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Longer than any tool run may last.
    static let endRemembered: Duration = .milliseconds(BuiltinTools.maximumTimeoutMilliseconds * 2)

    // MARK: Held sandboxes per agent

    private func takeHeld(_ agentID: String) -> AgentSlots.Slot? {
        guard let slot = state.withLock({ state -> AgentSlots.Slot? in
            defer { state.held[agentID] = nil }
            return state.held[agentID]
        }) else { return nil }
        // Dead while it waited, or older than a change to the host's mounts: not used.
        if slots.isServable(slot) { return slot }
        retire(slot, discarding: true)
        return nil
    }

    /// Starts holding a sandbox for the agent's next call, in the background.
    private func holdNext(for agentID: String, uid: UInt32) {
        guard let launcher = slots.holdingLauncher, let generation = slots.mountGeneration else { return }
        let start = state.withLock { state -> Bool in
            guard state.ended[agentID] == nil, state.held[agentID] == nil, !state.holding.contains(agentID) else {
                return false
            }
            state.holding.insert(agentID)
            return true
        }
        guard start else { return }
        Task.detached(priority: .background) { [self] in
            var slot: AgentSlots.Slot?
            do {
                var made = try slots.take(cold: true) { _ in false }
                slot = made
                guard chown(made.directory, uid, uid) == 0 else { throw KernelError(.spawnFailed, "chown") }
                made.mountGeneration = generation
                made.prepared = try await launcher.hold(directory: made.directory, output: made.output, cgroup: made.cgroup,
                                                        agentUID: uid)
                slot = made
            } catch {
                // The next call starts cold; so be it.
            }
            let kept = state.withLock { state -> Bool in
                guard let slot, slot.prepared != nil, state.ended[agentID] == nil else { return false }
                state.holding.remove(agentID)
                state.held[agentID] = slot
                return true
            }
            if !kept {
                if let slot { await slots.retire(slot, discarding: true) }
                state.withLock { _ = $0.holding.remove(agentID) }
            }
        }
    }

    private func register(_ agentID: String, _ run: Run) -> UInt64? {
        state.withLock { state in
            guard state.ended[agentID] == nil else { return nil }
            state.nextRun += 1
            state.runs[agentID, default: [:]][state.nextRun] = run
            return state.nextRun
        }
    }

    private func unregister(_ agentID: String, _ runID: UInt64) {
        state.withLock { state in
            state.runs[agentID]?[runID] = nil
            if state.runs[agentID]?.isEmpty == true { state.runs[agentID] = nil }
        }
    }

    /// The slot goes in the background: the caller has its answer already.
    private func retire(_ slot: AgentSlots.Slot, discarding: Bool = false) {
        Task { await slots.retire(slot, discarding: discarding) }
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

