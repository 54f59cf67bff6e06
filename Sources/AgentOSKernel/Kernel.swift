import AgentOSConfinement
import AgentOSProtocol
import AgentOSStore
import CAgentOSShim
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// What request handlers reach: the kernel's parts, wired once at start.
struct KernelServices: Sendable {
    let configuration: KernelConfiguration
    let store: StateStore
    let events: EventHub
    let lifecycle: Lifecycle
    let supervisor: PolicySupervisor
    let capabilities: CapabilityTable
    let tools: ToolRegistry
    let toolSandbox: ToolSandbox
    let approvals: Approvals
    let mcp: MCPServers
    let bus: Bus
    let models: ModelGateway
    let goals: GoalScheduler
    let budgets: ModelBudgets
    let bootID: String
    let startedAt: Int64
    let pid: Int32
    let uid: UInt32

    let counters: AgentCounters
    let contextUsers: ContextMemoryUsers
    /// Fixed for the kernel's life: built once, not per `status`.
    let hostStatus: Agentos_V1_HostSupport

    init(configuration: KernelConfiguration, store: StateStore, events: EventHub, lifecycle: Lifecycle,
         supervisor: PolicySupervisor, capabilities: CapabilityTable, tools: ToolRegistry, toolSandbox: ToolSandbox,
         mcp: MCPServers, bus: Bus, models: ModelGateway, budgets: ModelBudgets, bootID: String, startedAt: Int64, pid: Int32, uid: UInt32, counters: AgentCounters, contextUsers: ContextMemoryUsers,
         host: HostSupport, cgroupsUsable: Bool) {
        self.tools = tools
        self.toolSandbox = toolSandbox
        self.approvals = Approvals(events: events)
        self.mcp = mcp
        self.bus = bus
        self.models = models
        self.budgets = budgets
        self.goals = GoalScheduler(store: store, events: events, supervisor: supervisor, lifecycle: lifecycle,
                                   concurrency: configuration.goalConcurrency, bus: bus,
                                   logger: Logger(label: "agentd.goals"))
        self.configuration = configuration
        self.store = store
        self.events = events
        self.lifecycle = lifecycle
        self.supervisor = supervisor
        self.capabilities = capabilities
        self.bootID = bootID
        self.startedAt = startedAt
        self.pid = pid
        self.uid = uid
        self.counters = counters
        self.contextUsers = contextUsers
        var hostStatus = Agentos_V1_HostSupport()
        hostStatus.cgroupMode = cgroupsUsable ? host.cgroups.mode.rawValue : "none"
        var detail = host.cgroups.summary
        if let unified = host.cgroups.unified, CgroupTuning.favorsDynamicModifications(unified.mountPoint) {
            detail += "; favordynmods"
        }
        hostStatus.cgroupDetail = cgroupsUsable ? detail : "unusable: " + detail
        hostStatus.landlockAbi = UInt32(host.landlockABI)
        hostStatus.userNamespaces = host.userNamespaces
        self.hostStatus = hostStatus
    }

    func status() -> Agentos_V1_StatusResponse {
        var status = Agentos_V1_StatusResponse()
        status.kernelVersion = AgentOSVersion.release
        status.pid = UInt32(pid)
        status.startedAtNs = startedAt
        status.uptimeNs = unixNanoseconds() - startedAt
        status.socketPath = configuration.socketPath
        status.stateDir = configuration.stateDirectory
        status.protocolVersion = AgentOSVersion.protocolVersion
        status.bootID = bootID
        let counts = counters.current
        status.agents.running = UInt32(counts.live)
        status.agents.exited = UInt32(counts.ended)
        status.agents.total = UInt32(counts.live + counts.ended)
        status.host = hostStatus
        return status
    }
}

/// The kernel daemon as a service: takes the locks, recovers state, serves
/// the socket until told to stop, then stops every agent and records a
/// clean shutdown.
public final class Kernel: Service, Sendable {
    private let configuration: KernelConfiguration
    private let logger: Logger
    private let ready: (@Sendable () -> Void)?

    /// `ready` is called once the socket accepts connections.
    public init(configuration: KernelConfiguration, logger: Logger, ready: (@Sendable () -> Void)? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.ready = ready
    }

