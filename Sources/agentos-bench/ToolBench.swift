import AgentOSClient
import AgentOSProtocol
import ArgumentParser
import Foundation

/// A tool's round trip, agent -> kernel -> confined child -> agent
/// (`file.read` of a 1 KiB file, timed by the agent around its call),
/// against the confined spawn alone (an operator's `run /bin/true` + `wait`
/// through the same kernel), measured in the same run.
struct ToolBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tools",
        abstract: "Tool round trip (file.read of 1 KiB) vs the confined spawn alone.")

    @Option(help: "Tool calls and spawns measured.")
    var count = 200

    @Option(help: ArgumentHelp("Rewrite the tools section of this README with the results.", valueName: "path"))
    var updateReadme: String?

    func run() throws {
        let work = "/tmp/agentos-bench-tools-\(getpid())"
        try FileManager.default.createDirectory(atPath: work + "/data", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        chmod(work, 0o755)
        chmod(work + "/data", 0o755)
        let file = work + "/data/one-kib.txt"
        try String(repeating: "0123456789abcdef", count: 64).write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        let (kernel, client) = try Bench.startKernel(work: work)
        defer { Bench.stopProcess(kernel) }

        func spawnTrue() throws {
            var run = Agentos_V1_RunRequest()
            run.argv = ["/bin/true"]
            guard case .run(let started) = try client.call(.run(run)) else { throw ValidationError("run failed") }
            var wait = Agentos_V1_WaitRequest()
            wait.agent = started.agent.id
            guard case .wait(let ended) = try client.call(.wait(wait)), ended.exit.exited, ended.exit.code == 0 else {
                throw ValidationError("/bin/true did not exit 0")
            }
        }
        let before = try Bench.measure(count: count / 2, warmup: 20, spawnTrue)

        // The agent: the demo agent calling file.read `calls` times; the
        // round trips it timed, in order.
        let binDirectory = URL(fileURLWithPath: Bench.executablePath).deletingLastPathComponent().path
        let agent = binDirectory + "/agentos-demo-agent"
        let sandboxPaths = Self.sandboxPaths(for: agent)
        func callingAgent(calls: Int) throws -> [Double] {
            var run = Agentos_V1_RunRequest()
            run.argv = [agent, "1", "0"]
            run.sandbox.readOnly = sandboxPaths
            run.capabilities = ["capability://file\(work)/data/**?action=read"]
            run.env = ["AGENTOS_DEMO_TOOLS": #"file.read {"path": "\#(file)"}"#, "AGENTOS_DEMO_TOOL_REPEAT": String(calls)]
            guard case .run(let started) = try client.call(.run(run)) else { throw ValidationError("run failed") }
            var wait = Agentos_V1_WaitRequest()
            wait.agent = started.agent.id
            guard case .wait(let ended) = try client.call(.wait(wait)), ended.exit.exited, ended.exit.code == 0 else {
                throw ValidationError("the tool agent failed: \(Self.log(of: started.agent, client: client))")
            }
            var roundTrips: [Double] = []
            for line in Self.log(of: started.agent, client: client).split(separator: "\n") where line.hasPrefix("tool-result ") {
                guard let object = try JSONSerialization.jsonObject(with: Data(line.dropFirst(12).utf8)) as? [String: Any],
                      object["ok"] as? Bool == true, object["is_error"] as? Bool == false,
                      let us = (object["us"] as? NSNumber)?.doubleValue else {
                    throw ValidationError("a file.read failed: \(line)")
                }
                roundTrips.append(us)
            }
            guard roundTrips.count == calls else { throw ValidationError("\(roundTrips.count) tool results of \(calls)") }
            return roundTrips
        }
        let tool = Sample(values: Array(try callingAgent(calls: count + 20).dropFirst(20)))
        // An agent's first call: its sandbox starts on the call's path.
        var firsts: [Double] = []
        for _ in 0..<20 { firsts += try callingAgent(calls: 1) }
        let first = Sample(values: firsts)
        let after = try Bench.measure(count: count - count / 2, warmup: 5, spawnTrue)
        let spawn = Sample(values: before.values + after.values)

        let ratio = tool.median / spawn.median
        let table = [
            "Measured \(ISO8601DateFormatter().string(from: Date())) by `agentos-bench tools` (release build) on: "
                + Machine.description + ".",
            "",
            "| | median | p99 | n |",
            "|---|---:|---:|---:|",
            "| (a) `file.read` of 1 KiB: agent → kernel (check, audit) → confined child → agent | \(Bench.format(tool.median)) | \(Bench.format(tool.p99)) | \(tool.count) |",
            "| (b) confined spawn alone: `run /bin/true` + `wait` through the kernel | \(Bench.format(spawn.median)) | \(Bench.format(spawn.p99)) | \(spawn.count) |",
            "| (c) an agent's first `file.read` (its tool sandbox starts cold) | \(Bench.format(first.median)) | \(Bench.format(first.p99)) | \(first.count) |",
            "",
            "| ratio (medians) | value | target |",
            "|---|---:|---:|",
            "| (a) / (b) | \(String(format: "%.2f×", ratio)) | ≤ 1.5× |",
            "| (c) / (b) | \(String(format: "%.2f×", first.median / spawn.median)) | |",
        ].joined(separator: "\n")
        print(table)
        if let updateReadme {
            try Bench.replaceSection(in: updateReadme, marker: "tools", with: table)
            FileHandle.standardError.write(Data("updated \(updateReadme)\n".utf8))
        }
    }

    /// The agent's dir and the dirs of the libraries it loads from outside
    /// the system dirs (the Swift runtime), for --ro.
    static func sandboxPaths(for program: String) -> [String] {
        var directories = [(program as NSString).deletingLastPathComponent]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        process.arguments = [program]
        let pipe = Pipe()
        process.standardOutput = pipe
        guard (try? process.run()) != nil else { return directories }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        for line in output.split(separator: "\n") {
            guard let arrow = line.range(of: "=> /") else { continue }
            let path = String(line[line.index(before: arrow.upperBound)...].split(separator: " ")[0])
            let parent = (path as NSString).deletingLastPathComponent
            let system = ["/usr", "/lib", "/lib64", "/lib32"].contains { parent == $0 || parent.hasPrefix($0 + "/") }
            if !system && !directories.contains(parent) { directories.append(parent) }
        }
        return directories
    }

    /// The agent's stdout, through the kernel's `logs` call.
    static func log(of agent: Agentos_V1_AgentInfo, client: KernelClient) -> String {
        var request = Agentos_V1_LogsRequest()
        request.agent = agent.id
        var text = ""
        _ = try? client.stream(.logs(request)) { item in
            if case .log(let chunk) = item, chunk.stream == .stdout { text += String(decoding: chunk.data, as: UTF8.self) }
            return true
        }
        return text
    }
}
