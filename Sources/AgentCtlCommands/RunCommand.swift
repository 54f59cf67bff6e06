import AgentOSProtocol
import ArgumentParser
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start a program as a new agent; prints the agent's id.",
        discussion: """
            The program is an absolute path, a path relative to this directory, or a name looked \
            up in PATH (the agent's PATH if --env sets one). The agent starts with a clean \
            environment: PATH, HOME (its work dir), what --env gives, and AGENTOS_FD (its end of \
            the kernel socket), AGENTOS_AGENT_ID and AGENTOS_AGENT_NAME. Its stdout and stderr are \
            captured: read them with agentctl logs.

            Examples:
              agentctl run -- /bin/sleep 60
              agentctl run --name scraper --env MODE=fast -- python3 scrape.py
            """)

    @Option(name: .long, help: ArgumentHelp("A name for the agent (unique among live agents).", valueName: "name"))
    var name: String?

    @Option(name: [.short, .long],
            help: ArgumentHelp("Set an environment variable (KEY=VALUE, or KEY to pass this shell's value).",
                               valueName: "key=value"))
    var env: [String] = []

    @Option(name: .long, help: ArgumentHelp("Working directory (default: the agent's own dir in the state dir).",
                                            valueName: "dir"))
    var workdir: String?

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The program and its arguments, after --.",
                                                                  valueName: "program"))
    var command: [String] = []

    /// The program and arguments, without the `--` that separates them.
    var argv: [String] {
        command.first == "--" ? Array(command.dropFirst()) : command
    }

    func validate() throws {
        guard let program = argv.first, !program.isEmpty else {
            throw ValidationError("no program given: agentctl run [OPTIONS] -- PROGRAM [ARGS...]")
        }
        _ = try environment()
    }

    func environment() throws -> [String: String] {
        var result: [String: String] = [:]
        for entry in env {
            if let equals = entry.firstIndex(of: "=") {
                let key = String(entry[..<equals])
                guard !key.isEmpty else { throw ValidationError("invalid --env '\(entry)': the name is empty") }
                result[key] = String(entry[entry.index(after: equals)...])
            } else {
                guard let value = ProcessInfo.processInfo.environment[entry] else {
                    throw ValidationError("--env \(entry): no such variable in this shell; use \(entry)=VALUE")
                }
                result[entry] = value
            }
        }
        return result
    }

    func request() throws -> Agentos_V1_RunRequest {
        var request = Agentos_V1_RunRequest()
        var argv = self.argv
        let cwd = FileManager.default.currentDirectoryPath
        if let program = argv.first, program.contains("/"), !program.hasPrefix("/") {
            argv[0] = URL(fileURLWithPath: program, relativeTo: URL(fileURLWithPath: cwd + "/")).standardizedFileURL.path
        }
        request.argv = argv
        request.name = name ?? ""
        request.env = try environment()
        if let workdir {
            request.workDir = workdir.hasPrefix("/") ? workdir : cwd + "/" + workdir
        }
        return request
    }

    func run() throws {
        let request = try request()
        let result = try connection.withKernel { try $0.call(.run(request)) }
        guard case .run(let response) = result else { throw unexpectedResponse("run") }
        if output.json {
            Output.json(AgentJSON(response.agent))
        } else {
            Output.line(response.agent.id)
        }
    }
}
