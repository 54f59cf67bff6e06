import AgentOSProtocol
import ArgumentParser

/// The child a supervision command acts on.
struct ChildPath: ParsableArguments {
    @Argument(help: ArgumentHelp("The child: POLICY/ID[/ID...], e.g. team/workers/w1 (see agentctl tree).",
                                 valueName: "child"))
    var path: String
}

struct RestartChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Start a stopped child again (OTP restart_child).",
        discussion: "Only a stopped child: a running one is an error (running), so is one waiting for its restart "
            + "(restarting). Manual restarts do not count against the supervisor's intensity.")

    @OptionGroup var child: ChildPath
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws { try childCall(.restartChild, child.path, verb: "restarted", connection, output) }
}

struct TerminateChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "terminate",
        abstract: "Stop a child per its shutdown spec and keep it stopped (OTP terminate_child).",
        discussion: "Idempotent. The spec stays (agentctl restart starts it again) unless the child is temporary. "
            + "Its whole cgroup goes: no descendant survives.")

    @OptionGroup var child: ChildPath
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws { try childCall(.terminateChild, child.path, verb: "terminated", connection, output) }
}

struct StartChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Add a child from the policy's spec and start it (OTP start_child).",
        discussion: "For a child the policy declares that is no longer in the tree (a temporary child that ended, "
            + "or one removed with delete-child). Errors: already_present (stopped: use restart), already_started.")

    @OptionGroup var child: ChildPath
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws { try childCall(.startChild, child.path, verb: "started", connection, output) }
}

struct DeleteChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete-child",
        abstract: "Remove a stopped child's spec from its supervisor (OTP delete_child).")

    @OptionGroup var child: ChildPath
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws { try childCall(.deleteChild, child.path, verb: "deleted", connection, output) }
}

private enum ChildCall { case restartChild, terminateChild, startChild, deleteChild }

private func childCall(_ call: ChildCall, _ path: String, verb: String, _ connection: ConnectionOptions,
                       _ output: OutputOptions) throws {
    var request = Agentos_V1_ChildRequest()
    request.path = path
    let result = try connection.withKernel { client -> KernelResponse.OneOf_Result? in
        switch call {
        case .restartChild: return try client.call(.restartChild(request))
        case .terminateChild: return try client.call(.terminateChild(request))
        case .startChild: return try client.call(.startChild(request))
        case .deleteChild: return try client.call(.deleteChild(request))
        }
    }
    let node: Agentos_V1_TreeNode
    switch result {
    case .restartChild(let value), .terminateChild(let value), .startChild(let value), .deleteChild(let value):
        node = value
    default:
        throw unexpectedResponse(verb)
    }
    if output.json {
        Output.json(TreeNodeJSON(node))
    } else {
        let pid = node.pid != 0 && node.state == "running" ? ", pid \(node.pid)" : ""
        Output.line("\(node.path.isEmpty ? path : node.path) \(verb): \(node.state)\(pid)")
    }
}

struct SpawnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spawn",
        abstract: "Start a new child on a dynamic supervisor from its template (OTP start_child).",
        discussion: """
            The arguments are appended to the template's; a restart of the child uses them again. \
            Fails with max_children when the pool is full.

            Example:
              agentctl spawn pool/workers --arg https://example.org --arg depth=2
            """)

    @Argument(help: ArgumentHelp("The dynamic supervisor: POLICY[/ID...].", valueName: "supervisor"))
    var supervisor: String

    @Option(name: .customLong("arg"), help: ArgumentHelp("An argument for the new child (repeatable).", valueName: "value"))
    var arguments: [String] = []

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_SpawnChildRequest()
        request.supervisor = supervisor
        request.args = arguments
        guard case .spawnChild(let node) = try connection.withKernel({ try $0.call(.spawnChild(request)) }) else {
            throw unexpectedResponse("spawn")
        }
        if output.json {
            Output.json(TreeNodeJSON(node))
        } else {
            Output.line("\(node.path) \(node.state)" + (node.pid != 0 ? ", pid \(node.pid)" : ""))
        }
    }
}
