import AgentOSClient
import AgentOSProtocol
import Foundation
import Testing

/// Sandboxes held ahead of their agents (agentd --sandbox-pool) and the
/// cold path (--sandbox-pool 0): the same sandbox either way, nothing left
/// behind by the held ones.
@Suite("Sandbox pool", .serialized)
struct SandboxPoolTests {
    /// Host processes of this kernel's held sandboxes (three each: the
    /// monitor, init and the agent's process waiting for its request).
    func heldHelpers(_ kernel: KernelProcess) -> [Int32] {
        let root = kernel.stateDirectory + "/sandbox-root"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let arguments = String(decoding: data, as: UTF8.self).split(separator: "\0").map(String.init)
            return arguments.contains("--request-fd") && arguments.contains(root) && processExists(pid)
        }
    }

    /// What an agent sees of its sandbox, one fact per line.
    static let probe = [
        "/bin/sh", "-c",
        "echo env=$GREETING; echo uid=$(id -u); echo host=$(hostname); echo pwd=$(pwd); "
            + "grep '^Seccomp:' /proc/self/status; grep '^CapEff' /proc/self/status; "
            + "cat /srv-probe/file; (echo x > /srv-probe/file) 2>/dev/null || echo ro-denied; echo $$",   // the agent is pid 2 (init is 1)
    ]

    func probeFacts(_ kernel: KernelProcess, shared: String) throws -> [String] {
        let id = try kernel.run(["--name", "probe", "--env", "GREETING=hello there", "--ro", shared, "--"]
            + Self.probe.map { $0.replacingOccurrences(of: "/srv-probe", with: shared) })
        #expect(try kernel.ctl(["wait", id]).status == 0)
        return try kernel.ctl(["logs", id]).lines
    }

    func sharedDirectory() throws -> String {
        let shared = try temporaryDirectory("pool-ro")
        chmod(shared, 0o755)
        try "from the host\n".write(toFile: shared + "/file", atomically: true, encoding: .utf8)
        chmod(shared + "/file", 0o666)
        return shared
    }

    static let expectedFacts = ["env=hello there", "host=probe", "Seccomp:\t2", "CapEff:\t0000000000000000",
                                "from the host", "ro-denied", "2"]

    @Test func heldSandboxesServeSpawnsAndLeaveNothingBehind() throws {
        let kernel = try KernelProcess(label: "poolheld", arguments: ["--sandbox-pool", "3"])
        #expect(eventually { heldHelpers(kernel).count == 9 }, "three held sandboxes (monitor, init and the agent-to-be each)")
        let held = Set(heldHelpers(kernel))
        let shared = try sharedDirectory()
        let facts = try probeFacts(kernel, shared: shared)
        for fact in Self.expectedFacts { #expect(facts.contains(fact), "\(fact) in \(facts)") }
        #expect(facts.contains("uid=200000"), "the oldest held sandbox (first uid) served the spawn: \(facts)")
        let agent = try kernel.agent("probe")
        // This kernel's cgroup bases: the parents of a live agent's cgroups.
        let sleeper = try kernel.run(["--", "/bin/sleep", "30"])
        let bases = Set((try kernel.agent(sleeper)["cgroups"] as? [String] ?? [])
            .map { ($0 as NSString).deletingLastPathComponent })
        #expect(!bases.isEmpty)
        try kernel.ctl(["kill", sleeper])
        #expect(facts.contains("pwd=\(agent["work_dir"] as? String ?? "?")"), "\(facts)")
        // The one used was a held one; the pool is topped up behind it.
        #expect(held.contains(Int32(agent["pid"] as? Int ?? -1)), "agent pid \(agent["pid"] ?? "-") not a held monitor")
        #expect(eventually { heldHelpers(kernel).count == 9 })
        #expect(kernel.stop() == 0)
        #expect(heldHelpers(kernel).isEmpty, "held sandboxes outlived agentd: \(heldHelpers(kernel))")
        let agents = try FileManager.default.contentsOfDirectory(atPath: kernel.stateDirectory + "/agents")
        #expect(Set(agents) == [agent["id"] as? String ?? "?", sleeper], "unused slot dirs left: \(agents)")
        for base in bases {
            let left = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter { !$0.contains(".") }
            #expect(left.isEmpty, "cgroups left in \(base): \(left)")
        }
    }

    @Test func theColdPathGivesTheSameSandbox() throws {
        let kernel = try KernelProcess(label: "poolcold", arguments: ["--sandbox-pool", "0"])
        defer { kernel.stop() }
        let facts = try probeFacts(kernel, shared: try sharedDirectory())
        for fact in Self.expectedFacts { #expect(facts.contains(fact), "\(fact) in \(facts)") }
        #expect(facts.contains("uid=200000"))
        #expect(heldHelpers(kernel).isEmpty)
    }

    @Test func aHeldSandboxKilledWhileWaitingIsReplacedNotUsed() throws {
        let kernel = try KernelProcess(label: "pooldead", arguments: ["--sandbox-pool", "1"])
        defer { kernel.stop() }
        #expect(eventually { heldHelpers(kernel).count == 3 })
        for pid in heldHelpers(kernel) { kill(pid, SIGKILL) }
        let id = try kernel.run(["--", "/bin/sh", "-c", "echo still-works"])
        #expect(try kernel.ctl(["wait", id]).status == 0)
        #expect(try kernel.ctl(["logs", id]).stdout == "still-works\n")
    }

    @Test func aNULInAnArgumentOrValueIsRefused() throws {
        let kernel = try KernelProcess(label: "poolnul")
        defer { kernel.stop() }
        let client = try kernel.client()
        var request = Agentos_V1_RunRequest()
        request.argv = ["/bin/echo", "a\0--rw\0/etc"]
        #expect(throws: (any Error).self) { try client.call(.run(request)) }
        request.argv = ["/bin/true"]
        request.env = ["X": "1\0--rw\0/etc"]
        #expect(throws: (any Error).self) { try client.call(.run(request)) }
        #expect(try #require(try kernel.json(["ps", "-a"]) as? [[String: Any]]).isEmpty)
    }
}