    public func run() async throws {
        let configuration = configuration
        try makeDirectories(configuration.stateDirectory + "/agents", mode: 0o700)
        try makeDirectories(configuration.stateDirectory + "/logs", mode: 0o700)
        // The mount point of every sandbox's private root (in its own mount
        // namespace); agents' uids must be able to pass through the state dir.
        try makeDirectories(configuration.stateDirectory + "/sandbox-root", mode: 0o755)
        chmod(configuration.stateDirectory, 0o711)
        chmod(configuration.stateDirectory + "/agents", 0o711)
        // Agents run as their own uids and must reach their work dirs.
        var ancestor = (configuration.stateDirectory as NSString).deletingLastPathComponent
        while ancestor != "/" && !ancestor.isEmpty {
            var info = stat()
            if stat(ancestor, &info) == 0 && info.st_mode & S_IXOTH == 0 {
                throw KernelError(.invalidArgument,
                                  "agents cannot reach the state dir \(configuration.stateDirectory): \(ancestor) is not searchable by other users (chmod o+x \(ancestor), or choose another --state-dir)")
            }
            ancestor = (ancestor as NSString).deletingLastPathComponent
        }
        guard access(configuration.sandboxHelper, X_OK) == 0 else {
            throw KernelError(.invalidArgument,
                              "the sandbox helper \(configuration.sandboxHelper) is missing or not executable (see --sandbox-helper)")
        }
        // A secrets file others could read stops the kernel before it starts.
        let modelKeys = try ModelKeys(secretsFile: configuration.secretsFile)
        let stateLock = try ExclusiveLock(path: configuration.stateDirectory + "/agentd.lock",
                                          purpose: "state dir \(configuration.stateDirectory)")
        defer { stateLock.release() }
        let socketDirectory = (configuration.socketPath as NSString).deletingLastPathComponent
        try makeDirectories(socketDirectory, mode: 0o755)
        let socketLock = try ExclusiveLock(path: configuration.socketPath + ".lock",
                                           purpose: "socket \(configuration.socketPath)")
        defer { socketLock.release() }

        let store: StateStore
        do {
            store = try StateStore(directory: configuration.stateDirectory)
        } catch {
            throw KernelError.from(error)
        }
        let bootID = randomHexID(length: 16)
        let startedAt = unixNanoseconds()
        let recovery = try store.beginBoot(id: bootID, pid: getpid(), at: startedAt)
        for boot in recovery.uncleanBoots {
            logger.warning("previous kernel run \(boot.id) (pid \(boot.pid)) did not shut down cleanly")
        }
        for agent in recovery.lostAgents {
            logger.warning("agent \(agent.id) (\(agent.name)) was running when the kernel died: recorded as lost")
        }

        let events = EventHub(store: store)
        let counters = AgentCounters(try store.counts())
        let reactor: ProcessReactor
        do {
            reactor = try ProcessReactor()
        } catch {
            throw KernelError.from(error)
        }
        defer { reactor.shutdown() }
        let agentsDirectory = configuration.stateDirectory + "/agents"
        let logsDirectory = configuration.stateDirectory + "/logs"
        let orphans = AgentSlots.removeUnrecorded(agentsDirectory: agentsDirectory, logsDirectory: logsDirectory,
                                                  recorded: try store.agentIDs())
        if orphans > 0 { logger.info("removed \(orphans) agent dir(s) and log(s) no agent owns") }
        let seccomp = try SeccompProfiles.compile(from: configuration.seccompProfilesDirectory,
                                                  into: configuration.stateDirectory + "/seccomp", logger: logger)
        let host = HostSupport.detect()
        if configuration.cgroupFavorDynamicModifications {
            if let unified = host.cgroups.unified {
                do {
                    if try CgroupTuning.enableFavorDynamicModifications(unified.mountPoint) {
                        logger.notice("remounted \(unified.mountPoint) with favordynmods (--cgroup-favordynmods)")
                    }
                } catch {
                    logger.warning("--cgroup-favordynmods: \(error)")
                }
            } else {
                logger.warning("--cgroup-favordynmods: no cgroup2 hierarchy on this host")
            }
        }
        let cgroups = await prepareCgroups(host: host.cgroups, stateDirectory: configuration.stateDirectory)
        // A held sandbox whose helper died is found by a failed write: EPIPE, not a signal.
        signal(SIGPIPE, SIG_IGN)
        let launcher = SandboxLauncher(helper: configuration.sandboxHelper,
                                       root: configuration.stateDirectory + "/sandbox-root", reactor: reactor,
                                       uids: AgentUIDs(range: configuration.agentUIDs))
        // After the cgroup clean-up: slots come with their cgroups made
        // (and their sandboxes held, unless --sandbox-pool 0).
        let pool = configuration.sandboxPoolSize
        let slots = AgentSlots(agentsDirectory: agentsDirectory, logsDirectory: logsDirectory,
                               logMaximumBytes: configuration.logFileMaximumBytes, capacity: max(pool, 1),
                               cgroups: cgroups, launcher: pool > 0 ? launcher : nil, logger: logger)
        slots.refill()
        defer { slots.closeWithoutWaiting() }
        let capabilities = try CapabilityTable(store: store, events: events, logger: logger)
        // No agent outlives a kernel: what the agents of a run that died
        // held is revoked (their windows of `rate` die with them).
        for holder in Set(capabilities.allGrants().map(\.record.agentID)) {
            capabilities.revokeAll(of: holder, reason: "its agent was lost when the kernel stopped")
        }
        // Expired memory is never read; its space goes back once per start.
        _ = try? store.deleteExpiredMemory(now: unixNanoseconds())
        // Contexts are one run's: those of the agents of a run that died go.
        _ = try? store.deleteMemory(namespacePrefix: MemoryCalls.contextNamespace(""))
        let contextUsers = ContextMemoryUsers()
        let toolSandbox = ToolSandbox(slots: slots, launcher: launcher, seccomp: seccomp, landlockABI: host.landlockABI)
        let lifecycle = Lifecycle(configuration: configuration, store: store, events: events, launcher: launcher,
                                  capabilities: capabilities, toolSandbox: toolSandbox,
                                  counters: counters, contextUsers: contextUsers, slots: slots, cgroups: cgroups,
                                  seccomp: seccomp, landlockABI: host.landlockABI, bootID: bootID, logger: logger)
        let budgets = ModelBudgets(store: store, logger: logger)
        let supervisor = PolicySupervisor(lifecycle: lifecycle, store: store, events: events, budgets: budgets, logger: logger)
        let tools = ToolRegistry()
        let adminGID = try resolveAdminGroup()
        // Its HTTP client must be shut down on every path from here.
        let models = ModelGateway(configuration: configuration.models, keys: modelKeys, logger: logger)
        let services = KernelServices(configuration: configuration, store: store, events: events, lifecycle: lifecycle,
                                      supervisor: supervisor, capabilities: capabilities, tools: tools,
                                      toolSandbox: toolSandbox, mcp: MCPServers(registry: tools, events: events, logger: logger),
                                      bus: Bus(store: store, events: events, mailboxLimit: configuration.mailboxLimit),
                                      models: models, budgets: budgets,
                                      bootID: bootID, startedAt: startedAt, pid: getpid(),
                                      uid: getuid(), counters: counters, contextUsers: contextUsers, host: host,
                                      cgroupsUsable: cgroups != nil)
        let connections = ConnectionRegistry()
        let group = MultiThreadedEventLoopGroup.singleton
        let logger = logger

        await lifecycle.setConnector { [logger] agent, fd in
            // An MCP server speaks MCP on that socket, not this protocol.
            if let server = agent.sandbox[Lifecycle.mcpServerKey] {
                return await services.mcp.attach(fd: fd, agent: agent, server: server, group: group)
            }
            return await Self.serveAgent(fd: fd, agent: agent, group: group, services: services,
                                         connections: connections, logger: logger)
        }

        let server: NIOAsyncChannel<AcceptedConnection, Never>
        do {
            server = try await bind(group: group, adminGID: adminGID, services: services)
        } catch {
            await models.shutdown()
            throw error
        }
        logger.info("agentd ready", metadata: ["socket": "\(configuration.socketPath)",
                                               "state": "\(configuration.stateDirectory)",
                                               "boot": "\(bootID)", "pid": "\(getpid())"])
        ready?()
        // Applied policies start again, each tree from its spec.
        let restoreReason = recovery.uncleanBoots.isEmpty
            ? "the kernel started again" : "the kernel restarted after an unclean stop (killed or crashed)"
        Task {
            await supervisor.restore(reason: restoreReason)
            // Goals dispatch once the trees they start agents under are back.
            await services.goals.start()
        }

        do {
            try await withGracefulShutdownHandler {
                try await withThrowingDiscardingTaskGroup { taskGroup in
                    try await server.executeThenClose { inbound in
                        for try await accepted in inbound {
                            connections.add(accepted.channel.channel)
                            taskGroup.addTask {
                                await Connection(accepted: accepted, services: services, logger: logger).run()
                                connections.remove(accepted.channel.channel)
                            }
                        }
                    }
                    // The socket is closed: stop the agents (their waiters get
                    // answers), end the live feeds, then drop every connection.
                    logger.info("shutting down")
                    _ = try? events.record("kernel.stopping", "kernel stopping: stopping every agent")
                    // Trees first, each in reverse start order; then whatever is left.
                    // Goals first: the agents the trees' stop ends must not count as attempts.
                await services.goals.stop()
                await supervisor.stopAll(timeout: .milliseconds(configuration.shutdownGraceMilliseconds))
                    await lifecycle.shutdownAll(graceMilliseconds: configuration.shutdownGraceMilliseconds)
                    await slots.close()
                    _ = await cgroups?.removeLeftovers()
                    cgroups?.removeBases()
                    events.finishAll()
                    services.bus.finishAll()
                    await models.shutdown()
                    try? await Task.sleep(for: .milliseconds(50))
                    connections.closeAll()
                }
            } onGracefulShutdown: {
                server.channel.close(promise: nil)
            }
        } catch {
            await models.shutdown()
            throw error
        }

        unlink(configuration.socketPath)
        try store.endBoot(id: bootID, at: unixNanoseconds())
        logger.info("agentd stopped cleanly")
    }

