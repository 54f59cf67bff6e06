import Foundation
import Testing

/// Agents' memory through agentctl and on an agent's own socket.
@Suite("Memory", .serialized)
struct MemoryTests {
    @Test func putGetSearchListRemoveAndWhatOutlivesWhat() throws {
        let kernel = try KernelProcess(label: "mem")
        defer { kernel.stop() }
        _ = try kernel.run(["--name", "researcher", "--", "/bin/sleep", "600"])
        #expect(try kernel.ctl(["mem", "put", "researcher", "topic", "licenses of the GPL family", "--tag", "legal"]).status == 0)
        #expect(try kernel.ctl(["mem", "put", "researcher", "pasta", "cooking recipes"]).status == 0)
        #expect(try kernel.ctl(["mem", "put", "researcher", "ctx", "this run only", "--scope", "context"]).status == 0)
        #expect(try kernel.ctl(["mem", "put", "researcher", "soon", "gone soon", "--ttl", "300ms"]).status == 0)
        #expect(try kernel.ctl(["mem", "get", "researcher", "topic"]).stdout == "licenses of the GPL family\n")
        // Ranked by BM25 over values and tags; FTS5 syntax in a query is just text.
        let found = try #require(try kernel.json(["mem", "search", "researcher", "legal gpl"]) as? [[String: Any]])
        #expect(found.first?["key"] as? String == "topic")
        #expect(found.count == 1)
        #expect(try kernel.ctl(["mem", "search", "researcher", #"NEAR( "x OR *"#]).status == 0)
        Thread.sleep(forTimeInterval: 0.4)
        let keys = try #require(try kernel.json(["mem", "ls", "researcher"]) as? [[String: Any]]).compactMap { $0["key"] as? String }
        #expect(keys == ["pasta", "topic"])   // "soon" expired
        #expect(try kernel.ctl(["mem", "rm", "researcher", "pasta"]).status == 0)
        let missing = try kernel.ctl(["mem", "get", "researcher", "pasta"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no 'pasta' in long-term memory"))
        #expect(try kernel.ctl(["mem", "put", "researcher", "k", "v", "--scope", "weird"]).stderr.contains("unknown memory scope"))
        #expect(try kernel.ctl(["mem", "put", "researcher", "k", String(repeating: "v", count: 70_000)]).stderr.contains("at most 65536"))

        // The run ends: its context goes, its long-term memory stays, also across a kernel's kill -9.
        try kernel.ctl(["kill", "researcher"])
        #expect(try #require(try kernel.json(["mem", "ls", "researcher", "--scope", "context"]) as? [Any]).isEmpty)
        // A run the kernel's crash ended loses its context too (at the next start).
        _ = try kernel.run(["--name", "holder", "--", "/bin/sleep", "600"])
        #expect(try kernel.ctl(["mem", "put", "holder", "ctx", "this run only", "--scope", "context"]).status == 0)
        kernel.kill9()
        try kernel.start()
        #expect(try kernel.ctl(["mem", "get", "researcher", "topic"]).stdout == "licenses of the GPL family\n")
        #expect(try #require(try kernel.json(["mem", "ls", "holder", "--scope", "context"]) as? [Any]).isEmpty)
    }

    @Test func anAgentUsesItsOwnMemoryAndSharedMemoryOnlyWithACapability() throws {
        let kernel = try KernelProcess(label: "memagent")
        defer { kernel.stop() }
        try kernel.ctl(["mem", "put", "shared/team", "plan", "ship on friday"])
        func agent(_ name: String, _ capabilities: [String]) throws -> [[String: Any]] {
            let id = try kernel.run(Binaries.demoAgentSandboxFlags + ["--name", name] + capabilities.flatMap { ["--cap", $0] }
                + ["--env", "AGENTOS_DEMO_MEMORY=" + ["put long-term note remember the milk", "get shared/team plan",
                                                       "search long-term milk"].joined(separator: "\n"),
                   "--", Binaries.demoAgent, "1", "0.01"])
            try kernel.ctl(["wait", id])
            return try kernel.ctl(["logs", id]).lines.compactMap { line in
                guard line.hasPrefix("memory-result ") else { return nil }
                return try JSONSerialization.jsonObject(with: Data(line.dropFirst(14).utf8)) as? [String: Any]
            }
        }
        let without = try agent("loner", [])
        try #require(without.count == 3)
        #expect(without[0]["ok"] as? Bool == true)
        #expect((without[1]["error"] as? String)?.contains("needs capability://memory/shared/team?action=read") == true)
        #expect(((without[2]["entries"] as? [[String: Any]])?.first?["key"] as? String) == "note")
        #expect(try kernel.ctl(["mem", "get", "loner", "note"]).stdout == "remember the milk\n")
        let with = try agent("member", ["capability://memory/shared/team?action=read"])
        #expect(((with[1]["entries"] as? [[String: Any]])?.first?["value"] as? String) == "ship on friday")
        #expect(try kernel.ctl(["audit", "--agent", "loner"]).stdout.contains("capability.denied"))
    }

    @Test func aWorkersWorkingMemorySurvivesItsRestartsAndGoesWithItsPolicy() throws {
        let kernel = try KernelProcess(label: "memwork")
        defer { kernel.stop() }
        try kernel.apply("""
            version: 1
            name: crew
            supervisor:
              strategy: one_for_one
              children:
                - id: w
                  program: /bin/sleep
                  args: ["600"]
            """)
        #expect(try kernel.ctl(["mem", "put", "crew.w", "draft", "half done", "--scope", "working"]).status == 0)
        let pid = try #require(try kernel.treeNodes("crew")["crew/w"]?["pid"] as? Int)
        kill(Int32(pid), SIGKILL)
        #expect(eventually { (try? kernel.treeNodes("crew")["crew/w"]?["pid"] as? Int).flatMap { $0 != pid } ?? false })
        #expect(eventually { (try? kernel.ctl(["mem", "get", "crew.w", "draft", "--scope", "working"]).stdout) == "half done\n" })
        #expect(try kernel.ctl(["delete", "crew"]).status == 0)
        #expect(try kernel.ctl(["mem", "get", "crew.w", "draft", "--scope", "working"]).status == 1)
    }
}
