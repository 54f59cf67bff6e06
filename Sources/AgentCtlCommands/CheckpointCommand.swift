import AgentOSProtocol
import ArgumentParser
import Foundation

struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "The checkpoints supervised agents saved (handed back to them when restarted).",
        subcommands: [CheckpointListCommand.self, CheckpointShowCommand.self],
        defaultSubcommand: CheckpointListCommand.self)
}

struct CheckpointListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List saved checkpoints.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        guard case .checkpoints(let list) = try connection.withKernel({
            try $0.call(.checkpoints(Agentos_V1_CheckpointRequest()))
        }) else { throw unexpectedResponse("checkpoint ls") }
        if output.json {
            Output.json(list.checkpoints.map { CheckpointJSON($0, withData: false) })
            return
        }
        Output.table(["CHILD", "SAVED", "SIZE", "AGENT"], list.checkpoints.map {
            [$0.path, Output.timestamp($0.savedAtNs) ?? "", Output.bytes($0.size), String($0.agentID.prefix(12))]
        })
    }
}

struct CheckpointShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print a child's last checkpoint (raw bytes; --json: base64).")

    @OptionGroup var child: ChildPath
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_CheckpointRequest()
        request.path = child.path
        guard case .checkpoints(let list) = try connection.withKernel({ try $0.call(.checkpoints(request)) }),
              let checkpoint = list.checkpoints.first else { throw unexpectedResponse("checkpoint show") }
        if output.json {
            Output.json(CheckpointJSON(checkpoint, withData: true))
        } else {
            FileHandle.standardOutput.write(checkpoint.data)
        }
    }
}
