import AgentOSModels
import AgentOSProtocol

/// Everything `agentd` is told on its command line.
public struct KernelConfiguration: Sendable {
    public var stateDirectory: String
    public var socketPath: String
    /// Members of this group may use admin calls (besides root and the
    /// kernel's own uid); the socket file is given this group.
    public var adminGroup: String?
    public var maximumFrameSize: Int
    /// A connection that has not said hello by then is closed.
    public var handshakeTimeoutMilliseconds: Int64
    /// `agentctl stop` without --timeout: SIGTERM, then SIGKILL after this.
    public var defaultStopGraceMilliseconds: Int64
    /// On kernel shutdown, agents get SIGTERM and this long before SIGKILL.
    public var shutdownGraceMilliseconds: Int64
    /// Per agent log file size before rotation (one rotated file is kept).
    public var logFileMaximumBytes: Int
    /// The agentos-sandbox helper exec'd for every agent.
    public var sandboxHelper: String
    /// Host uids (and gids) handed out to agents, one each while they live.
    public var agentUIDs: ClosedRange<UInt32>
    /// Sandboxes started ahead of their agents (see AgentSlots); 0: none.
    public var sandboxPoolSize: Int
    /// agentos-file-tool, which the file.* tools run (its canonical path).
    public var fileToolHelper: String
    /// How long a tool call waits for `agentctl approve` before it is denied.
    public var approvalTimeoutMilliseconds: Int64
    /// Messages one mailbox holds; more are refused (back-pressure).
    public var mailboxLimit: Int
    /// Bytes (keys and values) one agent's long-term and working memory may
    /// each hold, and each shared namespace; nil: no quota.
    public var memoryQuotaBytes: Int?
    /// Where seccomp profiles (NAME.json) are read from; "default" must exist.
    public var seccompProfilesDirectory: String
    /// Remount cgroup2 with favordynmods at start (see CgroupTuning).
    public var cgroupFavorDynamicModifications: Bool
    /// The model providers (`models:` of the config file).
    public var models: ModelsConfiguration = .defaults
    /// Where API keys are read besides the environment (0600, the kernel's own).
    public var secretsFile: String?
    /// Goals running at once; more wait in the queue.
    public var goalConcurrency: Int = 4

    public init(stateDirectory: String, socketPath: String, adminGroup: String? = nil,
                maximumFrameSize: Int = Frame.defaultMaximumPayloadSize,
                handshakeTimeoutMilliseconds: Int64 = 5_000,
                defaultStopGraceMilliseconds: Int64 = 5_000,
                shutdownGraceMilliseconds: Int64 = 5_000,
                logFileMaximumBytes: Int = 16 * 1024 * 1024,
                sandboxHelper: String, fileToolHelper: String = "", approvalTimeoutMilliseconds: Int64 = 300_000,
                mailboxLimit: Int = 1_000, memoryQuotaBytes: Int? = nil,
                agentUIDs: ClosedRange<UInt32> = 200_000...265_535, sandboxPoolSize: Int = 4,
                seccompProfilesDirectory: String, cgroupFavorDynamicModifications: Bool = false) {
        self.stateDirectory = stateDirectory
        self.socketPath = socketPath
        self.adminGroup = adminGroup
        self.maximumFrameSize = maximumFrameSize
        self.handshakeTimeoutMilliseconds = handshakeTimeoutMilliseconds
        self.defaultStopGraceMilliseconds = defaultStopGraceMilliseconds
        self.shutdownGraceMilliseconds = shutdownGraceMilliseconds
        self.logFileMaximumBytes = logFileMaximumBytes
        self.sandboxHelper = sandboxHelper
        self.fileToolHelper = fileToolHelper
        self.approvalTimeoutMilliseconds = approvalTimeoutMilliseconds
        self.mailboxLimit = mailboxLimit
        self.memoryQuotaBytes = memoryQuotaBytes
        self.agentUIDs = agentUIDs
        self.sandboxPoolSize = sandboxPoolSize
        self.seccompProfilesDirectory = seccompProfilesDirectory
        self.cgroupFavorDynamicModifications = cgroupFavorDynamicModifications
    }
}
