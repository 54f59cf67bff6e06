import AgentOSClient
import AgentOSProtocol
import ArgumentParser
import Foundation

/// Where the kernel is: shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Kernel socket (default: $AGENTOS_SOCKET, else the per-user default).",
                                            valueName: "path"))
    var socket: String?

    var socketPath: String {
        socket ?? DefaultPaths.socketPath(environment: ProcessInfo.processInfo.environment)
    }

    /// Connects, runs `body`, and turns client errors into a one-line
    /// message and exit code 1.
    @discardableResult
    func withKernel<T>(_ body: (KernelClient) throws -> T) throws -> T {
        do {
            let client = try KernelClient.connect(socketPath: socketPath)
            return try body(client)
        } catch let error as ClientError {
            Output.error(error.message)
            throw ExitCode(1)
        }
    }
}

/// `--json`: shared by every command that prints data.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON (one document, or one JSON object per line for streams).")
    var json = false
}

/// The agent a command acts on: shared by every per-agent subcommand.
struct AgentReference: ParsableArguments {
    @Argument(help: ArgumentHelp("The agent: its id, a unique id prefix (3+ characters), or its name.",
                                 valueName: "agent"))
    var agent: String
}
