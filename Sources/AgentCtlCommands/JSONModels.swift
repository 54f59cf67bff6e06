import AgentOSProtocol
import Foundation

/// The `--json` shapes: snake_case keys, times as RFC 3339 strings, stable
/// across releases (fields are only added).
struct AgentJSON: Encodable {
    struct Exit: Encodable {
        var reason: String
        var code: Int32?
        var signal: Int32?
        var signal_name: String?
        var detail: String?
        var status: Int32
    }

    var id: String
    var name: String
    var state: String
    var pid: Int32
    var program: String
    var argv: [String]
    var env: [String: String]
    var work_dir: String
    var log_path: String
    var connected: Bool
    var boot_id: String
    var created_at: String?
    var started_at: String?
    var ended_at: String?
    var exit: Exit?
    var limits: LimitsJSON
    var cgroups: [String]?
    var sandbox: SandboxJSON?
    var history: [EventJSON]?

    init(_ info: AgentInfo, includeHistory: Bool = false) {
        id = info.id
        name = info.name
        state = info.state.name
        pid = info.pid
        program = info.program
        argv = info.argv
        env = info.env
        work_dir = info.workDir
        log_path = info.logPath
        connected = info.connected
        boot_id = info.bootID
        created_at = Output.timestamp(info.createdAtNs)
        started_at = Output.timestamp(info.startedAtNs)
        ended_at = Output.timestamp(info.endedAtNs)
        if info.hasExit {
            let status = info.exit
            exit = Exit(reason: status.reason,
                        code: status.exited && status.reason != "lost" && status.reason != "spawn-failed" ? status.code : nil,
                        signal: status.exited ? nil : (status.signal == 0 ? nil : status.signal),
                        signal_name: status.exited || status.signal == 0 ? nil : signalName(status.signal),
                        detail: status.detail.isEmpty ? nil : status.detail,
                        status: shellStatus(info))
        }
        limits = LimitsJSON(info.limits)
        cgroups = info.cgroups.isEmpty ? nil : info.cgroups
        sandbox = info.hasSandbox ? SandboxJSON(info.sandbox) : nil
        history = includeHistory ? info.history.map(EventJSON.init) : nil
    }
}

struct EventJSON: Encodable {
    var seq: UInt64
    var time: String?
    var kind: String
    var agent_id: String?
    var message: String
    var data: [String: String]

    init(_ event: KernelEvent) {
        seq = event.seq
        time = Output.timestamp(event.timeNs)
        kind = event.kind
        agent_id = event.agentID.isEmpty ? nil : event.agentID
        message = event.message
        data = event.data
    }
}

struct StatusJSON: Encodable {
    struct Agents: Encodable {
        var running: UInt32
        var exited: UInt32
        var total: UInt32
    }

    var kernel_version: String
    var protocol_version: UInt32
    var pid: UInt32
    var boot_id: String
    var started_at: String?
    var uptime_seconds: Double
    var socket: String
    var state_dir: String
    var agents: Agents
    var host: HostJSON

    init(_ status: Agentos_V1_StatusResponse) {
        kernel_version = status.kernelVersion
        protocol_version = status.protocolVersion
        pid = status.pid
        boot_id = status.bootID
        started_at = Output.timestamp(status.startedAtNs)
        uptime_seconds = Double(status.uptimeNs) / 1e9
        socket = status.socketPath
        state_dir = status.stateDir
        agents = Agents(running: status.agents.running, exited: status.agents.exited, total: status.agents.total)
        host = HostJSON(cgroup_mode: status.host.cgroupMode, cgroup_detail: status.host.cgroupDetail,
                        landlock_abi: status.host.landlockAbi, user_namespaces: status.host.userNamespaces)
    }
}

struct LogJSON: Encodable {
    var stream: String
    var time: String?
    var data: String

    init(_ chunk: LogChunk) {
        switch chunk.stream {
        case .stdout: stream = "stdout"
        case .stderr: stream = "stderr"
        case .kernel: stream = "kernel"
        default: stream = "unknown"
        }
        time = Output.timestamp(chunk.timeNs)
        data = String(decoding: chunk.data, as: UTF8.self)
    }
}

struct LimitsJSON: Encodable {
    var memory_bytes: UInt64?
    var pids: UInt32?
    var cpus: Double?
    var timeout_ms: UInt64?

