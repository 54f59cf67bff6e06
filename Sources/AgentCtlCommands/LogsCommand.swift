import AgentOSProtocol
import ArgumentParser
import Foundation

struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print an agent's captured stdout and stderr (-f: keep following).",
        discussion: "The agent's stdout goes to stdout and its stderr to stderr; notes from the kernel (log rotation, SIGKILL after a grace period) go to stderr.")

    @OptionGroup var target: AgentReference

    @Flag(name: [.short, .long], help: "Keep printing new output until the agent exits.")
    var follow = false

    @Option(name: .long, help: ArgumentHelp("Only the last N chunks (as the agent wrote them).", valueName: "n"))
    var tail: UInt32 = 0

    @Flag(name: [.short, .long], help: "Prefix each chunk with its time.")
    var timestamps = false

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_LogsRequest()
        request.agent = target.agent
        request.follow = follow
        request.tail = tail
        let json = output.json
        let timestamps = timestamps
        try connection.withKernel { client in
            try client.stream(.logs(request)) { item in
                guard case .log(let chunk) = item else { return true }
                if json {
                    Output.json(LogJSON(chunk), pretty: false)
                    return true
                }
                let handle = chunk.stream == .stdout ? FileHandle.standardOutput : FileHandle.standardError
                if timestamps { handle.write(Data(((Output.timestamp(chunk.timeNs) ?? "") + " ").utf8)) }
                handle.write(chunk.data)
                return true
            }
        }
    }
}
