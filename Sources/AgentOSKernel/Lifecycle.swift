import AgentOSCapabilities
import AgentOSConfinement
import AgentOSProtocol
import AgentOSStore
import AgentOSTools
import CAgentOSShim
import Foundation
import Logging
import Synchronization

/// Why the kernel is ending an agent, which decides how its exit is read.
enum StopIntent: Sendable, Equatable {
    case stop       // operator: SIGTERM, then SIGKILL after the grace
    case kill       // operator: SIGKILL now
    case shutdown   // the kernel is stopping
    case timeout    // its wall-clock limit passed
}

/// Live and ended agent counts for `status`, kept in memory so the most
/// frequent call never touches the database.
final class AgentCounters: Sendable {
    private let counts: Mutex<StateStore.Counts>

    init(_ initial: StateStore.Counts) {
        counts = Mutex(initial)
    }

    var current: StateStore.Counts { counts.withLock { $0 } }

    func started() { counts.withLock { $0.live += 1 } }
    func ended() { counts.withLock { $0.live -= 1; $0.ended += 1 } }
    func failedToStart() { counts.withLock { $0.ended += 1 } }
}

/// Agents' lives: spawn, watch, stop, and record every step durably.
///
/// The actor owns the table of live agents; the store holds the truth that
/// outlives the kernel. Every transition is written (with its event) before
/// anyone is told about it.
actor Lifecycle {
    struct LiveAgent {
        var record: AgentRecord
        let child: ChildProcess
        let log: AgentLog
        let cgroup: AgentCgroup?
        let limits: ResourceLimits
        var intent: StopIntent?
        var connected = false
        var closeConnection: (@Sendable () -> Void)?
        var waiters: [ObjectIdentifier: ExitWaiter] = [:]
        /// Its supervisor, told of its end before the end is written.
        var endWatcher: CheckedContinuation<EndingAgent?, Never>?
        /// Ended, its end being written by its supervisor: its name is free.
        var ending = false
    }

    /// Opens the kernel's end of an agent's socketpair as a protocol
    /// connection; returns how to close it.
    typealias AgentConnector = @Sendable (_ agent: AgentRecord, _ fd: Int32) async -> (@Sendable () -> Void)?

    private let configuration: KernelConfiguration
    private let store: StateStore
    private let events: EventHub
    private let launcher: SandboxLauncher
    private let counters: AgentCounters
    private let contextUsers: ContextMemoryUsers
    private let bootID: String
    private let logger: Logger
    private let slots: AgentSlots
    private let cgroups: CgroupManager?
    private let seccomp: SeccompProfiles
    /// The host's Landlock ABI (0: none): every agent's write fence uses it.
    private let landlockABI: Int
    /// Applied when a run names no pids limit: a fork bomb stops here.
    static let defaultPidsLimit = 1_024
    private var connector: AgentConnector?
    private var live: [String: LiveAgent] = [:]
    private var reservedNames: Set<String> = []
    /// Replacements armed for live agents (and for a moment after they
    /// end), by the id of the agent each would replace.
    private var armedReplacements: [String: ArmedReplacement] = [:]
    /// Ended agents whose uid is not free yet (see `childExited`), and the
    /// starts waiting for one of them.
    private var uidsBeingFreed = 0
    private var uidWaiters: [CheckedContinuation<Void, Never>] = []
    private var accepting = true
    /// What every sandbox shows besides the agent's own paths.
    static let systemDirectories = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"]
    /// The monitor and init the sandbox adds to the agent's processes.
    static let sandboxProcesses = 2

    private let capabilities: CapabilityTable
    private let toolSandbox: ToolSandbox

    init(configuration: KernelConfiguration, store: StateStore, events: EventHub, launcher: SandboxLauncher,
         capabilities: CapabilityTable, toolSandbox: ToolSandbox, counters: AgentCounters, contextUsers: ContextMemoryUsers,
         slots: AgentSlots, cgroups: CgroupManager?, seccomp: SeccompProfiles,
         landlockABI: Int, bootID: String, logger: Logger) {
        self.cgroups = cgroups
        self.landlockABI = landlockABI
        self.seccomp = seccomp
        self.counters = counters
        self.contextUsers = contextUsers
        self.configuration = configuration
        self.store = store
        self.events = events
        self.launcher = launcher
        self.capabilities = capabilities
        self.toolSandbox = toolSandbox
        self.bootID = bootID
        self.logger = logger
        self.slots = slots
    }

    func setConnector(_ connector: @escaping AgentConnector) {
        self.connector = connector
    }

    // MARK: Run

    /// `after`: the agent's start is recorded only once it is fulfilled (a
    /// supervisor's events of the step that starts it come first in the
    /// log, written while the sandbox is being readied).
    /// `replacing`: the agent this one restarts (its armed replacement, if
    /// it fits, is used); `armsReplacement`: arm one for this agent.
    func run(_ request: Agentos_V1_RunRequest, after gate: Handoff<Void>? = nil, replacing: String? = nil,
             armsReplacement: Bool = false) async throws -> AgentRecord {
        guard accepting else { throw KernelError(.shuttingDown, "the kernel is shutting down; not starting new agents") }
        guard let programName = request.argv.first, !programName.isEmpty else {
            throw KernelError(.invalidArgument, "run needs a program: agentctl run -- PROGRAM [ARGS...]")
        }
        for key in request.env.keys where !Self.isValidEnvironmentName(key) {
            throw KernelError(.invalidArgument, "invalid environment variable name '\(key)'")
        }
        // C strings end at NUL: an argument or value holding one would not
        // reach the program as given.
        if let bad = request.argv.first(where: { $0.utf8.contains(0) }) {
            throw KernelError(.invalidArgument, "argument '\(bad.replacingOccurrences(of: "\0", with: "\\0"))' contains a NUL byte")
        }
        if let bad = request.env.first(where: { $0.value.utf8.contains(0) }) {
            throw KernelError(.invalidArgument, "the value of \(bad.key) contains a NUL byte")
        }
        for uri in request.capabilities {
            do {
                _ = try Capability(parsing: uri)
            } catch {
                throw KernelError(.invalidArgument, "capability \(uri): \(error.message)")
            }
        }
        let mcpServer = request.mcpServer.isEmpty ? nil : request.mcpServer
        if let mcpServer, !MCPNames.isServerName(mcpServer) {
            throw KernelError(.invalidArgument, "invalid MCP server name '\(mcpServer)': use \(MCPNames.serverNameRule)")
        }
        let name = request.name.isEmpty ? nil : request.name
        if let name, !Self.isValidName(name) {
            throw KernelError(.invalidArgument,
                              "invalid agent name '\(name)': use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
        }
        // The operators' mailbox and the sender name of their messages.
        if name == Bus.operatorIdentity {
            throw KernelError(.invalidArgument, "the name '\(Bus.operatorIdentity)' is the operators' own: choose another")
        }
        let workDirOverride = request.workDir.isEmpty ? nil : request.workDir
        if let workDirOverride {
            guard !workDirOverride.utf8.contains(0) else {
                throw KernelError(.invalidArgument, "--workdir: a path with a NUL byte")
            }
            var isDirectory: ObjCBool = false
            guard workDirOverride.hasPrefix("/"),
                  FileManager.default.fileExists(atPath: workDirOverride, isDirectory: &isDirectory),
                  isDirectory.boolValue else {
                throw KernelError(.invalidArgument, "work dir '\(workDirOverride)' is not an absolute path to a directory")
            }
            try checkShareable(workDirOverride, "--workdir")
        }
        let (limits, timeoutMilliseconds) = try resourceLimits(request)
        let sandbox = try sandboxRequest(request.sandbox)
        let seccompName = request.sandbox.seccomp.isEmpty ? "default" : request.sandbox.seccomp
        let seccompFilter = try seccomp.path(for: seccompName)
        let searchPath = request.env["PATH"] ?? ProgramLookup.defaultSearchPath
        let program: String
        do {
            program = try ProgramLookup.resolve(programName, searchPath: searchPath)
        } catch {
            throw KernelError.from(error)
        }

        let visible = Self.systemDirectories + sandbox.readOnly + sandbox.readWrite
            + (workDirOverride.map { [$0] } ?? [])
        guard visible.contains(where: { program == $0 || program.hasPrefix($0 + "/") }) else {
            throw KernelError(.programNotFound,
                              "program \(program) is not inside the agent's sandbox: add --ro \((program as NSString).deletingLastPathComponent)")
        }
        // A request that may not fit a held sandbox's pipe (64 KiB at least) runs cold.
        let requestEstimate = request.argv.reduce(0) { $0 + $1.utf8.count + 1 }
            + request.env.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 8 }
            + (sandbox.readOnly + sandbox.readWrite).reduce(0) { $0 + $1.utf8.count + 6 }
            + seccomp.filter(for: seccompName).count + 4_096
        // What the agent of `slot` is told, and how its sandbox is built.
        func agentOptions(in slot: AgentSlots.Slot, name agentName: String) -> SandboxLauncher.AgentOptions {
            // The agent's own dir is its default work dir and $HOME; its log
            // lives outside it, where the agent cannot rewrite its own history.
            let workDir = workDirOverride ?? slot.directory
            var environment = [
                "PATH": ProgramLookup.defaultSearchPath,
                "HOME": workDir,
            ]
            environment.merge(request.env) { _, new in new }
            environment[AgentEnvironment.socketFD] = String(AgentEnvironment.socketFDNumber)
            environment[AgentEnvironment.agentID] = slot.id
            environment[AgentEnvironment.agentName] = agentName
            var options = SandboxLauncher.AgentOptions(
                hostname: agentName, workDir: workDir, sandbox: sandbox, landlockABI: landlockABI, program: program,
                arguments: Array(request.argv.dropFirst()), environment: environment)
            options.stdioSocket = mcpServer != nil
            return options
        }
        // The replacement armed while the agent it replaces ran, if it was
        // built for just this sandbox; else a slot from the pool.
        var armedSlot: AgentSlots.Slot?
        var armedLimits: ResourceLimits?
        var armedOptions: SandboxLauncher.AgentOptions?
        if let replacing, let armed = armedReplacements.removeValue(forKey: replacing) {
            let options = name.map { agentOptions(in: armed.slot, name: $0) }
            if let options, armed.fits(options, seccompProfile: seccompName, slots: slots) {
                armedSlot = armed.slot
                armedLimits = armed.limits
                armedOptions = options
            } else {
                slots.drop(armed.slot)
            }
        }
        let slot = try armedSlot ?? slots.take(cold: requestEstimate > 65_536, refillNow: false) { live[$0] != nil }
        defer { slots.refill() }
        // An armed slot serves only the start it was armed for.
        let giveBack = { armedSlot == nil ? self.slots.giveBack(slot) : self.slots.drop(slot) }
        let id = slot.id
        var agentName = name ?? Self.defaultName(program: program, id: id)
        if agentName == Bus.operatorIdentity { agentName += "-" + String(id.prefix(4)) }
        // An agent whose end is being written has left its name free.
        let holder = live.values.first { $0.record.name == agentName && !$0.ending }?.record.id
        if reservedNames.contains(agentName) || holder != nil {
            giveBack()
            throw KernelError(.alreadyExists, "the name '\(agentName)' is in use by live agent \(holder ?? "starting")",
                              detail: ["name": agentName])
        }
        reservedNames.insert(agentName)
        defer { reservedNames.remove(agentName) }

        // An armed slot's were built for its check above (its name is `name`).
        let agentOptions = armedOptions ?? agentOptions(in: slot, name: agentName)
        let workDir = agentOptions.workDir
        let log = slot.log

        // The slot's held sandbox (if any) gets the rest as its request (an
        // armed one, only its start block).
        let prepared = slot.prepared
        let heldRequest: [UInt8]
        do {
            if prepared == nil {
                heldRequest = []
            } else if armedSlot != nil {
                heldRequest = try launcher.startBlock(agentOptions)
            } else {
                heldRequest = try launcher.request(agentOptions, filter: seccomp.filter(for: seccompName))
            }
        } catch {
            giveBack()
            throw error
        }

        let uid: UInt32
        if let prepared {
            uid = prepared.uid   // its dir is the uid's already
        } else {
            guard let allocated = await allocateUID() else {
                giveBack()
                throw KernelError(.unsupported, launcher.uids.exhaustedMessage)
            }
            uid = allocated
        }
        // A uid allocated here is given back if the spawn fails; a held
        // sandbox's goes back once its helper has exited.
        var uidHeld = prepared == nil
        defer { if uidHeld { launcher.uids.release(uid) } }
        if prepared == nil, workDirOverride == nil, chown(workDir, uid, uid) != 0 {
            giveBack()
            throw KernelError(.spawnFailed, "cannot give \(workDir) to uid \(uid): \(errnoDescription(errno))")
        }

        let cgroup: AgentCgroup?
        var cgroupFDs: [Int32] = []
        let enforced = Self.enforced(limits)
        do {
            if let prepared = slot.cgroup {
                // An armed slot's cgroups have the limits it was armed with.
                if armedLimits != enforced { try prepared.apply(enforced) }
                cgroup = prepared
            } else {
                cgroup = try cgroups?.create(agentID: id, limits: enforced)
            }
            // A held helper is in its cgroups already.
            if prepared == nil { cgroupFDs = try cgroup?.openProcsFiles() ?? [] }
        } catch {
            // Partly limited or failed: not fit to hand to another agent.
            slots.drop(slot)
            throw KernelError.from(error)
        }
        defer { for fd in cgroupFDs { close(fd) } }

        let kernelEnd: Int32, agentEnd: Int32
        if let prepared {
            kernelEnd = prepared.kernelEnd
            agentEnd = -1
        } else {
            var pair: [Int32] = [-1, -1]
            let pairRC = aos_socketpair(&pair)
            guard pairRC == 0 else {
                log.finish()
                await cgroup?.killAndRemove()
                throw KernelError(.spawnFailed, "socketpair: \(errnoDescription(-pairRC))")
            }
            kernelEnd = pair[0]
            agentEnd = pair[1]
        }

        let created = unixNanoseconds()
        var record = AgentRecord(id: id, name: agentName, state: .pending, program: program, argv: request.argv,
                                 environment: request.env, workDir: workDir, logPath: log.path,
                                 bootID: bootID, createdAt: created,
                                 limits: Self.limitsRecord(limits, timeoutMilliseconds: timeoutMilliseconds))
        record.sandbox = Self.sandboxRecord(sandbox, uid: uid, hostname: agentName)
        record.sandbox["seccomp"] = seccompName
        if let mcpServer { record.sandbox[Self.mcpServerKey] = mcpServer }
        record.sandbox["landlock_abi"] = String(landlockABI)
        let child: ChildProcess
        // The start, once written to the store (with a held sandbox, while
        // it finishes itself: the helper's pid is the agent's pid already).
        var spawned: EventRecord?
        do {
            if let prepared {
                let ticket = try launcher.reactor.send(prepared.held, request: heldRequest)
                if let gate { await gate.value() }
                do {
                    spawned = try recordSpawn(&record, pid: ticket.child.pid)
                } catch {
                    ticket.abandon()
                    throw error
                }
                child = try await launcher.reactor.awaitStart(ticket)
            } else {
                let spec = try launcher.coldSpec(agentOptions, uid: uid, seccompPath: seccompFilter, log: log,
                                             socket: agentEnd, cgroupFDs: cgroupFDs)
                child = try await launcher.reactor.spawn(spec)
            }
            if agentEnd >= 0 { close(agentEnd) }
            uidHeld = true   // the agent's now, whichever way it started
        } catch {
            if agentEnd >= 0 { close(agentEnd) }
            close(kernelEnd)
            log.finish()
            await cgroup?.killAndRemove()
            if let prepared {
                // Not waiting for its request any more (if it never got it).
                prepared.held.discard()
                _ = try? prepared.held.child.signal(SIGKILL)
                _ = await prepared.held.child.exit()
                launcher.uids.release(prepared.uid)
            }
            let kernelError = KernelError.from(error)
            record.state = .failed
            record.endedAt = unixNanoseconds()
            record.exit = ExitRecord(reason: "spawn-failed", detail: kernelError.message)
            let failed = EventRecord(time: record.endedAt, kind: "agent.spawn-failed", agentID: id,
                                     message: "\(agentName) failed to start: \(kernelError.message)",
                                     data: ["name": agentName])
            if let event = try? (spawned == nil ? store.insert(record, event: failed) : store.update(record, event: failed)) {
                events.publish(event)
                counters.failedToStart()
            }
            throw KernelError(kernelError.code, kernelError.message + " (recorded as failed agent \(id))",
                              detail: ["agent": id])
        }

        do {
            // Told to subscribers only now that the agent runs.
            if spawned == nil, let gate { await gate.value() }
            events.publish(try spawned ?? recordSpawn(&record, pid: child.pid))
        } catch {
            // Not recorded means not acknowledged: the agent must not run.
            _ = try? child.signal(SIGKILL)
            child.signalGroup(SIGKILL)
            cgroup?.killAll()
            close(kernelEnd)
            throw KernelError.from(error)
        }
        live[id] = LiveAgent(record: record, child: child, log: log, cgroup: cgroup, limits: limits)
        uidHeld = false   // released when the agent has ended
        // Before its socket is served: its first call already finds them.
        let source = request.capabilitySource.isEmpty ? "operator" : request.capabilitySource
        for uri in request.capabilities {
            do {
                try capabilities.grant(uri, to: id, agentName: agentName, source: source)
            } catch {
                // Only a store failure gets here (the URIs parsed above): an
                // agent without its grants is not the agent asked for.
                logger.error("cannot grant \(uri) to \(id): \(error); killing it")
                live[id]?.intent = .kill
                if let agent = live[id] { terminate(agent, signal: SIGKILL) }
                break
            }
        }
        for delegation in request.delegations {
            do {
                try capabilities.delegate(delegation.uri, from: delegation.parentID, holder: delegation.holder, to: id,
                                          childName: agentName)
            } catch {
                // The grant it came from is gone (revoked, or its holder
                // ended since): the agent runs without it, and it is said.
                _ = try? events.record("capability.not-delegated", agentID: id,
                                       "\(agentName) starts without \(delegation.uri): \(error.message)",
                                       data: ["uri": delegation.uri, "parent": delegation.parentID])
            }
        }
        if let timeoutMilliseconds {
            Task {
                try? await Task.sleep(for: .milliseconds(timeoutMilliseconds))
                self.timedOut(id: id, after: timeoutMilliseconds)
            }
        }
        counters.started()
        logger.info("agent spawned", metadata: ["agent": "\(id)", "name": "\(agentName)", "pid": "\(child.pid)"])
        if armsReplacement, name != nil, prepared != nil {
            // Once this start has settled: arming takes a slot, whose refill
            // execs a helper, and builds a sandbox; neither should compete
            // with this agent's own first steps.
            let plan = ArmingPlan(options: agentOptions, ownWorkDir: workDirOverride == nil, seccompProfile: seccompName,
                                  limits: enforced)
            Task {
                try? await Task.sleep(for: .milliseconds(Self.armingDelayMilliseconds))
                self.armReplacement(of: id, plan)
            }
        }

        if let connector {
            Task {
                let close = await connector(record, kernelEnd)
                self.attachConnection(id: id, close: close)
            }
        } else {
            close(kernelEnd)
        }
        Task {
            let exit = await child.exit()
            await self.childExited(id: id, exit: exit)
        }
        return record
    }

    // MARK: Armed replacements

    /// How to arm a replacement of an agent: its sandbox, with a fresh work
    /// dir unless it names one.
    struct ArmingPlan {
        var options: SandboxLauncher.AgentOptions
        var ownWorkDir: Bool
        var seccompProfile: String
        /// What its cgroups enforce (`enforced`).
        var limits: ResourceLimits
    }

    /// What an agent's cgroups enforce for `limits`: its pids limit counts
    /// the sandbox's own processes too.
    static func enforced(_ limits: ResourceLimits) -> ResourceLimits {
        var enforced = limits
        if let pids = enforced.pids { enforced.pids = pids + sandboxProcesses }
        return enforced
    }

    /// How long agentos-sandbox's init outlives the exit it reported, at
    /// most (its INIT_LINGER_MILLISECONDS).
    static let sandboxInitLinger: Duration = .milliseconds(100)

    /// How long after an agent's exit what is left of its sandbox is
    /// killed (init may still be lingering then; it is killed too).
    static let sandboxTeardownDelay: Duration = .milliseconds(50)

    /// Armed replacements at once, at most: each is a whole sandbox (three
    /// processes, namespaces, a uid) waiting.
    static let maximumArmedReplacements = 32

    /// How long after a start its replacement is armed.
    static let armingDelayMilliseconds = 50
    /// How long an ended agent's armed replacement waits for the restart
    /// that takes it (its supervisor's step is under way).
    static let armedGraceMilliseconds = 1_000

    /// Arms a replacement for a live agent that its supervisor restarts: a
    /// slot's held sandbox builds the agent's sandbox now and waits, as the
    /// agent, for the program (`ProcessReactor.arm`), so that the restart
    /// pays only for the exec. Best effort: without one, a restart takes a
    /// slot as any start does.
    private func armReplacement(of id: String, _ plan: ArmingPlan) {
        guard accepting, running(id) != nil, armedReplacements[id] == nil,
              armedReplacements.count < Self.maximumArmedReplacements else { return }
        guard let slot = try? slots.take(isTaken: { live[$0] != nil }) else { return }
        guard let prepared = slot.prepared else {
            slots.giveBack(slot)
            return
        }
        var options = plan.options
        if plan.ownWorkDir { options.workDir = slot.directory }
        do {
            try slot.cgroup?.apply(plan.limits)
            // As they are before the helper binds them.
            let boundPaths = ArmedReplacement.identities(of: options)
            let request = try launcher.request(options, filter: seccomp.filter(for: plan.seccompProfile), arming: true)
            try launcher.reactor.arm(prepared.held, request: request)
            armedReplacements[id] = ArmedReplacement(slot: slot, sandbox: options.sandboxStrings,
                                                     seccompProfile: plan.seccompProfile, limits: plan.limits,
                                                     boundPaths: boundPaths)
        } catch {
            logger.debug("cannot arm a replacement for \(id): \(error)")
            slots.drop(slot)
        }
    }

    /// Ends an armed replacement no restart took.
    private func discardArmedReplacement(of id: String) {
        if let armed = armedReplacements.removeValue(forKey: id) { slots.drop(armed.slot) }
    }

    /// Ends the armed replacements of agents no restart will follow (their
    /// tree has stopped).
    func discardArmedReplacements(of ids: [String]) {
        for id in ids { discardArmedReplacement(of: id) }
    }

    /// A free uid; when none is, but an ended agent's is about to come free
    /// (its sandbox's last processes are going), that one, once it is.
    private func allocateUID() async -> UInt32? {
        while true {
            if let uid = launcher.uids.allocate() { return uid }
            guard uidsBeingFreed > 0 else { return nil }
            await withCheckedContinuation { uidWaiters.append($0) }
        }
    }

    /// Writes a start: the record, running with `pid`, and its event.
    private func recordSpawn(_ record: inout AgentRecord, pid: Int32) throws -> EventRecord {
        record.state = .running
        record.pid = pid
        record.startedAt = unixNanoseconds()
        return try store.insert(record, event: EventRecord(
            time: record.startedAt, kind: "agent.spawned", agentID: record.id,
            message: "\(record.name) spawned: pid \(pid), \(record.argv.joined(separator: " "))",
            data: ["name": record.name, "pid": String(pid), "program": record.program]))
    }

    /// Grants to a live agent. On this actor, where the agent's end also
    /// revokes what it holds: a grant can never outlive its agent.
    func grantCapability(_ uri: String, to reference: String) throws -> (CapabilityRecord, AgentRecord) {
        let agent = try resolve(reference)
        guard running(agent.id) != nil else {
            throw KernelError(.conflict, "\(agent.name) (\(agent.id)) has \(agent.state.rawValue): capabilities go to live agents",
                              detail: ["reason": agent.state.rawValue])
        }
        do {
            return (try capabilities.grant(uri, to: agent.id, agentName: agent.name, source: "operator"), agent)
        } catch {
            // A grant refused (a URI that does not parse) is on the record too.
            _ = try? events.record("capability.refused", agentID: agent.id,
                                   "a grant to \(agent.name) was refused: \(error.message)", data: ["uri": uri])
            throw error
        }
    }

    private func attachConnection(id: String, close: (@Sendable () -> Void)?) {
        guard let close else { return }
        if live[id] != nil {
            live[id]?.closeConnection = close
        } else {
            close()   // it already exited
        }
    }

    /// An agent said hello on its socket.
    func markConnected(id: String) {
        guard var agent = live[id], !agent.connected else { return }
        agent.connected = true
        live[id] = agent
        _ = try? events.record("agent.connected", agentID: id, "\(agent.record.name) said hello on its socket",
                               data: ["name": agent.record.name])
    }

    /// What an agent learns about itself in the kernel's welcome.
    static func agentSelf(_ record: AgentRecord) -> Agentos_V1_AgentSelf {
        var info = Agentos_V1_AgentSelf()
        info.id = record.id
        info.name = record.name
        info.argv = record.argv
        info.env = record.environment
        info.workDir = record.workDir
        return info
    }

    // MARK: Exit

    private func childExited(id: String, exit: ProcessExit) async {
        guard let agent = live[id] else { return }
        // Output written just before exit may still be in the pipes.
        await agent.log.waitFinished(milliseconds: 2_000)
        guard var current = live[id] else { return }
        let cgroup = current.cgroup
        let (state, exitRecord) = Self.classify(exit, intent: current.intent, oomKilled: (cgroup?.oomKills() ?? 0) > 0)
        current.record.state = state
        current.record.endedAt = unixNanoseconds()
        current.record.exit = exitRecord
        let record = current.record
        let message = "\(record.name) \(exit)" + (exitRecord.reason == "exited" || exitRecord.reason == "signaled"
            ? "" : " (\(exitRecord.reason))")
        var data = ["name": record.name, "reason": exitRecord.reason, "state": state.rawValue]
        if let code = exitRecord.code { data["code"] = String(code) }
        if let signal = exitRecord.signal { data["signal"] = String(signal) }
        let exitEvent = EventRecord(time: record.endedAt, kind: "agent.exited", agentID: id, message: message,
                                    data: data)
        var written = false
        if let watcher = current.endWatcher {
            // Its supervisor writes the end together with the step it causes
            // (a restart waits for no commit of its own; the end still comes
            // first in the log).
            live[id]?.endWatcher = nil
            live[id]?.ending = true
            let ending = EndingAgent(record: record, event: exitEvent)
            watcher.resume(returning: ending)
            written = await ending.wasWritten()
        }
        if !written {
            do {
                events.publish(try store.update(record, event: exitEvent))
            } catch {
                logger.error("cannot record the exit of agent \(id): \(error)")
            }
        }
        if armedReplacements[id] != nil {
            // The restart that takes it is on its way, if one is.
            Task {
                try? await Task.sleep(for: .milliseconds(Self.armedGraceMilliseconds))
                self.discardArmedReplacement(of: id)
            }
        }
        // What came while the supervisor wrote (waiters, the connection's
        // close) is in the table's entry.
        let entry = live.removeValue(forKey: id) ?? current
        capabilities.revokeAll(of: id, reason: "the agent ended")
        // Its context memory is this run's only.
        if contextUsers.take(id) { _ = try? store.deleteMemory(namespace: MemoryCalls.contextNamespace(id)) }
        // Its uid is free once nothing of its tools runs as it either.
        if let leftovers = toolSandbox.agentEnded(id) { await toolSandbox.finish(leftovers) }
        counters.ended()
        // Its uid comes free once what is left of its sandbox is gone (below).
        uidsBeingFreed += 1
        entry.closeConnection?()
        if !agent.log.isFinished { agent.log.finish() }
        logger.info("agent exited", metadata: ["agent": "\(id)", "status": "\(exit)", "reason": "\(exitRecord.reason)"])
        // Told last, once everything above is written and counted; a waiter
        // answers from here (`Connection.respondAtEnd`) or wakes off the actor.
        for waiter in entry.waiters.values { waiter.fulfil(.success(record)) }
        // What is left of its sandbox goes (init killed all of the agent's
        // pid namespace before its report, and keeps the namespaces a moment
        // so that their teardown does not slow down a restart).
        if let cgroup {
            try? await Task.sleep(for: Self.sandboxTeardownDelay)
            await cgroup.killAndRemove()
        } else {
            // No cgroup to empty: init ends by itself, within its linger.
            try? await Task.sleep(for: Self.sandboxInitLinger + .milliseconds(50))
        }
        // Its uid is free once nothing runs as it any more.
        if let uid = record.sandbox["uid"].flatMap(UInt32.init) { launcher.uids.release(uid) }
        uidsBeingFreed -= 1
        let waiting = uidWaiters
        uidWaiters = []
        for waiter in waiting { waiter.resume() }
    }

    /// How an exit reads: OTP's "normal" is exit 0 or death by the signal the
    /// kernel itself sent; everything else is a failure.
    /// `oomKilled` is asked only for an unclean end the kernel did not ask
    /// for (reading the cgroup's OOM count costs a file read).
    static func classify(_ exit: ProcessExit, intent: StopIntent?,
                         oomKilled: @autoclosure () -> Bool = false) -> (AgentRecord.State, ExitRecord) {
        // The OOM killer hit the agent (or a process of its cgroup) and it
        // did not come out of it cleanly: that is why it ended.
        if exit != .exited(code: 0) && intent != .stop && intent != .kill && intent != .shutdown && oomKilled() {
            let detail = "the OOM killer ended a process at the agent's memory limit"
            switch exit {
            case .exited(let code): return (.failed, ExitRecord(reason: "oom", code: code, detail: detail))
            case .signaled(let signal, _): return (.failed, ExitRecord(reason: "oom", signal: signal, detail: detail))
            }
        }
        if case .signaled(SIGKILL, _) = exit {
            if intent == .timeout {
                return (.failed, ExitRecord(reason: "timeout", signal: SIGKILL, detail: "ran past its wall-clock limit"))
            }
        }
        let reason: String
        switch intent {
        case .stop?: reason = "stopped"
        case .kill?: reason = "killed"
        case .shutdown?: reason = "kernel-shutdown"
        case .timeout?: reason = "timeout"
        case nil: reason = ""
        }
        switch exit {
        case .exited(let code):
            return (code == 0 ? .completed : .failed, ExitRecord(reason: reason.isEmpty ? "exited" : reason, code: code))
        case .signaled(let signal, let core):
            let detail = core ? "core dumped" : ""
            let sentByKernel: Bool
            switch intent {
            case .stop?, .shutdown?: sentByKernel = signal == SIGTERM || signal == SIGKILL
            case .kill?: sentByKernel = signal == SIGKILL
            case .timeout?, nil: sentByKernel = false
            }
            if sentByKernel {
                return (.completed, ExitRecord(reason: reason, signal: signal, detail: detail))
            }
            return (.failed, ExitRecord(reason: "signaled", signal: signal, detail: detail))
        }
    }

    // MARK: Operator calls

    func resolve(_ reference: String) throws -> AgentRecord {
        guard !reference.isEmpty else { throw KernelError(.invalidArgument, "no agent named: give an id or a name") }
        return try store.resolve(reference)
    }

    func isConnected(_ id: String) -> Bool { live[id]?.connected ?? false }

    func liveLog(_ id: String) -> AgentLog? { live[id]?.log }

    func list(includeEnded: Bool) throws -> [AgentInfo] {
        try store.agents(includeEnded: includeEnded).map { $0.wire(connected: live[$0.id]?.connected ?? false) }
    }

    func inspect(_ reference: String) throws -> AgentInfo {
        let record = try resolve(reference)
        let history = try store.events(agentID: record.id)
        var info = record.wire(connected: live[record.id]?.connected ?? false, history: history)
        info.cgroups = cgroupPaths(record.id)
        return info
    }

    /// A live agent whose end is not being written (see `LiveAgent.ending`):
    /// one that may still be signalled, paused, granted to or watched.
    private func running(_ id: String) -> LiveAgent? {
        guard let agent = live[id], !agent.ending else { return nil }
        return agent
    }

    func stop(_ reference: String, graceMilliseconds: Int64?) async throws -> AgentRecord {
        let record = try resolve(reference)
        guard var agent = live[record.id] else { return record }
        // Ended already, its end being written: that is what it answers.
        if agent.ending { return try await waitForExit(record.id) }
        let grace = graceMilliseconds ?? configuration.defaultStopGraceMilliseconds
        if agent.intent == nil {
            agent.intent = .stop
            live[record.id] = agent
            // A frozen process would not see SIGTERM until thawed.
            if agent.record.state == .paused { try? await agent.cgroup?.thaw() }
            _ = try? events.record("agent.stopping", agentID: record.id,
                                   "\(record.name): SIGTERM sent, SIGKILL in \(grace) ms if still running",
                                   data: ["name": record.name, "grace_ms": String(grace)])
            terminate(agent, signal: SIGTERM)
            let id = record.id
            Task {
                try? await Task.sleep(for: .milliseconds(grace))
                self.escalate(id: id)
            }
        }
        return try await waitForExit(record.id)
    }

    func kill(_ reference: String) async throws -> AgentRecord {
        let record = try resolve(reference)
        guard var agent = live[record.id] else { return record }
        if agent.ending { return try await waitForExit(record.id) }
        if agent.intent != .kill {
            agent.intent = .kill
            live[record.id] = agent
            _ = try? events.record("agent.killing", agentID: record.id, "\(record.name): SIGKILL sent",
                                   data: ["name": record.name])
        }
        terminate(agent, signal: SIGKILL)
        return try await waitForExit(record.id)
    }

    /// Sends a signal and returns at once (the supervisor keeps its own
    /// timers): SIGTERM reaches the agent through its monitor; SIGKILL goes
    /// to every process in the agent's cgroup.
    func signal(id: String, _ signal: Int32) async {
        guard var agent = running(id) else { return }
        if agent.intent == nil || signal == SIGKILL {
            agent.intent = signal == SIGKILL ? .kill : .stop
            live[id] = agent
        }
        if agent.record.state == .paused { try? await agent.cgroup?.thaw() }
        terminate(agent, signal: signal)
    }

    /// For an agent's supervisor: the agent's end, before it is written
    /// (the supervisor writes it, see `EndingAgent`). nil if it has ended
    /// already (its record is in the store then) or is watched already.
    func watchEnd(_ id: String) async -> EndingAgent? {
        await withCheckedContinuation { continuation in
            guard let agent = running(id), agent.endWatcher == nil else {
                continuation.resume(returning: nil)
                return
            }
            live[id]?.endWatcher = continuation
        }
    }

    /// Off the actor, like `waitForExit`: its caller resumes where it waits.
    nonisolated func wait(_ reference: String) async throws -> AgentRecord {
        let record = try await resolve(reference)
        return try await waitForExit(record.id)
    }

    private func escalate(id: String) {
        guard let agent = live[id], agent.child.exitStatus == nil else { return }
        agent.log.note("still running after the stop grace period: SIGKILL")
        _ = try? events.record("agent.escalated", agentID: id,
                               "\(agent.record.name) ignored SIGTERM for the grace period: SIGKILL sent",
                               data: ["name": agent.record.name])
        terminate(agent, signal: SIGKILL)
    }

    private func terminate(_ agent: LiveAgent, signal: Int32) {
        // SIGKILL reaches every process of the agent through its cgroup.
        if signal == SIGKILL { agent.cgroup?.killAll() }
        // The sandbox monitor passes the signal on to the agent; its pid
        // namespace holds everything else, and dies with it.
        do {
            try agent.child.signal(signal)
        } catch {
            logger.warning("cannot signal agent \(agent.record.id): \(error)")
        }
    }

    /// One wait for an agent's end: its record, or why there is none.
    typealias ExitWaiter = Handoff<Result<AgentRecord, any Error>>

    /// The agent's record once it has ended. Cancelling the waiting task
    /// (its request was cancelled, or its client left) stops the wait.
    /// Awaited off the actor: the waiter's task wakes on its own thread,
    /// with no hop back to the actor (see `childExited`).
    private nonisolated func waitForExit(_ id: String) async throws -> AgentRecord {
        try await awaitEnd(await exitWaiter(id), of: id)
    }

    /// A waiter for `id`'s end, registered: for a caller that answers from
    /// the thread that ends the agent (`Handoff.whenFulfilled`), then waits
    /// with `awaitEnd`.
    nonisolated func exitWaiter(_ id: String) async -> ExitWaiter {
        let waiter = ExitWaiter()
        await addWaiter(waiter, for: id)
        return waiter
    }

    /// Waits for `waiter` (registered for `id`); cancelling the task ends
    /// the wait, not the agent.
    nonisolated func awaitEnd(_ waiter: ExitWaiter, of id: String) async throws -> AgentRecord {
        try await withTaskCancellationHandler {
            try await waiter.value().get()
        } onCancel: {
            waiter.fulfil(.failure(CancellationError()))
            Task { await self.dropWaiter(waiter, for: id) }
        }
    }

    private func addWaiter(_ waiter: ExitWaiter, for id: String) {
        if live[id] != nil {
            if !waiter.isFulfilled { live[id]?.waiters[ObjectIdentifier(waiter)] = waiter }
        } else if let record = try? store.agent(id: id) {
            waiter.fulfil(.success(record))
        } else {
            waiter.fulfil(.failure(KernelError(.notFound, "no agent with id '\(id)'")))
        }
    }

    private func dropWaiter(_ waiter: ExitWaiter, for id: String) {
        live[id]?.waiters.removeValue(forKey: ObjectIdentifier(waiter))
    }

    private func timedOut(id: String, after milliseconds: Int64) {
        guard var agent = live[id], agent.intent == nil || agent.intent == .stop else { return }
        agent.intent = .timeout
        live[id] = agent
        agent.log.note("wall-clock limit of \(milliseconds) ms reached: SIGKILL")
        _ = try? events.record("agent.timeout", agentID: id,
                               "\(agent.record.name) ran past its \(milliseconds) ms limit: killed",
                               data: ["name": agent.record.name, "timeout_ms": String(milliseconds)])
        terminate(agent, signal: SIGKILL)
    }

    // MARK: Pause, resume, stats

    func pause(_ reference: String) async throws -> AgentRecord {
        try await setPaused(reference, true)
    }

    func resume(_ reference: String) async throws -> AgentRecord {
        try await setPaused(reference, false)
    }

    private func setPaused(_ reference: String, _ paused: Bool) async throws -> AgentRecord {
        let record = try resolve(reference)
        guard let agent = running(record.id), agent.intent == nil else {
            let now = live[record.id] == nil ? record.state.rawValue
                : live[record.id]?.ending == true ? "exiting" : "being stopped"
            throw KernelError(.notRunning, "\(record.name) (\(record.id)) is \(now), not running",
                              detail: ["agent": record.id])
        }
        guard let cgroup = agent.cgroup else {
            throw KernelError(.unsupported, "cannot \(paused ? "pause" : "resume"): agents have no cgroup on this host")
        }
        let wanted: AgentRecord.State = paused ? .paused : .running
        guard agent.record.state != wanted else { return agent.record }
        do {
            if paused { try await cgroup.freeze() } else { try await cgroup.thaw() }
        } catch {
            throw KernelError.from(error)
        }
        guard var current = live[record.id] else { return try resolve(record.id) }
        // A stop that began while the freezer settled wins: thaw, so the
        // agent sees its SIGTERM.
        if paused, current.intent != nil {
            try? await cgroup.thaw()
            throw KernelError(.notRunning, "\(record.name) (\(record.id)) is being stopped, not running",
                              detail: ["agent": record.id])
        }
        current.record.state = wanted
        live[record.id] = current
        let kind = paused ? "agent.paused" : "agent.resumed"
        events.publish(try store.update(current.record, event: EventRecord(
            time: unixNanoseconds(), kind: kind, agentID: record.id,
            message: "\(record.name) \(paused ? "frozen (cgroup freezer)" : "thawed")", data: ["name": record.name])))
        return current.record
    }

    /// Usage of one agent, or of every live agent when `reference` is empty.
    func stats(_ reference: String) throws -> [Agentos_V1_AgentStats] {
        let records: [AgentRecord] = reference.isEmpty
            ? live.values.map(\.record).sorted { $0.createdAt < $1.createdAt }
            : [try resolve(reference)]
        return records.map { record in
            var stats = Agentos_V1_AgentStats()
            stats.id = record.id
            stats.name = record.name
            stats.state = record.state.wire
            stats.limits = Self.wireLimits(record.limits)
            if let cgroup = live[record.id]?.cgroup {
                let usage = cgroup.stats()
                if let value = usage.memoryBytes { stats.memoryBytes = UInt64(max(0, value)) }
                if let value = usage.memoryPeakBytes { stats.memoryPeakBytes = UInt64(max(0, value)) }
                if let value = usage.pids { stats.pids = UInt32(max(0, value)) }
                if let value = usage.cpuNanoseconds { stats.cpuNs = UInt64(max(0, value)) }
                stats.oomKills = UInt32(max(0, usage.oomKills))
            }
            return stats
        }
    }

    func cgroupPaths(_ id: String) -> [String] { live[id]?.cgroup?.paths ?? [] }

    /// A live agent's host uid and limits: its tool runs act as it, within
    /// its limits or tighter.
    func toolIdentity(of id: String) throws -> (uid: UInt32, limits: ResourceLimits) {
        guard let agent = live[id], let uid = agent.record.sandbox["uid"].flatMap(UInt32.init), uid != 0 else {
            throw KernelError(.notRunning, "agent \(id) is not running")
        }
        return (uid, agent.limits)
    }

    // MARK: Sandbox

    struct SandboxRequest {
        var readOnly: [String] = []
        var readWrite: [String] = []
        var tmpSize: UInt64 = 64 << 20
        var network = "none"
    }

    private func sandboxRequest(_ wire: Agentos_V1_Sandbox) throws -> SandboxRequest {
        var request = SandboxRequest()
        func checked(_ path: String, _ flag: String) throws -> String {
            guard !path.utf8.contains(0) else {
                throw KernelError(.invalidArgument, "\(flag): a path with a NUL byte")
            }
            guard path.hasPrefix("/"), FilePaths.lexical(path) != nil else {
                throw KernelError(.invalidArgument, "\(flag) \(path): give an absolute path without '..'")
            }
            // Checked and bound as it resolves: a symlink cannot lead a
            // bind past the checks.
            guard let resolved = realpath(path, nil) else {
                throw KernelError(.invalidArgument, "\(flag) \(path): no such file or directory")
            }
            let normalized = String(cString: resolved)
            free(resolved)
            try checkShareable(resolved: normalized, flag)
            return normalized
        }
        // The sandbox helper binds at most 64 paths; the work dir is one.
        guard wire.readOnly.count + wire.readWrite.count <= Self.maximumSharedPaths else {
            throw KernelError(.invalidArgument, "\(wire.readOnly.count + wire.readWrite.count) --ro/--rw paths: "
                                  + "at most \(Self.maximumSharedPaths); share a common parent instead")
        }
        request.readOnly = try wire.readOnly.map { try checked($0, "--ro") }
        request.readWrite = try wire.readWrite.map { try checked($0, "--rw") }
        for path in request.readWrite {
            guard let system = Self.systemDirectory(containing: path) else { continue }
            throw KernelError(.invalidArgument,
                              "--rw \(path): inside \(system), which agents see read-only; a system dir cannot be made writable")
        }
        if wire.hasTmpSize {
            guard wire.tmpSize >= 1 << 20, wire.tmpSize <= 64 << 30 else {
                throw KernelError(.invalidArgument, "invalid /tmp size \(wire.tmpSize) bytes: give 1M to 64G")
            }
            request.tmpSize = wire.tmpSize
        }
        switch wire.network {
        case "", "none": request.network = "none"
        case "loopback": request.network = "loopback"
        default:
            throw KernelError(.invalidArgument, "invalid network '\(wire.network)': use none or loopback")
        }
        return request
    }

    /// --ro and --rw paths one agent may have (agentos-sandbox's MAX_BINDS, less the work dir).
    static let maximumSharedPaths = 63

    /// The system dir `path` (normalized) is, or is below; nil for any other path.
    static func systemDirectory(containing path: String) -> String? {
        systemDirectories.first { path == $0 || path.hasPrefix($0 + "/") }
    }

    /// Paths no agent may be given: the host root, the kernel's own
    /// filesystems and state (and what holds them), and what holds a system dir.
    private func checkShareable(_ path: String, _ flag: String) throws {
        if let problem = Self.shareProblem(path, stateDirectory: configuration.stateDirectory) {
            throw KernelError(.invalidArgument, "\(flag) \(path): \(problem)")
        }
    }

    /// `checkShareable` for a path realpath resolved already.
    private func checkShareable(resolved path: String, _ flag: String) throws {
        if let problem = Self.shareProblem(resolved: path, stateDirectory: configuration.stateDirectory) {
            throw KernelError(.invalidArgument, "\(flag) \(path): \(problem)")
        }
    }

    /// Why `path` cannot be bound into a sandbox, or nil. Judged as it
    /// resolves (symlinks followed, as a bind follows them).
    static func shareProblem(_ path: String, stateDirectory: String) -> String? {
        shareProblem(resolved: (try? FilePaths.canonical(path)) ?? FilePaths.lexical(path) ?? path,
                     stateDirectory: stateDirectory)
    }

    /// `shareProblem` for a path resolved already (by realpath).
    static func shareProblem(resolved normalized: String, stateDirectory: String) -> String? {
        guard normalized != "/" else { return "the host root cannot be shared" }
        func within(_ inner: String, _ outer: String) -> Bool { inner == outer || inner.hasPrefix(outer + "/") }
        // The state dir as named and as it resolves (it may be behind a symlink).
        let resolvedState = canonicalStateDirectory(stateDirectory)
        for reserved in ["/proc", "/sys", "/dev", stateDirectory, resolvedState]
        where within(normalized, reserved) || within(reserved, normalized) {
            return "\(reserved) cannot be shared with an agent"
        }
        if let system = systemDirectories.first(where: { within($0, normalized) && $0 != normalized }) {
            return "it holds \(system), which agents see read-only already"
        }
        return nil
    }

    /// The state dir as it resolves, looked up once per name: every spawn
    /// checks its paths against it.
    private static func canonicalStateDirectory(_ named: String) -> String {
        if let (name, resolved) = resolvedStateDirectory.withLock({ $0 }), name == named { return resolved }
        let resolved = (try? FilePaths.canonical(named)) ?? named
        resolvedStateDirectory.withLock { $0 = (named, resolved) }
        return resolved
    }

    private static let resolvedStateDirectory = Mutex<(name: String, resolved: String)?>(nil)

    static func sandboxRecord(_ sandbox: SandboxRequest, uid: UInt32, hostname: String) -> [String: String] {
        [
            "uid": String(uid), "gid": String(uid), "hostname": hostname,
            "read_only": sandbox.readOnly.joined(separator: "\n"),
            "read_write": sandbox.readWrite.joined(separator: "\n"),
            "tmp_size": String(sandbox.tmpSize), "network": sandbox.network,
        ]
    }

    static func wireSandbox(_ record: [String: String]) -> Agentos_V1_Sandbox {
        var sandbox = Agentos_V1_Sandbox()
        sandbox.uid = record["uid"].flatMap(UInt32.init) ?? 0
        sandbox.gid = record["gid"].flatMap(UInt32.init) ?? 0
        sandbox.hostname = record["hostname"] ?? ""
        sandbox.readOnly = (record["read_only"] ?? "").split(separator: "\n").map(String.init)
        sandbox.readWrite = (record["read_write"] ?? "").split(separator: "\n").map(String.init)
        if let size = record["tmp_size"].flatMap(UInt64.init) { sandbox.tmpSize = size }
        sandbox.network = record["network"] ?? ""
        sandbox.seccomp = record["seccomp"] ?? ""
        sandbox.landlockAbi = record["landlock_abi"].flatMap(UInt32.init) ?? 0
        return sandbox
    }

    // MARK: Limits

    private func resourceLimits(_ request: Agentos_V1_RunRequest) throws -> (ResourceLimits, Int64?) {
        let wire = request.limits
        var limits = ResourceLimits()
        if wire.hasMemoryBytes {
            guard wire.memoryBytes >= 1 << 20, wire.memoryBytes <= UInt64(Int.max) else {
                throw KernelError(.invalidArgument, "invalid memory limit \(wire.memoryBytes) bytes: give at least 1M")
            }
            limits.memoryBytes = Int(wire.memoryBytes)
        }
        if wire.hasPids {
            guard wire.pids >= 1 else { throw KernelError(.invalidArgument, "invalid pids limit 0: give at least 1") }
            limits.pids = Int(wire.pids)
        }
        if wire.hasCpus {
            guard wire.cpus.isFinite, wire.cpus >= 0.01, wire.cpus <= 1_024 else {
                throw KernelError(.invalidArgument, "invalid cpu limit \(wire.cpus): give a number of CPUs from 0.01 up")
            }
            limits.cpus = wire.cpus
        }
        var timeout: Int64?
        if wire.hasTimeoutMs {
            guard wire.timeoutMs >= 1, wire.timeoutMs <= UInt64(Int64.max / 2) else {
                throw KernelError(.invalidArgument, "invalid timeout \(wire.timeoutMs) ms: give at least 1ms")
            }
            timeout = Int64(wire.timeoutMs)
        }
        if cgroups == nil {
            guard limits == ResourceLimits() else {
                throw KernelError(.unsupported,
                                  "cannot enforce resource limits: agentd has no usable cgroup hierarchy on this host (see agentctl status)")
            }
        } else if limits.pids == nil, cgroups?.canLimitPids == true {
            limits.pids = Self.defaultPidsLimit
        }
        return (limits, timeout)
    }

    static func limitsRecord(_ limits: ResourceLimits, timeoutMilliseconds: Int64?) -> [String: String] {
        var record: [String: String] = [:]
        if let value = limits.memoryBytes { record["memory_bytes"] = String(value) }
        if let value = limits.pids { record["pids"] = String(value) }
        if let value = limits.cpus { record["cpus"] = String(value) }
        if let value = timeoutMilliseconds { record["timeout_ms"] = String(value) }
        return record
    }

    static func wireLimits(_ record: [String: String]) -> Agentos_V1_ResourceLimits {
        var limits = Agentos_V1_ResourceLimits()
        if let value = record["memory_bytes"].flatMap(UInt64.init) { limits.memoryBytes = value }
        if let value = record["pids"].flatMap(UInt32.init) { limits.pids = value }
        if let value = record["cpus"].flatMap(Double.init) { limits.cpus = value }
        if let value = record["timeout_ms"].flatMap(UInt64.init) { limits.timeoutMs = value }
        return limits
    }

    // MARK: Kernel shutdown

    /// Stops every agent: SIGTERM, `grace`, SIGKILL; returns once all are
    /// recorded as ended. New runs are refused from here on.
    func shutdownAll(graceMilliseconds: Int64) async {
        accepting = false
        for id in Array(armedReplacements.keys) { discardArmedReplacement(of: id) }
        let ids = Array(live.keys)
        guard !ids.isEmpty else { return }
        logger.info("stopping \(ids.count) agent(s)")
        for id in ids {
            guard var agent = live[id] else { continue }
            agent.intent = .shutdown
            live[id] = agent
            if agent.record.state == .paused { try? await agent.cgroup?.thaw() }
            terminate(agent, signal: SIGTERM)
        }
        await withTaskGroup(of: Bool.self) { group in
            for id in ids {
                group.addTask {
                    _ = try? await self.waitForExit(id)
                    return true
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(graceMilliseconds))
                if !Task.isCancelled { await self.killRemaining() }
                return false
            }
            var exited = 0
            for await isExit in group where isExit {
                exited += 1
                if exited == ids.count {
                    group.cancelAll()
                    break
                }
            }
        }
    }

    private func killRemaining() {
        for agent in live.values {
            agent.log.note("kernel shutdown: still running after the grace period: SIGKILL")
            terminate(agent, signal: SIGKILL)
        }
    }

    // MARK: Names and ids

    static func defaultName(program: String, id: String) -> String {
        let base = program.split(separator: "/").last.map(String.init) ?? "agent"
        let cleaned = String(base.unicodeScalars.map { scalar -> Character in
            isNameScalar(scalar) ? Character(scalar) : "-"
        }.prefix(40))
        let start = cleaned.unicodeScalars.first.map { isNameScalar($0) && $0 != "." && $0 != "_" && $0 != "-" } ?? false
        return (start ? cleaned : "agent") + "-" + id.prefix(6)
    }

    private static func isNameScalar(_ scalar: Unicode.Scalar) -> Bool {
        (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
            || scalar == "." || scalar == "_" || scalar == "-"
    }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 63 else { return false }
        return isNameScalar(first) && first != "." && first != "_" && first != "-"
            && name.unicodeScalars.allSatisfy(isNameScalar)
    }

    /// Where an agent's record says it is an MCP server, and its name.
    static let mcpServerKey = "mcp_server"

    static func isValidEnvironmentName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("=") && !name.contains("\0")
    }
}

