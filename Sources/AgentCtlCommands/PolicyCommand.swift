import ArgumentParser

/// `agentctl policy ...`: policy files, the YAML that declares a supervision
/// tree of agents (Policies/README.md). Subcommands that need the kernel
/// (applying, listing) join `validate` here.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Work with policy files: supervision trees of agents declared in YAML.",
        discussion: """
            A policy file declares one supervision tree: supervisors (one_for_one, one_for_all, \
            rest_for_one, dynamic) and the agents they restart, each confined with the same \
            settings agentctl run takes. Field reference, defaults and examples: Policies/README.md.

            Examples:
              agentctl policy validate Policies/examples/demo.yaml
              agentctl policy validate --json team.yaml pool.yaml
              agentctl policy ls
            """,
        subcommands: [PolicyValidateCommand.self, PolicyListCommand.self]
    )
}
