import AgentOSProtocol
import Foundation

/// `--json` shapes of the supervision commands (snake_case, RFC 3339 times).
struct TreeNodeJSON: Encodable {
    var path: String
    var id: String
    var kind: String
    var state: String
    var pid: Int32?
    var agent: String?
    var restart: String?
    var strategy: String?
    var restarts_in_window: UInt32?
    var intensity: UInt32?
    var period_ms: UInt64?
    var started_at: String?
    var extra_args: [String]?
    var children: [TreeNodeJSON]?

    init(_ node: Agentos_V1_TreeNode) {
        path = node.path
        id = node.id
        kind = node.supervisor ? "supervisor" : "worker"
        state = node.state
        pid = node.pid == 0 ? nil : node.pid
        agent = node.agentID.isEmpty ? nil : node.agentID
        restart = node.restart.isEmpty ? nil : node.restart
        strategy = node.strategy.isEmpty ? nil : node.strategy
        restarts_in_window = node.supervisor ? node.restartsInWindow : nil
        intensity = node.supervisor ? node.intensity : nil
        period_ms = node.supervisor ? node.periodMs : nil
        started_at = node.startedAtNs == 0 ? nil : Output.timestamp(node.startedAtNs)
        extra_args = node.extraArgs.isEmpty ? nil : node.extraArgs
        children = node.supervisor ? node.children.map(TreeNodeJSON.init) : nil
    }
}

struct PolicySummaryJSON: Encodable {
    var name: String
    var file: String
    var applied_at: String?
    var state: String
    var ended_reason: String?
    var running_workers: UInt32
    var supervisors: UInt32

    init(_ summary: Agentos_V1_PolicySummary) {
        name = summary.name
        file = summary.file
        applied_at = Output.timestamp(summary.appliedAtNs)
        state = summary.state
        ended_reason = summary.endedReason.isEmpty ? nil : summary.endedReason
        running_workers = summary.workers
        supervisors = summary.supervisors
    }
}

struct ApplyJSON: Encodable {
    var policy: String
    var created: Bool
    var dry_run: Bool
    var started: [String]
    var stopped: [String]
    var restarted: [String]
    var unchanged: [String]
    var tree: TreeNodeJSON?
}

struct CheckpointJSON: Encodable {
    var path: String
    var agent: String
    var saved_at: String?
    var size: UInt64
    /// Base64, only for `checkpoint show`.
    var data: String?

    init(_ checkpoint: Agentos_V1_Checkpoint, withData: Bool) {
        path = checkpoint.path
        agent = checkpoint.agentID
        saved_at = Output.timestamp(checkpoint.savedAtNs)
        size = checkpoint.size
        data = withData ? checkpoint.data.base64EncodedString() : nil
    }
}

/// Prints a live tree, one line per node, children indented under their supervisor.
enum TreePrinter {
    static func print(_ node: Agentos_V1_TreeNode) {
        var rows: [[String]] = []
        collect(node, prefix: "", isLast: true, isRoot: true, into: &rows)
        Output.table(["NODE", "STATE", "PID", "AGENT", "RESTARTS", "UP"], rows)
    }

    /// A period the way policy files write it (5s, 250ms, 2m).
    private static func window(_ milliseconds: UInt64) -> String {
        if milliseconds % 60_000 == 0 { return "\(milliseconds / 60_000)m" }
        if milliseconds % 1_000 == 0 { return "\(milliseconds / 1_000)s" }
        return "\(milliseconds)ms"
    }

    private static func collect(_ node: Agentos_V1_TreeNode, prefix: String, isLast: Bool, isRoot: Bool,
                                into rows: inout [[String]]) {
        let branch = isRoot ? "" : prefix + (isLast ? "└─ " : "├─ ")
        var label = branch + node.id
        if node.supervisor { label += " (\(node.strategy.isEmpty ? "supervisor" : node.strategy))" }
        if !node.extraArgs.isEmpty { label += " [" + node.extraArgs.joined(separator: " ") + "]" }
        let uptime = node.startedAtNs > 0 && node.state == "running"
            ? Output.duration(nanoseconds: Output.now() - node.startedAtNs) : ""
        rows.append([label, node.state, node.pid == 0 ? "" : String(node.pid),
                     node.agentID.isEmpty ? "" : String(node.agentID.prefix(12)),
                     node.supervisor ? "\(node.restartsInWindow)/\(node.intensity) in \(window(node.periodMs))" : "", uptime])
        let childPrefix = isRoot ? "" : prefix + (isLast ? "   " : "│  ")
        for (index, child) in node.children.enumerated() {
            collect(child, prefix: childPrefix, isLast: index == node.children.count - 1, isRoot: false, into: &rows)
        }
    }
}
