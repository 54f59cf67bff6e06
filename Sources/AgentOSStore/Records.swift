/// One agent as the store keeps it: identity, what was run, and how it ended.
public struct AgentRecord: Sendable, Equatable {
    public enum State: String, Sendable, CaseIterable {
        case pending, running, paused, completed, failed, lost

        public var isLive: Bool { self == .pending || self == .running || self == .paused }
    }

    public var id: String
    public var name: String
    public var state: State
    public var program: String
    public var argv: [String]
    public var environment: [String: String]
    public var workDir: String
    public var logPath: String
    public var pid: Int32
    public var bootID: String
    public var createdAt: Int64        // unix ns
    public var startedAt: Int64        // 0 until running
    public var endedAt: Int64          // 0 while live
    public var exit: ExitRecord?
    /// The limits enforced, as written by the kernel (e.g. "memory_bytes": "268435456").
    public var limits: [String: String]
    /// The sandbox as built: "uid", "gid", "hostname", "read_only" and
    /// "read_write" (paths joined by newlines), "tmp_size", "network".
    public var sandbox: [String: String]

    public init(id: String, name: String, state: State, program: String, argv: [String],
                environment: [String: String], workDir: String, logPath: String, pid: Int32 = 0,
                bootID: String, createdAt: Int64, startedAt: Int64 = 0, endedAt: Int64 = 0,
                exit: ExitRecord? = nil, limits: [String: String] = [:], sandbox: [String: String] = [:]) {
        self.id = id
        self.name = name
        self.state = state
        self.program = program
        self.argv = argv
        self.environment = environment
        self.workDir = workDir
        self.logPath = logPath
        self.pid = pid
        self.bootID = bootID
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.exit = exit
        self.limits = limits
        self.sandbox = sandbox
    }
}

/// How an agent ended: an exit code or a signal, and why.
public struct ExitRecord: Sendable, Equatable {
    /// Why it ended, as the protocol spells it: exited, signaled, stopped,
    /// killed, kernel-shutdown, lost, spawn-failed.
    public var reason: String
    public var code: Int32?
    public var signal: Int32?
    public var detail: String

    public init(reason: String, code: Int32? = nil, signal: Int32? = nil, detail: String = "") {
        self.reason = reason
        self.code = code
        self.signal = signal
        self.detail = detail
    }
}

/// One entry of the durable event log.
public struct EventRecord: Sendable, Equatable {
    public var seq: Int64
    public var time: Int64             // unix ns
    public var kind: String
    public var agentID: String
    public var message: String
    public var data: [String: String]

    public init(seq: Int64 = 0, time: Int64, kind: String, agentID: String = "",
                message: String, data: [String: String] = [:]) {
        self.seq = seq
        self.time = time
        self.kind = kind
        self.agentID = agentID
        self.message = message
        self.data = data
    }
}

/// One run of the kernel.
public struct BootRecord: Sendable, Equatable {
    public var id: String
    public var pid: Int32
    public var startedAt: Int64
    public var endedAt: Int64
    public var clean: Bool
}

/// A policy file as applied: re-read at every kernel start to restart its tree.
public struct PolicyRecord: Sendable, Equatable {
    public var name: String
    public var file: String
    public var source: String
    public var appliedAt: Int64

    public init(name: String, file: String, source: String, appliedAt: Int64) {
        self.name = name
        self.file = file
        self.source = source
        self.appliedAt = appliedAt
    }
}

/// The last checkpoint a supervised child saved, handed to its next run.
public struct CheckpointRecord: Sendable, Equatable {
    public var policy: String
    /// The child's path within the policy's tree.
    public var path: String
    public var agentID: String
    public var savedAt: Int64
    public var data: [UInt8]

    public init(policy: String, path: String, agentID: String, savedAt: Int64, data: [UInt8]) {
        self.policy = policy
        self.path = path
        self.agentID = agentID
        self.savedAt = savedAt
        self.data = data
    }
}
