import AgentOSProtocol
import ArgumentParser

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the kernel: version, pid, uptime, socket, state dir, agent counts.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let result = try connection.withKernel { try $0.call(.status(.init())) }
        guard case .status(let status) = result else { throw unexpectedResponse("status") }
        if output.json {
            Output.json(StatusJSON(status))
            return
        }
        Output.table([], [
            ["kernel:", "agentd \(status.kernelVersion) (protocol \(status.protocolVersion))"],
            ["pid:", String(status.pid)],
            ["up:", Output.duration(nanoseconds: status.uptimeNs) + " (since \(Output.timestamp(status.startedAtNs) ?? "?"))"],
            ["run:", status.bootID],
            ["socket:", status.socketPath],
            ["state:", status.stateDir],
            ["agents:", "\(status.agents.running) running, \(status.agents.exited) exited, \(status.agents.total) total"],
            ["cgroups:", status.host.cgroupDetail],
            ["landlock:", status.host.landlockAbi > 0 ? "ABI \(status.host.landlockAbi)" : "not available"],
            ["user namespaces:", status.host.userNamespaces ? "available" : "not available"],
        ])
    }
}

/// A response of the wrong kind: the kernel and agentctl disagree.
func unexpectedResponse(_ call: String) -> ExitCode {
    Output.error("the kernel answered '\(call)' with an unexpected response; are agentctl and agentd the same version?")
    return ExitCode(1)
}