    init(_ limits: Agentos_V1_ResourceLimits) {
        memory_bytes = limits.hasMemoryBytes ? limits.memoryBytes : nil
        pids = limits.hasPids ? limits.pids : nil
        cpus = limits.hasCpus ? limits.cpus : nil
        timeout_ms = limits.hasTimeoutMs ? limits.timeoutMs : nil
    }
}

struct StatsJSON: Encodable {
    var id: String
    var name: String
    var state: String
    var memory_bytes: UInt64?
    var memory_peak_bytes: UInt64?
    var pids: UInt32?
    var cpu_ns: UInt64?
    var oom_kills: UInt32
    var limits: LimitsJSON
    var model_accounts: [ModelAccountJSON]

    init(_ stats: Agentos_V1_AgentStats) {
        id = stats.id
        name = stats.name
        state = stats.state.name
        memory_bytes = stats.hasMemoryBytes ? stats.memoryBytes : nil
        memory_peak_bytes = stats.hasMemoryPeakBytes ? stats.memoryPeakBytes : nil
        pids = stats.hasPids ? stats.pids : nil
        cpu_ns = stats.hasCpuNs ? stats.cpuNs : nil
        oom_kills = stats.oomKills
        limits = LimitsJSON(stats.limits)
        model_accounts = stats.modelAccounts.map(ModelAccountJSON.init)
    }
}

/// An account's model spending against its budget (absent: not limited).
struct ModelAccountJSON: Encodable {
    var account: String
    var input_tokens: UInt64
    var output_tokens: UInt64
    var cost_microdollars: UInt64
    var calls: UInt64
    var budget_tokens: UInt64?
    var budget_cost_microdollars: UInt64?
    var budget_requests_per_minute: UInt32?

    init(_ account: Agentos_V1_ModelAccount) {
        self.account = account.account
        input_tokens = account.inputTokens
        output_tokens = account.outputTokens
        cost_microdollars = account.costMicrodollars
        calls = account.calls
        budget_tokens = account.budget.hasTokens ? account.budget.tokens : nil
        budget_cost_microdollars = account.budget.hasCostMicrodollars ? account.budget.costMicrodollars : nil
        budget_requests_per_minute = account.budget.hasRequestsPerMinute ? account.budget.requestsPerMinute : nil
    }

    /// "1200/5000 tokens, $0.01/$2.00, 30/min" for people.
    static func text(_ account: Agentos_V1_ModelAccount) -> String {
        let tokens = account.inputTokens + account.outputTokens
        var parts = ["\(tokens)" + (account.budget.hasTokens ? "/\(account.budget.tokens)" : "") + " tokens"]
        let cost = String(format: "$%.4f", Double(account.costMicrodollars) / 1e6)
        parts.append(cost + (account.budget.hasCostMicrodollars ? String(format: "/$%.2f", Double(account.budget.costMicrodollars) / 1e6) : ""))
        parts.append("\(account.calls) calls" + (account.budget.hasRequestsPerMinute ? " (≤\(account.budget.requestsPerMinute)/min)" : ""))
        return "\(account.account): " + parts.joined(separator: ", ")
    }
}

struct HostJSON: Encodable {
    var cgroup_mode: String
    var cgroup_detail: String
    var landlock_abi: UInt32
    var user_namespaces: Bool
}

struct SandboxJSON: Encodable {
    var uid: UInt32
    var gid: UInt32
    var hostname: String
    var namespaces: [String]
    var read_only: [String]
    var read_write: [String]
    var tmp_size: UInt64?
    var network: String
    var seccomp: String
    /// 0: the host has no Landlock, so the mounts are the only write fence.
    var landlock_abi: UInt32

    init(_ sandbox: Agentos_V1_Sandbox) {
        uid = sandbox.uid
        gid = sandbox.gid
        hostname = sandbox.hostname
        namespaces = ["user", "pid", "mount", "net", "ipc", "uts", "cgroup"]
        read_only = sandbox.readOnly
        read_write = sandbox.readWrite
        tmp_size = sandbox.hasTmpSize ? sandbox.tmpSize : nil
        network = sandbox.network
        seccomp = sandbox.seccomp
        landlock_abi = sandbox.landlockAbi
    }
}