    /// This kernel's cgroups: created, and cleared of what a dead earlier run
    /// left (descendants of its agents are killed). nil when unusable.
    private func prepareCgroups(host: CgroupHost, stateDirectory: String) async -> CgroupManager? {
        guard host.mode != .none else {
            logger.warning("no cgroup hierarchy is mounted: agents run without resource limits")
            return nil
        }
        let manager = CgroupManager(host: host, baseName: "agentos-" + Self.shortHash(stateDirectory))
        do {
            try manager.prepare()
        } catch {
            logger.warning("cgroups unusable (\(error)): agents run without resource limits")
            return nil
        }
        let leftovers = await manager.removeLeftovers()
        if !leftovers.isEmpty {
            logger.warning("killed and removed the cgroups of \(leftovers.count) agent(s) a previous run left behind")
        }
        logger.info("cgroups: \(host.summary)")
        return manager
    }

    /// FNV-1a of the state dir: one cgroup base per kernel state.
    static func shortHash(_ text: String) -> String {
        String(String(fnv1a(text.utf8), radix: 16).prefix(12))
    }

    /// FNV-1a: stable across runs, unlike `hashValue`.
    static func fnv1a<Bytes: Sequence>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    private func resolveAdminGroup() throws(KernelError) -> UInt32? {
        guard let name = configuration.adminGroup else { return nil }
        guard let entry = getgrnam(name) else {
            throw KernelError(.invalidArgument, "admin group '\(name)' does not exist")
        }
        return entry.pointee.gr_gid
    }

