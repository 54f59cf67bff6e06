import AgentOSProtocol
import ArgumentParser

struct PauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Freeze every process of an agent (cgroup freezer): no CPU used, state kept.")

    @OptionGroup var target: AgentReference
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try setFrozen(true, target: target, connection: connection, output: output)
    }
}

struct ResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Thaw an agent paused with agentctl pause.")

    @OptionGroup var target: AgentReference
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try setFrozen(false, target: target, connection: connection, output: output)
    }
}

/// pause and resume: the same call shape, the same report.
private func setFrozen(_ frozen: Bool, target: AgentReference, connection: ConnectionOptions,
                       output: OutputOptions) throws {
    var request = Agentos_V1_AgentRequest()
    request.agent = target.agent
    let result = try connection.withKernel { try $0.call(frozen ? .pause(request) : .resume(request)) }
    let info: AgentInfo
    switch result {
    case .pause(let agent) where frozen: info = agent
    case .resume(let agent) where !frozen: info = agent
    default: throw unexpectedResponse(frozen ? "pause" : "resume")
    }
    if output.json {
        Output.json(AgentJSON(info))
    } else {
        Output.line("\(info.name) (\(info.id)) \(frozen ? "paused" : "running")")
    }
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Memory, processes and CPU time of live agents (from their cgroups), and their model spending against budgets.",
        discussion: """
            Below each agent that has called a model: the accounts its calls are charged to (the \
            agent itself, its supervisors, its policy, its spawner), with tokens, cost and calls \
            against each account's budget where one is set.
            """)

    @Argument(help: ArgumentHelp("One agent (id, prefix or name); default: every live agent.", valueName: "agent"))
    var agent: String?

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_AgentRequest()
        request.agent = agent ?? ""
        let result = try connection.withKernel { try $0.call(.stats(request)) }
        guard case .stats(let stats) = result else { throw unexpectedResponse("stats") }
        if output.json {
            Output.json(stats.agents.map(StatsJSON.init))
            return
        }
        let rows = stats.agents.map { agent -> [String] in
            let memory = agent.hasMemoryBytes ? Output.bytes(agent.memoryBytes) : "-"
            let limit = agent.limits.hasMemoryBytes ? " / " + Output.bytes(agent.limits.memoryBytes) : ""
            let pids = agent.hasPids ? String(agent.pids) : "-"
            let pidLimit = agent.limits.hasPids ? " / \(agent.limits.pids)" : ""
            let cpu = agent.hasCpuNs ? String(format: "%.2fs", Double(agent.cpuNs) / 1e9) : "-"
            return [agent.id, agent.name, agent.state.name, memory + limit, pids + pidLimit, cpu,
                    agent.oomKills > 0 ? String(agent.oomKills) : ""]
        }
        Output.table(["ID", "NAME", "STATE", "MEMORY", "PIDS", "CPU", "OOM"], rows)
        for agent in stats.agents where agent.modelAccounts.contains(where: { $0.calls > 0 || $0.budget.hasTokens
                                                                              || $0.budget.hasCostMicrodollars || $0.budget.hasRequestsPerMinute }) {
            Output.line("")
            Output.line("\(agent.name) model spending:")
            for account in agent.modelAccounts { Output.line("  " + ModelAccountJSON.text(account)) }
        }
    }
}
