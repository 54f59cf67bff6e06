import AgentOSProtocol
import ArgumentParser

struct PsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List running agents (-a: also those that ended, with how).")

    @Flag(name: [.short, .long], help: "Include agents that are no longer running.")
    var all = false

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_ListRequest()
        request.all = all
        let result = try connection.withKernel { try $0.call(.list(request)) }
        guard case .list(let list) = result else { throw unexpectedResponse("list") }
        if output.json {
            Output.json(list.agents.map { AgentJSON($0) })
            return
        }
        let now = Output.now()
        let rows = list.agents.map { agent -> [String] in
            let time: String
            if agent.state.isLive {
                time = "up " + Output.duration(nanoseconds: now - agent.startedAtNs)
            } else if agent.endedAtNs > 0 {
                time = Output.duration(nanoseconds: now - agent.endedAtNs) + " ago"
            } else {
                time = ""
            }
            return [agent.id, agent.name, agent.state.name, agent.pid > 0 ? String(agent.pid) : "-", time,
                    exitSummary(agent), agent.argv.joined(separator: " ")]
        }
        Output.table(["ID", "NAME", "STATE", "PID", "TIME", "EXIT", "COMMAND"], rows)
    }
}