    private func bind(group: MultiThreadedEventLoopGroup, adminGID: UInt32?,
                      services: KernelServices) async throws -> NIOAsyncChannel<AcceptedConnection, Never> {
        let path = configuration.socketPath
        var info = stat()
        if lstat(path, &info) == 0 {
            // We hold the socket's lock, so whatever is there is stale.
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw KernelError(.alreadyExists, "\(path) exists and is not a socket; remove it or choose another --socket")
            }
            unlink(path)
        }
        let ownUID = getuid()
        let logger = logger
        let server: NIOAsyncChannel<AcceptedConnection, Never>
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                // A client that shuts down its write side still hears why
                // (e.g. that its last frame was truncated).
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(unixDomainSocketPath: path) { channel in
                    Self.peerCredentials(channel).flatMapThrowing { credentials in
                        let admin = credentials.uid == 0 || credentials.uid == ownUID
                            || adminGID.map { gid in credentials.gid == gid || aos_user_in_group(credentials.uid, gid) == 1 } == true
                        let peer = Peer.client(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid, admin: admin)
                        return try Self.configure(channel, peer: peer, services: services, agentSelf: nil,
                                                  logger: logger)
                    }
                }
        } catch {
            throw KernelError(.internal, "cannot listen on \(path): \(error)")
        }
        // Owner and group may connect; nobody else.
        guard chmod(path, 0o660) == 0 else {
            throw KernelError(.internal, "cannot set the mode of \(path): \(String(cString: strerror(errno)))")
        }
        if let adminGID, chown(path, UInt32.max, adminGID) != 0 {
            throw KernelError(.internal, "cannot give \(path) to the admin group: \(String(cString: strerror(errno)))")
        }
        return server
    }

    private static func peerCredentials(_ channel: any Channel) -> EventLoopFuture<aos_ucred> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(KernelError(.internal, "socket has no peer credentials"))
        }
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
    }

    /// The pipeline of every protocol connection: framing, (for the kernel
    /// socket) the handshake timeout, the protocol state machine, then the
    /// async side.
    static func configure(_ channel: any Channel, peer: Peer, services: KernelServices,
                          agentSelf: Agentos_V1_AgentSelf?, logger: Logger) throws -> AcceptedConnection {
        let configuration = services.configuration
        let shared = AcceptedConnection.Shared(queue: OutboundQueue(channel: channel, highWater: Connection.outboundHighWater))
        let sync = channel.pipeline.syncOperations
        // A peer that does not read its answers stops being read from, so
        // it cannot make the kernel buffer without bound.
        try sync.addHandler(BackPressureHandler())
        try sync.addHandler(ByteToMessageHandler(FrameDecoder(maximumPayloadSize: configuration.maximumFrameSize)))
        if case .client = peer {
            // Agents may never speak the protocol; clients must, promptly.
            try sync.addHandler(HandshakeTimeoutHandler(
                timeout: .milliseconds(configuration.handshakeTimeoutMilliseconds)))
        }
        try sync.addHandler(ProtocolHandler(peer: peer, services: services, connection: shared, agentSelf: agentSelf,
                                            logger: logger))
        let asyncChannel = try NIOAsyncChannel(
            wrappingChannelSynchronously: channel,
            configuration: .init(inboundType: ConnectionInput.self, outboundType: ByteBuffer.self))
        return AcceptedConnection(channel: asyncChannel, peer: peer, shared: shared)
    }

    /// The event loop of an agent's socket: the same for every agent of a
    /// team (one supervisor's children), so a message between teammates
    /// is read and written on one thread, with no wake of another.
    static func loop(for agent: AgentRecord, in group: MultiThreadedEventLoopGroup) -> any EventLoop {
        let loops = Array(group.makeIterator())
        let identity = Bus.identity(of: agent)
        let hash = Self.fnv1a(Bus.team(of: identity) ?? identity.utf8[...])
        return loops.isEmpty ? group.next() : loops[Int(hash % UInt64(loops.count))]
    }

    /// Serves the kernel's end of an agent's socketpair; returns its closer.
    private static func serveAgent(fd: Int32, agent: AgentRecord, group: MultiThreadedEventLoopGroup,
                                   services: KernelServices, connections: ConnectionRegistry,
                                   logger: Logger) async -> (@Sendable () -> Void)? {
        let agentID = agent.id
        let agentSelf = Lifecycle.agentSelf(agent)
        services.bus.remember(agent)
        do {
            let accepted = try await ClientBootstrap(group: Self.loop(for: agent, in: group)).withConnectedSocket(fd) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.configure(channel, peer: .agent(id: agentID), services: services, agentSelf: agentSelf,
                                       logger: logger)
                }
            }
            let underlying = accepted.channel.channel
            connections.add(underlying)
            Task {
                await Connection(accepted: accepted, services: services, logger: logger).run()
                connections.remove(underlying)
            }
            return { underlying.close(promise: nil) }
        } catch {
            logger.warning("cannot serve the socket of agent \(agentID): \(error)")
            close(fd)
            return nil
        }
    }
}

/// Open connections, so shutdown can close the ones still open.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        channels.withLock { $0[ObjectIdentifier(channel)] = channel }
    }

    func remove(_ channel: any Channel) {
        channels.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func closeAll() {
        for channel in channels.withLock({ Array($0.values) }) { channel.close(promise: nil) }
    }
}
