import AgentOSKernel
import AgentOSPolicy
import AgentOSProtocol
import CAgentOSShim
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

/// `agentd`: the Agent OS kernel, in the foreground.
public struct AgentdCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "agentd",
        abstract: "The Agent OS kernel: runs agents as child processes and serves agentctl.",
        discussion: """
            agentd runs in the foreground; SIGTERM or SIGINT stop it cleanly: every agent gets \
            SIGTERM, then SIGKILL after --shutdown-timeout, and the state is closed. \
            Operators talk to it with agentctl over the socket (mode 0660: root, agentd's own \
            user and --admin-group may use admin calls).

            Defaults: socket /run/agentos/kernel.sock as root, else \
            $XDG_RUNTIME_DIR/agentos/kernel.sock; state /var/lib/agentos as root, else \
            ~/.local/state/agentos. AGENTOS_SOCKET and AGENTOS_STATE_DIR override them.

            Example:
              agentd --state-dir /tmp/aos --socket /tmp/aos/kernel.sock
            """,
        version: AgentOSVersion.release
    )

    @Option(name: .long, help: ArgumentHelp("State directory (database, agent logs, locks).", valueName: "dir"))
    var stateDir: String?

    @Option(name: .long, help: ArgumentHelp("Path of the kernel socket.", valueName: "path"))
    var socket: String?

    @Option(name: .long, help: ArgumentHelp("Group whose members may use admin calls; the socket is given this group.",
                                            valueName: "name"))
    var adminGroup: String?

    @Option(name: .long, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String = "info"

    @Option(name: .long, help: ArgumentHelp("Largest frame accepted from a client.", valueName: "size"))
    var maxFrameSize: String = "16M"

    @Option(name: .long, help: ArgumentHelp("Close connections that send no hello within this time.", valueName: "duration"))
    var handshakeTimeout: String = "5s"

    @Option(name: .long, help: ArgumentHelp("Default grace between SIGTERM and SIGKILL for agentctl stop.",
                                            valueName: "duration"))
    var stopTimeout: String = "5s"

    @Option(name: .long, help: ArgumentHelp("Grace between SIGTERM and SIGKILL for agents when agentd stops.",
                                            valueName: "duration"))
    var shutdownTimeout: String = "5s"

    @Option(name: .long, help: ArgumentHelp("Size at which an agent's log rotates (one older file is kept).",
                                            valueName: "size"))
    var logMaxSize: String = "16M"

    @Option(name: .long, help: ArgumentHelp("The agentos-sandbox helper (default: next to agentd).", valueName: "path"))
    var sandboxHelper: String?

    @Option(name: .long, help: ArgumentHelp("The agentos-file-tool helper the file.* tools run (default: next to agentd).",
                                            valueName: "path"))
    var fileTool: String?

    @Option(name: .long, help: ArgumentHelp("How long a tool call under an approve=operator grant waits for agentctl approve or deny; then it is denied.",
                                            valueName: "duration"))
    var approvalTimeout: String = "5m"

    @Option(name: .long, help: ArgumentHelp("Messages one mailbox holds before senders are refused.", valueName: "n"))
    var mailboxLimit: Int = 1_000

    @Option(name: .long, help: ArgumentHelp("Bytes of keys and values each memory namespace may hold (an agent's long-term, its working, a shared one); a put past it is refused with resource_exhausted. 0: no quota.",
                                            valueName: "size"))
    var memoryQuota: String = "64M"

    @Option(name: .long, help: ArgumentHelp("The Policies dir (seccomp/NAME.json profiles; default: found next to agentd, or $AGENTOS_POLICIES).",
                                            valueName: "dir"))
    var policies: String?

    @Option(name: .long, help: ArgumentHelp("Host uids given to agents, one each (never 0).", valueName: "first-last"))
    var agentUids: String = "200000-265535"

    @Option(name: .long, help: ArgumentHelp("Sandboxes kept started and waiting for their agent: a spawn then skips the helper's exec, the namespaces and the base mounts. Each holds an agent uid, a dir and cgroups; 0 starts every sandbox on the spawn path.",
                                            valueName: "n"))
    var sandboxPool: Int = 4

    @Flag(name: .customLong("cgroup-favordynmods"),
          help: ArgumentHelp("Remount the host's cgroup2 hierarchy with favordynmods: agent starts and restarts skip an RCU grace period (about 10 ms after idle), every fork and exit on the host pays a little. Host-wide; it stays after agentd stops."))
    var cgroupFavorDynmods = false

    @Option(name: .long, help: ArgumentHelp("agentd's config file (YAML): the model providers, their endpoints, keys' names, limits and prices (Policies/README.md#kernel-config). Default: /etc/agentos/agentd.yaml if it exists; without one, anthropic, openai and ollama at their usual endpoints.",
                                            valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("A file of NAME=value lines holding the providers' API keys, read before the environment; mode 0600 and owned by agentd's user, or agentd refuses to start. Overrides models.secrets_file of --config.",
                                            valueName: "file"))
    var secrets: String?

    @Option(name: .long, help: ArgumentHelp("Goals (agentctl submit) running at once; the rest wait in the queue, highest priority first, a waiting goal gaining a point of priority every 10 s.",
                                            valueName: "n"))
    var goalConcurrency: Int = 4

    public init() {}

    public func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("invalid --log-level '\(logLevel)': use trace, debug, info, notice, warning or error")
        }
        _ = try makeConfiguration()
    }

    func makeConfiguration() throws -> KernelConfiguration {
        let environment = ProcessInfo.processInfo.environment
        func parsed<T>(_ option: String, _ parse: () throws(Units.ParseError) -> T) throws -> T {
            do {
                return try parse()
            } catch {
                throw ValidationError("--\(option): \(error.description)")
            }
        }
        let frame = try parsed("max-frame-size") { () throws(Units.ParseError) in try Units.bytes(maxFrameSize) }
        guard frame >= 1_024, frame <= 1 << 30 else {
            throw ValidationError("--max-frame-size must be between 1K and 1G")
        }
        let logMax = try parsed("log-max-size") { () throws(Units.ParseError) in try Units.bytes(logMaxSize) }
        guard logMax >= 4_096 else { throw ValidationError("--log-max-size must be at least 4K") }
        guard (0...64).contains(sandboxPool) else { throw ValidationError("--sandbox-pool \(sandboxPool): give 0 to 64") }
        let bounds = agentUids.split(separator: "-").compactMap { UInt32($0) }
        guard bounds.count == 2, bounds[0] > 0, bounds[0] <= bounds[1] else {
            throw ValidationError("--agent-uids \(agentUids): give a range like 200000-265535 (never 0)")
        }
        let ownDirectory = ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .map { ($0 as NSString).deletingLastPathComponent }) ?? "."
        // Bound into tool sandboxes with no symlink followed: its real path.
        let fileToolPath = Self.absolute(fileTool ?? ownDirectory + "/agentos-file-tool")
        guard let fileToolReal = realpath(fileToolPath, nil) else {
            throw ValidationError("--file-tool \(fileToolPath): \(String(cString: strerror(errno)))")
        }
        defer { free(fileToolReal) }
        let approval = try parsed("approval-timeout") { () throws(Units.ParseError) in try Units.milliseconds(approvalTimeout) }
        guard approval >= 1_000 else { throw ValidationError("--approval-timeout must be at least 1s") }
        guard (1...1_000_000).contains(mailboxLimit) else { throw ValidationError("--mailbox-limit \(mailboxLimit): give 1 to 1000000") }
        let quota = try parsed("memory-quota") { () throws(Units.ParseError) in try Units.bytes(memoryQuota) }
        var file = KernelConfigFile()
        let configPath = config ?? (FileManager.default.fileExists(atPath: Self.defaultConfig) ? Self.defaultConfig : nil)
        if let configPath {
            do {
                file = try KernelConfigParser.parse(contentsOf: Self.absolute(configPath))
            } catch {
                throw ValidationError("--config:\n\(error.description)")
            }
        }
        var configuration = KernelConfiguration(
            stateDirectory: Self.absolute(stateDir ?? DefaultPaths.stateDirectory(environment: environment)),
            socketPath: Self.absolute(socket ?? DefaultPaths.socketPath(environment: environment)),
            adminGroup: adminGroup,
            maximumFrameSize: frame,
            handshakeTimeoutMilliseconds: try parsed("handshake-timeout") { () throws(Units.ParseError) in
                try Units.milliseconds(handshakeTimeout)
            },
            defaultStopGraceMilliseconds: try parsed("stop-timeout") { () throws(Units.ParseError) in
                try Units.milliseconds(stopTimeout)
            },
            shutdownGraceMilliseconds: try parsed("shutdown-timeout") { () throws(Units.ParseError) in
                try Units.milliseconds(shutdownTimeout)
            },
            logFileMaximumBytes: logMax,
            sandboxHelper: Self.absolute(sandboxHelper ?? ownDirectory + "/agentos-sandbox"),
            fileToolHelper: String(cString: fileToolReal),
            approvalTimeoutMilliseconds: approval,
            mailboxLimit: mailboxLimit,
            memoryQuotaBytes: quota == 0 ? nil : quota,
            agentUIDs: bounds[0]...bounds[1],
            sandboxPoolSize: sandboxPool,
            seccompProfilesDirectory: Self.absolute(policiesDirectory(ownDirectory: ownDirectory, environment: environment))
                + "/seccomp",
            cgroupFavorDynamicModifications: cgroupFavorDynmods)
        configuration.models = file.models
        configuration.secretsFile = secrets.map(Self.absolute) ?? file.secretsFile
        guard (1...1_000).contains(goalConcurrency) else { throw ValidationError("--goal-concurrency \(goalConcurrency): give 1 to 1000") }
        configuration.goalConcurrency = goalConcurrency
        return configuration
    }

    static let defaultConfig = "/etc/agentos/agentd.yaml"

    /// --policies, else $AGENTOS_POLICIES, else the checkout agentd was
    /// built in (.build/<triple>/<config>/agentd), else /usr/share/agentos/policies.
    func policiesDirectory(ownDirectory: String, environment: [String: String]) -> String {
        if let policies { return policies }
        if let explicit = environment["AGENTOS_POLICIES"], !explicit.isEmpty { return explicit }
        var candidate = ownDirectory
        for _ in 0..<4 {
            candidate = (candidate as NSString).deletingLastPathComponent
            if FileManager.default.fileExists(atPath: candidate + "/Policies/seccomp/default.json") {
                return candidate + "/Policies"
            }
        }
        return "/usr/share/agentos/policies"
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return FileManager.default.currentDirectoryPath + "/" + path
    }

    /// Unblocks termination signals on the main thread first (a parent may
    /// have spawned agentd with them blocked, making it unstoppable), then
    /// parses and runs.
    public static func main() async {
        aos_unblock_termination_signals()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    public func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "agentd")
        let configuration = try makeConfiguration()
        let kernel = Kernel(configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: kernel)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "agentd.services")))
        do {
            try await group.run()
        } catch let error as KernelError {
            FileHandle.standardError.write(Data("agentd: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}
