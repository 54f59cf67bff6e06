import AgentOSPolicy
import AgentOSProtocol
import ArgumentParser
import Foundation

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Start the supervision tree a policy file declares (idempotent).",
        discussion: """
            The file is validated here first (every problem as file:line:col: field: message), \
            then sent to agentd, which stores it and starts the tree: children one at a time in \
            start order, each started before the next. A child that cannot start stops the ones \
            already started and the apply fails (failed_to_start_child), leaving nothing running.

            Applying the same file again changes nothing if it did not change; an edited file \
            restarts its tree with the new spec (the diff is shown). A policy name applied from \
            another file is an error: delete it first.

            Examples:
              agentctl apply Policies/examples/team.yaml
              agentctl apply --dry-run team.yaml     # validate and show the diff only
            """)

    @Argument(help: ArgumentHelp("The policy file (YAML).", valueName: "file"))
    var file: String

    @Flag(name: .long, help: "Validate and show what would change; change nothing.")
    var dryRun = false

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let source: String
        do {
            source = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            Output.error("cannot read \(file): \((error as NSError).localizedDescription)")
            throw ExitCode(1)
        }
        let problems = PolicyParser().problems(text: source, file: file)
        guard problems.isEmpty else {
            for problem in problems { Output.error(problem.description) }
            throw ExitCode(1)
        }
        var request = Agentos_V1_ApplyRequest()
        request.source = source
        request.file = URL(fileURLWithPath: file).standardizedFileURL.path
        request.dryRun = dryRun
        guard case .apply(let response) = try connection.withKernel({ try $0.call(.apply(request)) }) else {
            throw unexpectedResponse("apply")
        }
        if output.json {
            Output.json(ApplyJSON(policy: response.policy, created: response.created, dry_run: dryRun,
                                  started: response.started, stopped: response.stopped,
                                  restarted: response.restarted, unchanged: response.unchanged,
                                  tree: response.hasTree ? TreeNodeJSON(response.tree) : nil))
            return
        }
        let verb = dryRun ? "would be" : "is"
        if response.created {
            let count = response.started.count
            Output.line("policy \(response.policy) \(dryRun ? "would be applied" : "applied"): "
                + "\(count) \(count == 1 ? "child" : "children") \(dryRun ? "to start" : "started")")
        } else if response.started.isEmpty && response.stopped.isEmpty && response.restarted.isEmpty {
            Output.line("policy \(response.policy) \(verb) unchanged")
        } else {
            Output.line("policy \(response.policy) \(dryRun ? "would be re-applied" : "re-applied"):")
            for path in response.restarted { Output.line("  ~ \(path) (spec changed)") }
            for path in response.started { Output.line("  + \(path)") }
            for path in response.stopped { Output.line("  - \(path)") }
        }
        if response.hasTree, !dryRun { TreePrinter.print(response.tree) }
    }
}
