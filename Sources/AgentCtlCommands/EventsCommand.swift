import AgentOSProtocol
import ArgumentParser

struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print kernel events (spawned, exited, stopping, lost, ...); -f streams new ones.",
        discussion: """
            Without -f: the last --limit events (default 100). With -f: new events as they happen; \
            add --since SEQ to replay from an event sequence number first (--since 0 replays everything).
            """)

    @Flag(name: [.short, .long], help: "Keep printing new events until interrupted or the kernel stops.")
    var follow = false

    @Option(name: .long, help: ArgumentHelp("Only events after this sequence number.", valueName: "seq"))
    var since: UInt64?

    @Option(name: .long, help: ArgumentHelp("Without -f: at most this many (the newest).", valueName: "n"))
    var limit: UInt32 = 100

    @Option(name: .long, help: ArgumentHelp("Only this agent's events (id, prefix or name).", valueName: "agent"))
    var agent: String?

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_EventsRequest()
        request.follow = follow
        request.sinceSeq = since ?? 0
        request.fromStart = since != nil
        request.limit = limit
        request.agent = agent ?? ""
        let json = output.json
        try connection.withKernel { client in
            try client.stream(.events(request)) { item in
                guard case .event(let event) = item else { return true }
                if json {
                    Output.json(EventJSON(event), pretty: false)
                } else {
                    let agent = event.agentID.isEmpty ? "-" : event.agentID
                    Output.line("\(event.seq)  \(Output.timestamp(event.timeNs) ?? "")  \(event.kind)  \(agent)  \(event.message)")
                }
                return true
            }
        }
    }
}
