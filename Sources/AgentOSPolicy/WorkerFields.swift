// A worker's own fields: what to run, its environment, its sandbox and
// limits (named as `agentctl run` names its flags), capabilities, readiness.

import AgentOSModels
import AgentOSTools
import Yams

/// `net:` values.
enum NetworkMode: String, CaseIterable {
    case none
    case loopback
}

extension TreeBuilder {
    /// The launch settings of a worker child, or nil when any of them is wrong.
    func workerLaunch(_ reader: MappingReader) -> WorkerLaunch? {
        let before = log.count
        let program = self.program(reader)
        var launch = WorkerLaunch(program: program ?? "")
        launch.args = reader.texts("args") ?? []
        launch.env = environment(reader)
        if let llm = reader.mapping("llm", expected: "the LLM agent's settings (a mapping with model:, tools:, ...)",
                                    allowed: PolicyKeys.llm) {
            for (name, value) in llmSettings(llm) { launch.env[name] = value }
        }
        if let workdir = reader.text("workdir") {
            if let problem = Names.hostPathProblem(workdir) {
                log.report(reader.markOf("workdir"), reader.path.key("workdir"), problem)
            }
            launch.workdir = workdir
        }
        if let sandbox = reader.mapping("sandbox", expected: "a sandbox (a mapping with memory:, ro:, net: ...)",
                                        allowed: PolicyKeys.sandbox) {
            (launch.limits, launch.sandbox) = confinement(sandbox)
        }
        for item in reader.textItems("capabilities") {
            if let problem = CapabilityURI.problem(in: item.text) { log.report(item.mark, item.path, problem) }
            launch.capabilities.append(item.text)
        }
        launch.readiness = reader.choice("readiness", WorkerLaunch.Readiness.self) ?? .none
        if let timeout = reader.duration("start_timeout") {
            if timeout < 1 {
                log.report(reader.markOf("start_timeout"), reader.path.key("start_timeout"),
                           "must be at least 1ms, e.g. 10s")
            }
            launch.startTimeoutMilliseconds = timeout
        }
        if let server = reader.text("mcp_server") {
            if !MCPNames.isServerName(server) {
                log.report(reader.markOf("mcp_server"), reader.path.key("mcp_server"),
                           "invalid MCP server name '\(server)': use \(MCPNames.serverNameRule)")
            } else if launch.readiness == .notify {
                log.report(reader.markOf("readiness"), reader.path.key("readiness"),
                           "an MCP server cannot send ready (it speaks MCP, not the Agent OS protocol): use readiness: none")
            }
            launch.mcpServer = server
        }
        if program != nil, !reader.has("program"), reader.has("llm") {
            // The built-in agent must be visible inside its sandbox.
            let directory = String(WorkerLaunch.llmAgentProgram.prefix(upTo: WorkerLaunch.llmAgentProgram.lastIndex(of: "/")
                ?? WorkerLaunch.llmAgentProgram.endIndex))
            if !launch.sandbox.readOnly.contains(where: { directory == $0 || directory.hasPrefix($0 + "/") }) {
                launch.sandbox.readOnly.append(directory)
            }
        }
        return log.count == before && program != nil ? launch : nil
    }

    /// `llm:` as the environment the built-in agent reads its settings from.
    private func llmSettings(_ reader: MappingReader) -> [String: String] {
        var settings: [String: String] = [:]
        reader.require("model", "missing: the model it thinks with, as PROVIDER:MODEL (e.g. anthropic:claude-sonnet-4-5)")
        if let model = reader.text("model") {
            do {
                _ = try ModelName(parsing: model)
                settings["AGENTOS_MODEL"] = model
            } catch {
                log.report(reader.markOf("model"), reader.path.key("model"), error.message)
            }
        }
        if let prompt = reader.text("system_prompt") { settings["AGENTOS_SYSTEM_PROMPT"] = prompt }
        let tools = reader.textItems("tools")
        for item in tools where item.text.isEmpty || item.text.contains(",") {
            log.report(item.mark, item.path, "a tool name or glob (e.g. file.read, shell.*), not '\(item.text)'")
        }
        if reader.has("tools") { settings["AGENTOS_TOOLS"] = tools.map(\.text).joined(separator: ",") }
        if let steps = reader.integer("max_steps") {
            if (1...1_000).contains(steps) { settings["AGENTOS_MAX_STEPS"] = String(steps) } else {
                log.report(reader.markOf("max_steps"), reader.path.key("max_steps"), "must be 1-1000, not \(steps)")
            }
        }
        if let tokens = reader.integer("max_tokens") {
            if (1...1_000_000).contains(tokens) { settings["AGENTOS_MAX_TOKENS"] = String(tokens) } else {
                log.report(reader.markOf("max_tokens"), reader.path.key("max_tokens"), "must be 1-1000000, not \(tokens)")
            }
        }
        if let stream = reader.boolean("stream") { settings["AGENTOS_STREAM"] = stream ? "1" : "0" }
        return settings
    }

