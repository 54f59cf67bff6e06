import AgentOSProtocol
import ArgumentParser

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop an agent: SIGTERM, then SIGKILL after --timeout; waits until it has exited.")

    @OptionGroup var target: AgentReference

    @Option(name: [.short, .long], help: ArgumentHelp("Grace before SIGKILL (default: agentd's --stop-timeout, 5s).",
                                                      valueName: "duration"))
    var timeout: String?

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func graceMilliseconds() throws -> UInt32 {
        guard let timeout else { return 0 }
        do {
            let value = try Units.milliseconds(timeout)
            guard value >= 1, value <= Int64(UInt32.max) else {
                throw ValidationError("--timeout must be between 1ms and 49 days")
            }
            return UInt32(value)
        } catch let error as Units.ParseError {
            throw ValidationError("--timeout: \(error.description)")
        }
    }

    func validate() throws {
        _ = try graceMilliseconds()
    }

    func run() throws {
        var request = Agentos_V1_SignalRequest()
        request.agent = target.agent
        request.graceMs = try graceMilliseconds()
        let result = try connection.withKernel { try $0.call(.stop(request)) }
        guard case .stop(let info) = result else { throw unexpectedResponse("stop") }
        report(info, verb: "stopped", json: output.json)
    }
}

struct KillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill",
        abstract: "Kill an agent now (SIGKILL to it and its process group); waits until it has exited.")

    @OptionGroup var target: AgentReference

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_SignalRequest()
        request.agent = target.agent
        let result = try connection.withKernel { try $0.call(.kill(request)) }
        guard case .kill(let info) = result else { throw unexpectedResponse("kill") }
        report(info, verb: "killed", json: output.json)
    }
}

struct WaitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Block until an agent exits; exit with its code (128 + signal if killed, 1 if lost).")

    @OptionGroup var target: AgentReference

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_WaitRequest()
        request.agent = target.agent
        let result = try connection.withKernel { try $0.call(.wait(request)) }
        guard case .wait(let info) = result else { throw unexpectedResponse("wait") }
        try reportEnd(info, json: output.json)
    }
}

/// How an agent ended (as `report`), and the agent's status as this
/// process's exit code (128 + signal if killed, 1 if lost).
func reportEnd(_ info: AgentInfo, json: Bool) throws {
    report(info, verb: "ended", json: json)
    let status = shellStatus(info)
    if status != 0 { throw ExitCode(status) }
}

private func report(_ info: AgentInfo, verb: String, json: Bool) {
    if json {
        Output.json(AgentJSON(info))
    } else {
        Output.line("\(info.name) (\(info.id)) \(info.state.name): \(exitSummary(info))")
    }
}
