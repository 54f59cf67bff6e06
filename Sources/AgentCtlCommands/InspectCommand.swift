import AgentOSProtocol
import ArgumentParser

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show everything the kernel knows about one agent, with its lifecycle history.")

    @OptionGroup var target: AgentReference

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_InspectRequest()
        request.agent = target.agent
        let result = try connection.withKernel { try $0.call(.inspect(request)) }
        guard case .inspect(let info) = result else { throw unexpectedResponse("inspect") }
        if output.json {
            Output.json(AgentJSON(info, includeHistory: true))
            return
        }
        var rows: [[String]] = [
            ["id:", info.id],
            ["name:", info.name],
            ["state:", info.state.name + (info.connected ? " (connected)" : "")],
            ["pid:", info.pid > 0 ? String(info.pid) : "-"],
            ["program:", info.program],
            ["argv:", info.argv.joined(separator: " ")],
            ["work dir:", info.workDir],
            ["log:", info.logPath],
            ["created:", Output.timestamp(info.createdAtNs) ?? "-"],
            ["started:", Output.timestamp(info.startedAtNs) ?? "-"],
        ]
        if info.endedAtNs > 0 { rows.append(["ended:", Output.timestamp(info.endedAtNs) ?? "-"]) }
        if info.hasExit {
            rows.append(["exit:", exitSummary(info) + (info.exit.detail.isEmpty ? "" : ": " + info.exit.detail)])
        }
        for (key, value) in info.env.sorted(by: { $0.key < $1.key }) { rows.append(["env:", "\(key)=\(value)"]) }
        let limits = info.limits
        var limitText: [String] = []
        if limits.hasMemoryBytes { limitText.append("memory " + Output.bytes(limits.memoryBytes)) }
        if limits.hasPids { limitText.append("pids \(limits.pids)") }
        if limits.hasCpus { limitText.append("cpu \(limits.cpus)") }
        if limits.hasTimeoutMs { limitText.append("timeout \(limits.timeoutMs)ms") }
        rows.append(["limits:", limitText.isEmpty ? "none" : limitText.joined(separator: ", ")])
        for path in info.cgroups { rows.append(["cgroup:", path]) }
        if info.hasSandbox {
            let sandbox = info.sandbox
            rows.append(["sandbox:", "uid \(sandbox.uid), gid \(sandbox.gid), hostname \(sandbox.hostname); "
                + "namespaces user, pid, mount, net, ipc, uts, cgroup; network \(sandbox.network)"])
            rows.append(["filesystem:", "read-only root; system dirs read-only; own /proc with /proc/sys read-only; minimal /dev; /tmp "
                + (sandbox.hasTmpSize ? Output.bytes(sandbox.tmpSize) : "") + "; work dir writable"])
            for path in sandbox.readOnly { rows.append(["read-only:", path]) }
            for path in sandbox.readWrite { rows.append(["writable:", path]) }
            rows.append(["privileges:", "no capabilities (bounding set empty), no_new_privs, core dumps off"])
            rows.append(["seccomp:", "profile \(sandbox.seccomp) (default deny; other ABIs killed)"])
            rows.append(["landlock:", sandbox.landlockAbi > 0
                ? "ABI \(sandbox.landlockAbi): writes only below the work dir, /tmp, /dev/shm and the writable paths"
                : "not available on this host (the read-only mounts are the only write fence)"])
        }
        rows.append(["kernel run:", info.bootID])
        Output.table([], rows)
        Output.line("history:")
        for event in info.history {
            Output.line("  \(Output.timestamp(event.timeNs) ?? "")  \(event.kind)  \(event.message)")
        }
    }
}
