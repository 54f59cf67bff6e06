// A worker's own fields: what to run, its environment, its sandbox and
// limits (named as `agentctl run` names its flags), capabilities, readiness.

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
        return log.count == before && program != nil ? launch : nil
    }

    private func program(_ reader: MappingReader) -> String? {
        guard let program = reader.text("program") else { return nil }
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
