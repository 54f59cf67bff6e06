import AgentOSProtocol
import ArgumentParser

struct TreeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree",
        abstract: "Show live supervision trees: supervisors, children, state, pid, restarts, uptime.",
        discussion: """
            Children are listed in start order under their supervisor. STATE is starting, \
            running, stopping, restarting (waiting for a restart or its back-off) or stopped \
            (a transient child that ended normally, or one terminated by hand). RESTARTS counts \
            a supervisor's restarts within its current period (compare with its intensity).
            """)

    @Argument(help: ArgumentHelp("One policy; default: every applied policy.", valueName: "policy"))
    var policy: String?

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_TreeRequest()
        request.policy = policy ?? ""
        guard case .tree(let response) = try connection.withKernel({ try $0.call(.tree(request)) }) else {
            throw unexpectedResponse("tree")
        }
        if output.json {
            Output.json(response.trees.map(TreeNodeJSON.init))
            return
        }
        if response.trees.isEmpty { Output.line("no policy is applied (agentctl apply FILE)") }
        for (index, tree) in response.trees.enumerated() {
            if index > 0 { Output.line("") }
            TreePrinter.print(tree)
        }
    }
}
