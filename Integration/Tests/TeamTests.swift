import Foundation
import Testing

/// The example team (Policies/examples/duo.yaml) under the real kernel: a
/// Swift agent (AgentKit) and a Python agent (agentkit) exchange requests,
/// share a memory namespace and checkpoint; the Python one is killed with
/// SIGKILL in the middle of an item and resumes from its checkpoint and its
/// mailbox. Needs Integration/install-examples.sh (test.sh runs it).
@Suite("The two-language example team", .serialized)
struct TeamTests {
    static let policy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Policies/examples/duo.yaml").path
    static let installed = FileManager.default.isExecutableFile(atPath: "/opt/agentos/bin/agentos-example-planner")
        && FileManager.default.fileExists(atPath: "/opt/agentos/python/agentkit/__init__.py")

    @Test(.enabled(if: installed, "the example agents are not installed: run Integration/install-examples.sh"))
    func aKilledWriterResumesFromItsCheckpointAndMailboxAndNoItemIsLost() throws {
        let kernel = try KernelProcess(label: "duo")
        defer { kernel.stop() }
        let applied = try kernel.ctl(["apply", Self.policy])
        #expect(applied.status == 0, "\(applied.stderr)")
        func log(_ agent: String) -> [String] { (try? kernel.ctl(["logs", agent]).lines) ?? [] }

        // Kill the writer while it works on an item it has not answered yet.
        var victim = ""
        #expect(eventually(timeout: 30) {
            guard let last = log("duo.writer").last, last.hasPrefix("writer: working on item 2") || last.hasPrefix("writer: working on item 3")
            else { return false }
            victim = String(last.dropFirst("writer: working on item ".count))
            return true
        })
        let nodes = try kernel.treeNodes("duo")
        let pid = try #require(nodes["duo/writer"]?["pid"] as? Int)
        #expect(kill(Int32(pid), SIGKILL) == 0)

        // The planner finishes all six items, each once, in order.
        #expect(eventually(timeout: 60) { log("duo.planner").contains { $0.hasPrefix("planner: all 6 items done") } },
                "\(log("duo.planner"))")
        let items = log("duo.planner").compactMap { line -> Int? in
            guard line.hasPrefix("planner: item ") else { return nil }
            return Int(line.dropFirst("planner: item ".count).prefix { $0.isNumber })
        }
        #expect(items == [1, 2, 3, 4, 5, 6])
        #expect(log("duo.planner").filter { $0.hasPrefix("planner: item ") }.allSatisfy { $0.hasSuffix("(in shared memory)") })

        // The restarted writer (a new run: its log starts again) resumed from
        // its checkpoint and got the unanswered request again from its mailbox.
        let after = log("duo.writer")
        let resumed = try #require(after.first { $0.contains("started (resumed from checkpoint:") }, "\(after)")
        let done = Int(resumed.split(separator: ":").last?.trimmingCharacters(in: .whitespaces).prefix { $0.isNumber } ?? "") ?? -1
        // Killed mid-work it redoes the item; killed in the instant after its
        // checkpoint but before the ack, it answers from shared memory instead.
        let item = Int(victim) ?? 0
        let redone = done == item - 1 && after.contains("writer: working on item \(victim)")
        let answeredFromMemory = done == item && after.contains("writer: item \(victim) was done before the restart: answering from memory")
        #expect(redone || answeredFromMemory, "\(resumed) after killing it on item \(victim): \(after)")
        #expect((nodes["duo"]?["restarts_in_window"] as? Int) == 0)
        #expect((try kernel.treeNodes("duo")["duo"]?["restarts_in_window"] as? Int) == 1)

        // What they share: every item in shared/duo, written by the writer.
        let shared = try #require(try kernel.json(["mem", "ls", "shared/duo"]) as? [[String: Any]])
        #expect(shared.compactMap { $0["key"] as? String }.sorted() == (1...6).map { "item-\($0)" })
        // Nothing left waiting: every request was acked, every response taken.
        #expect((try kernel.json(["mailbox", "duo/writer"]) as? [String: Any])?["depth"] as? Int == 0)
        #expect((try kernel.json(["mailbox", "duo/planner"]) as? [String: Any])?["depth"] as? Int == 0)
        // The planner ended normally (transient: not restarted).
        #expect(eventually { (try? kernel.treeNodes("duo")["duo/planner"]?["state"] as? String) == "stopped" })
    }
}
