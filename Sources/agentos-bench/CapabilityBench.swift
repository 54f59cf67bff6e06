import AgentOSClient
import AgentOSProtocol
import ArgumentParser
import Foundation

/// The capability check through the kernel (`cap_explain`, which runs the
/// same decision as an agent's check without counting a use), as the table
/// grows to 10,000 grants and beyond, against the same call on a table of
/// one grant, measured in the same run.
struct CapabilityBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capabilities",
        abstract: "Capability check cost with 10,000 grants in the table vs one grant.")

    @Option(help: "Grants in the table besides the measured agents'.")
    var grants = 10_000

    @Option(help: "Checks measured per case.")
    var checks = 2_000

    @Option(help: ArgumentHelp("Rewrite the capabilities section of this README with the results.", valueName: "path"))
    var updateReadme: String?

    func run() throws {
        let work = "/tmp/agentos-bench-caps-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let (kernel, client) = try Bench.startKernel(work: work)
        defer { Bench.stopProcess(kernel) }

        func start(_ name: String) throws {
            var run = Agentos_V1_RunRequest()
            run.name = name
            run.argv = ["/bin/sleep", "3600"]
            guard case .run = try client.call(.run(run)) else { throw ValidationError("run failed") }
        }
        func grant(_ agent: String, _ uri: String) throws {
            var request = Agentos_V1_CapGrantRequest()
            request.agent = agent
            request.uri = uri
            guard case .capGrant = try client.call(.capGrant(request)) else { throw ValidationError("grant failed") }
        }
        // The kernel's own time for each decision, by case (ns).
        var decisions: [String: [Double]] = [:]
        func explain(_ agent: String, _ resource: String, _ label: String) -> () throws -> Void {
            var request = Agentos_V1_CapExplainRequest()
            request.agent = agent
            request.action = "call"
            request.resource = resource
            return {
                guard case .capExplain(let answer) = try client.call(.capExplain(request)), answer.allowed else {
                    throw ValidationError("the check was not allowed")
                }
                decisions[label, default: []].append(Double(answer.checkNs))
            }
        }

        // Baseline: a table of one grant.
        try start("one")
        try grant("one", "capability://tool/one.tool?action=call")
        let alone = try Bench.measure(count: checks, warmup: 200, explain("one", "tool/one.tool", "a"))

        // The table grows: `grants` grants over 100 other agents, and one
        // agent that holds 1,000 itself (a check scans the asker's grants).
        let holders = 100
        for holder in 0..<holders { try start("holder\(holder)") }
        for index in 0..<grants {
            try grant("holder\(index % holders)", "capability://tool/h\(index).tool?action=call")
        }
        try start("busy")
        for index in 0..<1_000 { try grant("busy", "capability://tool/b\(index).tool?action=call") }
        let (crowded, busy) = try Bench.measurePair(count: checks, warmup: 200, explain("one", "tool/one.tool", "b"),
                                                    explain("busy", "tool/b999.tool", "c"))
        // The warm-up's decisions are in too: the last `checks` are the measured ones.
        let decided = decisions.mapValues { Sample(values: Array($0.suffix(checks))) }
        func decision(_ label: String) -> String {
            guard let sample = decided[label] else { return "-" }
            return String(format: "%.0f ns", sample.median)
        }
        let total = 1 + grants + 1_000
        // µs over 1,000 grants = ns per grant.
        let perGrant = max(0, busy.median - crowded.median)
        let table = [
            "Measured \(ISO8601DateFormatter().string(from: Date())) by `agentos-bench capabilities` (release build) on: "
                + Machine.description + ".",
            "",
            "| `cap explain` (the kernel's check) | the decision in the kernel, median | round trip through the socket, median | round trip p99 | n |",
            "|---|---:|---:|---:|---:|",
            "| (a) the table holds 1 grant, the agent 1 | \(decision("a")) | \(Bench.format(alone.median)) | \(Bench.format(alone.p99)) | \(alone.count) |",
            "| (b) the table holds \(total) grants, the agent 1 | \(decision("b")) | \(Bench.format(crowded.median)) | \(Bench.format(crowded.p99)) | \(crowded.count) |",
            "| (c) the table holds \(total) grants, the agent 1,000 (its last one decides) | \(decision("c")) | \(Bench.format(busy.median)) | \(Bench.format(busy.p99)) | \(busy.count) |",
            "",
            "| ratio (medians) | value |",
            "|---|---:|",
            "| (b) / (a): the table's size | \(String(format: "%.2f×", crowded.median / alone.median)) |",
            "| (c) / (b): 1,000 grants of the asker scanned | \(String(format: "%.2f×", busy.median / crowded.median)) |",
            "| ((c) − (b)) / 1,000: one more grant of the asker | \(String(format: "%.0f ns", perGrant)) |",
        ].joined(separator: "\n")
        print(table)
        if let updateReadme {
            try Bench.replaceSection(in: updateReadme, marker: "capabilities", with: table)
            FileHandle.standardError.write(Data("updated \(updateReadme)\n".utf8))
        }
    }
}
