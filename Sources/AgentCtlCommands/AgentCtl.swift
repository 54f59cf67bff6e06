import AgentOSProtocol
import ArgumentParser
import CAgentOSShim
import Foundation

/// `agentctl`: the operator's command line for a running agentd.
public struct AgentCtl: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "agentctl",
        abstract: "Drive a running Agent OS kernel (agentd) over its socket.",
        discussion: """
            Every command talks to agentd over its Unix socket: --socket, else $AGENTOS_SOCKET, \
            else /run/agentos/kernel.sock as root or $XDG_RUNTIME_DIR/agentos/kernel.sock. \
            Commands that print data take --json (one JSON document; JSON lines for streams).

            A first session:
              agentctl run --name hello -- /bin/sh -c 'echo hello; sleep 30'
              agentctl ps
              agentctl logs hello
              agentctl stop hello
              agentctl ps -a
            """,
        version: AgentOSVersion.release,
        subcommands: [
            StatusCommand.self, RunCommand.self, PsCommand.self, InspectCommand.self, StopCommand.self,
            KillCommand.self, WaitCommand.self, LogsCommand.self, EventsCommand.self, PauseCommand.self,
            ResumeCommand.self, StatsCommand.self, PolicyCommand.self, ApplyCommand.self, TreeCommand.self,
            DeleteCommand.self, RestartChildCommand.self, TerminateChildCommand.self, StartChildCommand.self,
            DeleteChildCommand.self, SpawnCommand.self, CheckpointCommand.self, CapabilityCommand.self,
            AuditCommand.self, ToolsCommand.self, PendingCommand.self, ApproveCommand.self, DenyCommand.self,
            MemoryCommand.self, SendCommand.self, RequestCommand.self, MailboxCommand.self, PublishCommand.self,
            SubscribeCommand.self, ModelsCommand.self, CompleteCommand.self, SubmitCommand.self, QueueCommand.self, PrioritizeCommand.self,
            CancelCommand.self,
        ]
    )

    public init() {}

    /// Unblocks termination signals first (a parent may have spawned us
    /// with them blocked), then parses and runs the subcommand.
    public static func main() {
        aos_unblock_termination_signals()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            // --help, --version and the exit codes commands choose go the
            // usual way; a usage mistake is one line, not a screen.
            let code = exitCode(for: error)
            if code == .success || error is ExitCode {
                exit(withError: error)
            }
            let text = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("agentctl: \(text) (see --help)\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }
}
