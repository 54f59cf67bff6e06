// How the kernel starts one worker of a policy: the same settings, with the
// same meaning, as `agentctl run` takes on its command line.

/// Everything needed to start one worker child as a confined process.
public struct WorkerLaunch: Sendable, Hashable {
    /// The built-in LLM agent, run for a worker with `llm:` and no `program:`
    /// (Integration/install-examples.sh installs it there).
    public static let llmAgentProgram = "/opt/agentos/bin/agentos-llm-agent"

    /// As written: an absolute path, or a name looked up in the system PATH.
    public var program: String
    public var args: [String]
    public var env: [String: String]
    /// nil: the agent's own directory in the kernel's state dir.
    public var workdir: String?
    public var limits: Limits
    public var sandbox: Sandbox
    /// Capability URIs (ARCHITECTURE §6): checked for form now, enforced later.
    public var capabilities: [String]
    public var readiness: Readiness
    /// How long a start may take before it counts as failed (readiness notify).
    public var startTimeoutMilliseconds: Int64
    /// It is an MCP server of this name (MCP on its stdin/stdout; its tools
    /// are mcp.NAME.TOOL); nil: an agent speaking the Agent OS protocol.
    public var mcpServer: String?

    public static let defaultStartTimeoutMilliseconds: Int64 = 10_000

    public init(program: String, args: [String] = [], env: [String: String] = [:], workdir: String? = nil,
                limits: Limits = Limits(), sandbox: Sandbox = Sandbox(), capabilities: [String] = [],
                readiness: Readiness = .none,
                startTimeoutMilliseconds: Int64 = WorkerLaunch.defaultStartTimeoutMilliseconds) {
        self.program = program
        self.args = args
        self.env = env
        self.workdir = workdir
        self.limits = limits
        self.sandbox = sandbox
        self.capabilities = capabilities
        self.readiness = readiness
        self.startTimeoutMilliseconds = startTimeoutMilliseconds
    }

    /// Resource limits (cgroups and the wall clock); nil: not limited
    /// (pids: the kernel's default).
    public struct Limits: Sendable, Hashable {
        public var memoryBytes: Int?
        public var pids: Int?
        /// A number of CPUs, e.g. 0.5.
        public var cpus: Double?
        public var timeoutMilliseconds: Int64?

        public init(memoryBytes: Int? = nil, pids: Int? = nil, cpus: Double? = nil, timeoutMilliseconds: Int64? = nil) {
            self.memoryBytes = memoryBytes
            self.pids = pids
            self.cpus = cpus
            self.timeoutMilliseconds = timeoutMilliseconds
        }
    }

    /// What the agent sees of the host.
    public struct Sandbox: Sendable, Hashable {
        /// Absolute host paths shown inside, read-only.
        public var readOnly: [String]
        /// Absolute host paths shown inside, writable.
        public var readWrite: [String]
        /// Size of the private /tmp; nil: the kernel's default (64M).
        public var tmpSizeBytes: Int?
        /// "none" or "loopback".
        public var network: String
        /// A seccomp profile name from the kernel's Policies dir.
        public var seccomp: String

        public init(readOnly: [String] = [], readWrite: [String] = [], tmpSizeBytes: Int? = nil,
                    network: String = "none", seccomp: String = "default") {
            self.readOnly = readOnly
            self.readWrite = readWrite
            self.tmpSizeBytes = tmpSizeBytes
            self.network = network
            self.seccomp = seccomp
        }
    }

    /// When a start counts as done.
    public enum Readiness: String, Sendable, Hashable, CaseIterable {
        /// As soon as the program is exec'd.
        case none
        /// When the agent sends "ready" on its protocol socket, within the start timeout.
        case notify
    }
}
