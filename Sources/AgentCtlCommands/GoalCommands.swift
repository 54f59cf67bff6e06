import AgentOSProtocol
import ArgumentParser
import Foundation

/// `agentctl submit`: a goal into the scheduler's queue.
struct SubmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Queue a goal; the scheduler starts an agent for it when the goal concurrency allows. Prints its id.",
        discussion: """
            A goal goes to a dynamic supervisor: --template names one (POLICY/PATH), --policy \
            takes the policy's first. When its turn comes an agent is started from the \
            supervisor's template with --goal ID added to its arguments; the agent reads the \
            goal and writes its result (the built-in agentos-llm-agent does this). Or it goes \
            to a running agent (--agent): into its mailbox as a message of content type \
            application/vnd.agentos.goal+json, {"goal": ID, "text": ..., "priority": N}. Goals are \
            kept in the state store: one that was running when the kernel stopped is queued \
            again; one whose agent ends without a result is retried up to 3 times.

            Order: higher --priority first; every 10 s of waiting adds a point (no goal \
            starves); at equal priority the policy served least goes first.

            Examples:
              agentctl submit "Summarise /srv/data/report.txt" --template research/thinkers
              agentctl submit "Tidy the notes" --policy research --priority 5
              agentctl submit "Check the build" --agent research/reviewer
              agentctl submit "..." --policy research --wait     # until it ends; prints the result
            """)

    @Argument(help: ArgumentHelp("What the agent should achieve.", valueName: "goal"))
    var text: String
    @Option(name: .long, help: ArgumentHelp("The dynamic supervisor to start its agent under.", valueName: "policy/path"))
    var template: String?
    @Option(name: .long, help: ArgumentHelp("A policy: its first dynamic supervisor.", valueName: "name"))
    var policy: String?
    @Option(name: .long, help: ArgumentHelp("A running agent (id, name or policy path): the goal goes to its mailbox.",
                                            valueName: "agent"))
    var agent: String?
    @Option(name: .long, help: ArgumentHelp("-1000 to 1000; higher goes first (default 0).", valueName: "n"))
    var priority: Int32 = 0
    @Flag(name: .long, help: "Wait until the goal ends; print its result (exit 1 if it failed or was cancelled).")
    var wait = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if [template, policy, agent].compactMap({ $0 }).count != 1 {
            throw ValidationError("give one of --template, --policy and --agent")
        }
        if abs(priority) > 1_000 { throw ValidationError("--priority must be -1000 to 1000") }
    }

    func run() throws {
        var request = Agentos_V1_GoalSubmitRequest()
        request.text = text
        request.template = template ?? ""
        request.policy = policy ?? ""
        request.agent = agent ?? ""
        request.priority = priority
        guard case .goalSubmit(var goal) = try connection.withKernel({ try $0.call(.goalSubmit(request)) }) else {
            throw unexpectedResponse("goal_submit")
        }
        if wait {
            while !["done", "failed", "cancelled"].contains(goal.state) {
                Thread.sleep(forTimeInterval: 0.2)
                var list = Agentos_V1_GoalListRequest()
                list.id = goal.id
                guard case .goalList(let goals) = try connection.withKernel({ try $0.call(.goalList(list)) }) else {
                    throw unexpectedResponse("goal_list")
                }
                if let current = goals.goals.first { goal = current }
            }
        }
        if output.json {
            Output.json(GoalJSON(goal))
        } else if wait {
            Output.line(goal.result)
        } else {
            Output.line(goal.id)
        }
        if wait && goal.state != "done" { throw ExitCode(1) }
    }
}

/// `agentctl queue`: the goals.
struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Goals waiting and running (with --all, ended ones too, with their results).",
        discussion: """
            PRIO is the priority given; NOW adds what waiting has earned (aging).

            Examples:
              agentctl queue
              agentctl queue --all --json
            """)

    @Flag(name: .long, help: "Include ended goals (done, failed, cancelled).")
    var all = false
    @Option(name: .long, help: ArgumentHelp("At most this many (newest).", valueName: "n"))
    var limit: UInt32 = 100
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_GoalListRequest()
        request.all = all
        request.limit = limit
        guard case .goalList(let list) = try connection.withKernel({ try $0.call(.goalList(request)) }) else {
            throw unexpectedResponse("goal_list")
        }
        if output.json {
            Output.json(list.goals.map(GoalJSON.init))
            return
        }
        Output.table(["GOAL", "STATE", "PRIO", "NOW", "TRIES", "TARGET", "AGENT", "TEXT / RESULT"], list.goals.map { goal in
            let shown = goal.result.isEmpty ? goal.text : goal.result
            let line = shown.replacingOccurrences(of: "\n", with: " ")
            return [goal.id, goal.state, String(goal.priority), String(goal.effectivePriority), String(goal.attempts),
                    goal.target, goal.agentID.isEmpty ? "-" : goal.agentID, line.count > 60 ? String(line.prefix(57)) + "..." : line]
        })
    }
}

/// `agentctl prioritize`: a waiting goal's priority.
struct PrioritizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prioritize",
        abstract: "Change a waiting goal's priority (its wait so far still counts).",
        discussion: "Example:\n  agentctl prioritize 4f2a9c 50")

    @Argument(help: ArgumentHelp("A goal id or unique prefix.", valueName: "goal"))
    var goal: String
    @Argument(help: ArgumentHelp("-1000 to 1000.", valueName: "priority"))
    var priority: Int32
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_GoalPrioritizeRequest()
        request.id = goal
        request.priority = priority
        guard case .goalPrioritize(let info) = try connection.withKernel({ try $0.call(.goalPrioritize(request)) }) else {
            throw unexpectedResponse("goal_prioritize")
        }
        if output.json { Output.json(GoalJSON(info)) } else { Output.line("\(info.id) priority \(info.priority)") }
    }
}

/// `agentctl cancel`: a goal dropped (waiting) or its agent stopped (running).
struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a goal: a waiting one leaves the queue, a running one's agent is stopped.",
        discussion: "Example:\n  agentctl cancel 4f2a9c --reason 'no longer needed'")

    @Argument(help: ArgumentHelp("A goal id or unique prefix.", valueName: "goal"))
    var goal: String
    @Option(name: .long, help: ArgumentHelp("Recorded with it.", valueName: "text"))
    var reason: String = ""
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_GoalRequest()
        request.id = goal
        request.reason = reason
        guard case .goalCancel(let info) = try connection.withKernel({ try $0.call(.goalCancel(request)) }) else {
            throw unexpectedResponse("goal_cancel")
        }
        if output.json { Output.json(GoalJSON(info)) } else { Output.line("\(info.id) cancelled") }
    }
}

struct GoalJSON: Encodable {
    let id: String
    let text: String
    let target: String
    let policy: String
    let priority: Int32
    let effective_priority: Int32
    let state: String
    let result: String
    let agent: String?
    let attempts: UInt32
    let submitted_at: String?
    let started_at: String?
    let ended_at: String?

    init(_ goal: Agentos_V1_GoalInfo) {
        id = goal.id
        text = goal.text
        target = goal.target
        policy = goal.policy
        priority = goal.priority
        effective_priority = goal.effectivePriority
        state = goal.state
        result = goal.result
        agent = goal.agentID.isEmpty ? nil : goal.agentID
        attempts = goal.attempts
        submitted_at = Output.timestamp(goal.submittedAtNs)
        started_at = goal.startedAtNs == 0 ? nil : Output.timestamp(goal.startedAtNs)
        ended_at = goal.endedAtNs == 0 ? nil : Output.timestamp(goal.endedAtNs)
    }
}