/// An agent that has ended, handed to its supervisor before its end is
/// written: the supervisor writes it in the commit of the step it causes, so
/// a restart waits for no commit of its own, and the log still has the end
/// before what follows from it.
final class EndingAgent: Sendable {
    let record: AgentRecord
    /// Its `agent.exited` event, not yet written.
    let event: EventRecord
    private let outcome = Handoff<Bool>()

    init(record: AgentRecord, event: EventRecord) {
        self.record = record
        self.event = event
    }

    /// Said once, by the supervisor: whether it wrote (and published) the end.
    func written(_ done: Bool) {
        outcome.fulfil(done)
    }

    func wasWritten() async -> Bool {
        await outcome.value()
    }
}

/// A replacement readied while its agent runs (`Lifecycle.armReplacement`):
/// a slot whose held sandbox is built for the agent's sandbox and waits for
/// the program. It serves only a start that would build the same sandbox.
struct ArmedReplacement {
    let slot: AgentSlots.Slot
    /// The sandbox options it was built with.
    let sandbox: [String]
    let seccompProfile: String
    /// What its cgroups enforce already.
    let limits: ResourceLimits
    /// The host paths bound into it (its work dir and --ro/--rw paths), as
    /// they were: a path replaced since is not the one it has.
    let boundPaths: [FileIdentity]

    struct FileIdentity: Equatable {
        let path: String
        let device: UInt64
        let inode: UInt64
    }

    static func identities(of options: SandboxLauncher.AgentOptions) -> [FileIdentity] {
        ([options.workDir] + options.sandbox.readOnly + options.sandbox.readWrite).map { path in
            var status = stat()
            guard stat(path, &status) == 0 else { return FileIdentity(path: path, device: 0, inode: 0) }
            return FileIdentity(path: path, device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
        }
    }

    /// Whether a start with `options` may use it: the same sandbox, its
    /// helper still waiting, and nothing it has bound changed since.
    func fits(_ options: SandboxLauncher.AgentOptions, seccompProfile: String, slots: AgentSlots) -> Bool {
        guard slots.isServable(slot),
              seccompProfile == self.seccompProfile,
              options.sandboxStrings == sandbox else { return false }
        return Self.identities(of: options) == boundPaths
    }
}
