import AgentOSClient
import AgentOSProtocol
import ArgumentParser
import Foundation
import ModelProviderFake

/// The goal scheduler under load: `goals` goals over 10 policies with three
/// priorities, submitted at once, each worked by a real confined
/// agentos-llm-agent (one model call to the fake provider, then its
/// result); the wait from submission to dispatch per priority, against a
/// FIFO order (what AIOS does) replayed on the same dispatch times.
struct SchedulerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "1,000 goals over 10 policies with priorities: wait per priority vs FIFO on the same dispatch times.")

    @Option(help: "Goals submitted.")
    var goals = 1_000

    @Option(help: "agentd --goal-concurrency.")
    var concurrency = 8

    @Option(help: ArgumentHelp("Rewrite the scheduler section of this README with the results.", valueName: "path"))
    var updateReadme: String?

    static let priorities: [Int32] = [0, 5, 10]

    func run() throws {
        let work = "/tmp/agentos-bench-sched-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        chmod(work, 0o755)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let fake = try ModelBench.blocking { try await FakeModelProvider.start(apiKey: nil) }
        defer { _ = try? ModelBench.blocking { try await fake.shutdown() } }
        let config = work + "/agentd.yaml"
        try """
            version: 1
            models:
              providers:
                local: {kind: openai-compatible, base_url: "\(fake.baseURL)", concurrency: 64}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let (kernel, client) = try Bench.startKernel(work: work, arguments: ["--config", config,
                                                                             "--goal-concurrency", String(concurrency)])
        defer { Bench.stopProcess(kernel) }
        let bin = URL(fileURLWithPath: Bench.executablePath).deletingLastPathComponent().path
        for index in 0..<10 {
            var apply = Agentos_V1_ApplyRequest()
            apply.file = "p\(index).yaml"
            apply.source = """
                version: 1
                name: p\(index)
                supervisor:
                  children:
                    - id: pool
                      supervisor:
                        strategy: dynamic
                        template:
                          id: worker
                          restart: temporary
                          program: \(bin)/agentos-llm-agent
                          llm: {model: local:echo, max_steps: 1}
                          sandbox: {ro: [\(bin)]}
                          capabilities: [capability://model/local:*?action=complete]
                """
            guard case .apply = try client.call(.apply(apply)) else { throw ValidationError("apply p\(index) failed") }
        }
        let started = Date()
        for index in 0..<goals {
            var submit = Agentos_V1_GoalSubmitRequest()
            submit.text = "goal \(index)"
            submit.policy = "p\(index % 10)"
            submit.priority = Self.priorities[(index / 10) % Self.priorities.count]
            guard case .goalSubmit = try client.call(.goalSubmit(submit)) else { throw ValidationError("submit failed") }
        }
        var list = Agentos_V1_GoalListRequest()
        list.all = true
        list.limit = UInt32(goals + 10)
        var finished: [Agentos_V1_GoalInfo] = []
        let deadline = Date().addingTimeInterval(900)
        while Date() < deadline {
            guard case .goalList(let all) = try client.call(.goalList(list)) else { throw ValidationError("list failed") }
            finished = all.goals
            if finished.count == goals && finished.allSatisfy({ ["done", "failed", "cancelled"].contains($0.state) }) { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        let elapsed = Date().timeIntervalSince(started)
        let done = finished.filter { $0.state == "done" }.count
        // Waits in ms: submission to dispatch.
        func wait(_ goal: Agentos_V1_GoalInfo) -> Double { Double(goal.startedAtNs - goal.submittedAtNs) / 1e6 }
        // FIFO on the same dispatch times: the n-th submitted takes the n-th start.
        let bySubmission = finished.sorted { $0.submittedAtNs < $1.submittedAtNs }
        let starts = finished.map(\.startedAtNs).sorted()
        var fifo: [String: Double] = [:]
        for (index, goal) in bySubmission.enumerated() where index < starts.count {
            fifo[goal.id] = Double(starts[index] - goal.submittedAtNs) / 1e6
        }
        var rows: [String] = []
        for priority in Self.priorities.reversed() {
            let group = finished.filter { $0.priority == priority }
            let waits = Sample(values: group.map(wait))
            let fifoWaits = Sample(values: group.compactMap { fifo[$0.id] })
            rows.append("| \(priority) | \(group.count) | \(Self.ms(waits.median)) | \(Self.ms(waits.percentile(0.9))) | "
                        + "\(Self.ms(waits.percentile(1))) | \(Self.ms(fifoWaits.median)) | \(Self.ms(fifoWaits.percentile(1))) |")
        }
        let perPolicy = (0..<10).map { index in finished.filter { $0.policy == "p\(index)" && $0.state == "done" }.count }
        let table = [
            "Measured \(ISO8601DateFormatter().string(from: Date())) by `agentos-bench scheduler` (release build) on: "
                + Machine.description + ".",
            "",
            "\(goals) goals submitted at once over 10 policies (priorities 0, 5 and 10 in turn), `--goal-concurrency \(concurrency)`; "
                + "each dispatched to a new confined `agentos-llm-agent` that makes one model call (the fake provider) and "
                + "writes its result. \(done) of \(finished.count) done in \(String(format: "%.1f", elapsed)) s "
                + "(\(String(format: "%.0f", Double(done) / max(elapsed, 0.001))) goals/s); done per policy: "
                + perPolicy.map(String.init).joined(separator: ", ") + ".",
            "",
            "| priority | goals | wait to dispatch, median | p90 | max | FIFO on the same dispatch times: median | FIFO max |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ] + rows + [
            "",
            "Every goal was dispatched (none starved): a waiting goal gains a point of priority every 10 s, so after "
                + "100 s a priority-0 goal is ahead of any priority-10 goal submitted since.",
        ]
        let text = table.joined(separator: "\n")
        print(text)
        if let updateReadme {
            try Bench.replaceSection(in: updateReadme, marker: "scheduler", with: text)
            FileHandle.standardError.write(Data("updated \(updateReadme)\n".utf8))
        }
    }

    static func ms(_ value: Double) -> String {
        value >= 1_000 ? String(format: "%.2f s", value / 1_000) : String(format: "%.0f ms", value)
    }
}
