import AgentOSProtocol
import ArgumentParser
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start a program as a new agent; prints the agent's id (with --wait, how it ended).",
        discussion: """
            The program is an absolute path, a path relative to this directory, or a name looked \
            up in PATH (the agent's PATH if --env sets one). The agent starts with a clean \
            environment: PATH, HOME (its work dir), what --env gives, and AGENTOS_FD (its end of \
            the kernel socket), AGENTOS_AGENT_ID and AGENTOS_AGENT_NAME. Its stdout and stderr are \
            captured: read them with agentctl logs.

            Every agent runs confined: its own user, pid, mount, network, IPC, UTS and cgroup \
            namespaces; its own unprivileged host uid; a read-only root with the system dirs \
            read-only, a private /tmp, its work dir and only the paths --ro and --rw name; no \
            network unless --net loopback; no capabilities. The program must be inside: a system \
            dir, a --ro/--rw path or the work dir. It runs in cgroups of its own: --memory, --pids (1024 unless given) and --cpu \
            are enforced there, and a limit this host cannot enforce is an error, never ignored.

            With --wait, run blocks until the agent ends (the kernel answers then, in the same \
            call), prints how it ended as agentctl wait does and exits with its code (128 + \
            signal if killed, 1 if lost). Give it a --name: if run is interrupted, the agent runs \
            on, and the name finds it.

            Examples:
              agentctl run -- /bin/sleep 60
              agentctl run --wait -- /bin/sh -c 'exit 3'; echo $?   # 3
              agentctl run --memory 256M --pids 64 --cpu 0.5 --timeout 10m -- python3 job.py
              agentctl run --ro /srv/data --rw /srv/out --tmp-size 64M -- /usr/bin/python3 scrape.py
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

    @Option(name: .long, help: ArgumentHelp("Memory limit (e.g. 256M); past it the OOM killer ends the agent.",
                                            valueName: "size"))
    var memory: String?

    @Option(name: .long, help: ArgumentHelp("Most processes and threads at once (default 1024).", valueName: "n"))
    var pids: String?

    @Option(name: .long, help: ArgumentHelp("CPU time as a number of CPUs, e.g. 0.5.", valueName: "cpus"))
    var cpu: String?

    @Option(name: .long, help: ArgumentHelp("Wall-clock limit (e.g. 10m); then the agent is killed.", valueName: "duration"))
    var timeout: String?

    @Option(name: .long, help: ArgumentHelp("Show a host path inside, read-only (repeatable).", valueName: "path"))
    var ro: [String] = []

    @Option(name: .long, help: ArgumentHelp("Show a host path inside, writable (repeatable).", valueName: "path"))
    var rw: [String] = []

    @Option(name: .long, help: ArgumentHelp("Size of the private /tmp (default 64M).", valueName: "size"))
    var tmpSize: String?

    @Option(name: .long, help: ArgumentHelp("Network: none (default: no interface up) or loopback.", valueName: "mode"))
    var net: String = "none"

    @Option(name: .long, help: ArgumentHelp("Seccomp profile from the Policies dir (default: default).", valueName: "name"))
    var seccomp: String?

    @Option(name: .customLong("cap"),
            help: ArgumentHelp("Grant a capability at start, before the agent's first call (repeatable; quote it).",
                               valueName: "uri"))
    var capabilities: [String] = []

    @Option(name: .customLong("budget-tokens"),
            help: ArgumentHelp("Model budget: input plus output tokens (needs --name: budgets are kept by name).", valueName: "n"))
    var budgetTokens: UInt64?

    @Option(name: .customLong("budget-cost"),
            help: ArgumentHelp("Model budget in US dollars, priced by the kernel's config (needs --name).", valueName: "usd"))
    var budgetCost: Double?

    @Option(name: .customLong("budget-rpm"), help: ArgumentHelp("Model requests per minute at most (needs --name).", valueName: "n"))
    var budgetRPM: UInt32?

    @Option(name: .customLong("mcp-server"),
            help: ArgumentHelp("Run an MCP server (speaking MCP on stdin/stdout) named NAME: its tools join `agentctl tools` as mcp.NAME.TOOL while it runs.",
                               valueName: "name"))
    var mcpServer: String?

    @Flag(name: .long, help: "Block until the agent ends; print how, and exit with its code (as agentctl wait).")
    var wait = false

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
        // `agentctl run --help`: the program's arguments capture everything
        // from the first word on, flags included, unless this is asked first.
        if command.first == "--help" || command.first == "-h" { throw CleanExit.helpRequest(self) }
        guard let program = argv.first, !program.isEmpty else {
            throw ValidationError("no program given: agentctl run [OPTIONS] -- PROGRAM [ARGS...]")
        }
        _ = try environment()
        _ = try limits()
        _ = try sandbox()
    }

    /// The sandbox flags; relative paths are taken from this directory.
    func sandbox() throws -> Agentos_V1_Sandbox {
        var sandbox = Agentos_V1_Sandbox()
        let cwd = FileManager.default.currentDirectoryPath
        func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : cwd + "/" + path }
        sandbox.readOnly = ro.map(absolute)
        sandbox.readWrite = rw.map(absolute)
        if let tmpSize {
            guard let bytes = try? Units.bytes(tmpSize), bytes >= 1 << 20 else {
                throw ValidationError("--tmp-size \(tmpSize): give a size of at least 1M, e.g. 64M")
            }
            sandbox.tmpSize = UInt64(bytes)
        }
        guard net == "none" || net == "loopback" else {
            throw ValidationError("--net \(net): use none or loopback")
        }
        sandbox.network = net
        sandbox.seccomp = seccomp ?? ""
        return sandbox
    }

    /// The limit flags, each checked and named in its error.
    func limits() throws -> Agentos_V1_ResourceLimits {
        var limits = Agentos_V1_ResourceLimits()
        if let memory {
            guard let bytes = try? Units.bytes(memory), bytes >= 1 << 20 else {
                throw ValidationError("--memory \(memory): give a size of at least 1M, e.g. 256M or 1G")
            }
            limits.memoryBytes = UInt64(bytes)
        }
        if let pids {
            guard let count = UInt32(pids), count >= 1 else {
                throw ValidationError("--pids \(pids): give a whole number of processes, at least 1")
            }
            limits.pids = count
        }
        if let cpu {
            guard let cpus = Double(cpu), cpus.isFinite, cpus >= 0.01, cpus <= 1_024 else {
                throw ValidationError("--cpu \(cpu): give a number of CPUs from 0.01 up, e.g. 0.5 or 2")
            }
            limits.cpus = cpus
        }
        if let timeout {
            guard let milliseconds = try? Units.milliseconds(timeout), milliseconds >= 1 else {
                throw ValidationError("--timeout \(timeout): give a duration of at least 1ms, e.g. 30s or 10m")
            }
            limits.timeoutMs = UInt64(milliseconds)
        }
        return limits
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
        request.limits = try limits()
        request.sandbox = try sandbox()
        request.capabilities = capabilities
        if budgetTokens != nil || budgetCost != nil || budgetRPM != nil {
            if let budgetTokens { request.budget.tokens = budgetTokens }
            if let budgetCost {
                guard budgetCost > 0, budgetCost <= 1_000_000 else { throw ValidationError("--budget-cost: US dollars, more than 0") }
                request.budget.costMicrodollars = UInt64((budgetCost * 1_000_000).rounded())
            }
            if let budgetRPM { request.budget.requestsPerMinute = budgetRPM }
        }
        request.mcpServer = mcpServer ?? ""
        request.wait = wait
        if let workdir {
            request.workDir = workdir.hasPrefix("/") ? workdir : cwd + "/" + workdir
        }
        return request
    }

    func run() throws {
        let request = try request()
        let result = try connection.withKernel { try $0.call(.run(request)) }
        guard case .run(let response) = result else { throw unexpectedResponse("run") }
        let info = response.agent
        if wait {
            try reportEnd(info, json: output.json)
        } else if output.json {
            Output.json(AgentJSON(info))
        } else {
            Output.line(info.id)
        }
    }
}