    private func program(_ reader: MappingReader) -> String? {
        guard let program = reader.text("program") else {
            guard reader.has("llm") else { return nil }
            guard programExists(WorkerLaunch.llmAgentProgram) else {
                log.report(reader.keyMark("llm"), reader.path.key("llm"),
                           "the built-in LLM agent is not installed at \(WorkerLaunch.llmAgentProgram) "
                               + "(Integration/install-examples.sh installs it), or give program:")
                return nil
            }
            return WorkerLaunch.llmAgentProgram
        }
        let mark = reader.markOf("program"), field = reader.path.key("program")
        if program.isEmpty {
            log.report(mark, field, "empty: give an absolute path or a name found in PATH")
            return nil
        }
        if program.contains("/"), !program.hasPrefix("/") {
            log.report(mark, field, "'\(program)' is relative: give an absolute path or a name found in PATH")
            return nil
        }
        guard programExists(program) else {
            log.report(mark, field, program.hasPrefix("/")
                ? "program '\(program)' does not exist or is not an executable file"
                : "program '\(program)' not found in PATH (\(PolicyParser.systemPath))")
            return nil
        }
        return program
    }

    private func environment(_ reader: MappingReader) -> [String: String] {
        guard let node = reader.value("env") else { return [:] }
        let path = reader.path.key("env")
        guard case .mapping(let mapping) = node else {
            log.report(node.mark, path, "expected a mapping of variables (NAME: value), found \(node.found)")
            return [:]
        }
        var environment: [String: String] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key, !key.isNull, Names.isEnvironmentName(scalar.string) else {
                log.report(key.mark, path, "invalid variable name \(key.found): non-empty, without '='")
                continue
            }
            if let text = values.text(value, path.key(scalar.string)) { environment[scalar.string] = text }
        }
        return environment
    }

    /// The limits and the sandbox, from the one `sandbox:` mapping.
    private func confinement(_ reader: MappingReader) -> (WorkerLaunch.Limits, WorkerLaunch.Sandbox) {
        var limits = WorkerLaunch.Limits(), sandbox = WorkerLaunch.Sandbox()
        func report(_ key: String, _ message: String) {
            log.report(reader.markOf(key), reader.path.key(key), message)
        }
        if let memory = reader.size("memory") {
            if memory < 1 << 20 { report("memory", "must be at least 1M, e.g. 256M") }
            limits.memoryBytes = memory
        }
        if let pids = reader.integer("pids") {
            if pids < 1 { report("pids", "must be at least 1, not \(pids)") }
            limits.pids = pids
        }
        if let cpu = reader.number("cpu") {
            if cpu <= 0 {
                report("cpu", "must be more than 0 (a number of CPUs, e.g. 0.5)")
            } else if cpu < 0.01 || cpu > 1_024 {
                report("cpu", "give a number of CPUs from 0.01 to 1024, e.g. 0.5 or 2")
            }
            limits.cpus = cpu
        }
        if let timeout = reader.duration("timeout") {
            if timeout < 1 { report("timeout", timeout < 0 ? "must not be negative" : "must be at least 1ms, e.g. 10m") }
            limits.timeoutMilliseconds = timeout
        }
        for key in ["ro", "rw"] {
            let items = reader.textItems(key)
            for item in items {
                if let problem = Names.hostPathProblem(item.text) { log.report(item.mark, item.path, problem) }
            }
            if key == "ro" { sandbox.readOnly = items.map(\.text) } else { sandbox.readWrite = items.map(\.text) }
        }
        if let size = reader.size("tmp_size") {
            if size < 1 << 20 || size > 64 << 30 { report("tmp_size", "give a size from 1M to 64G, e.g. 64M") }
            sandbox.tmpSizeBytes = size
        }
        sandbox.network = (reader.choice("net", NetworkMode.self) ?? .none).rawValue
        if let seccomp = reader.text("seccomp") {
            if !Names.isProfileName(seccomp) {
                report("seccomp", "invalid profile name '\(seccomp)': the name of a file in the kernel's "
                    + "Policies/seccomp without .json, e.g. default")
            }
            sandbox.seccomp = seccomp
        }
        return (limits, sandbox)
    }
}
