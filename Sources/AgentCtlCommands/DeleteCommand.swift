import AgentOSProtocol
import ArgumentParser

struct DeleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Stop a policy's tree (reverse start order, per shutdown spec) and forget the policy.",
        discussion: "Its checkpoints are forgotten too. The policy will not start again with the kernel.")

    @Argument(help: ArgumentHelp("The policy name (agentctl policy ls).", valueName: "policy"))
    var policy: String

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_PolicyRequest()
        request.name = policy
        guard case .deletePolicy(let summary) = try connection.withKernel({ try $0.call(.deletePolicy(request)) }) else {
            throw unexpectedResponse("delete")
        }
        if output.json {
            Output.json(PolicySummaryJSON(summary))
        } else {
            Output.line("policy \(summary.name) deleted: its tree is stopped")
        }
    }
}
