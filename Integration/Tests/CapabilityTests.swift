import Foundation
import Testing

/// The capability table through agentctl, as an operator uses it.
@Suite("Capabilities", .serialized)
struct CapabilityTests {
    func grants(_ kernel: KernelProcess, _ agent: String? = nil) throws -> [[String: Any]] {
        try #require(try kernel.json(["cap", "ls"] + (agent.map { [$0] } ?? [])) as? [[String: Any]])
    }

    @Test func grantListExplainAndRevokeThroughAgentctl() throws {
        let kernel = try KernelProcess(label: "capctl")
        defer { kernel.stop() }
        let data = try temporaryDirectory("capdata")
        try "x".write(toFile: data + "/a.txt", atomically: true, encoding: .utf8)
        let secret = try temporaryDirectory("capsecret")
        try FileManager.default.createSymbolicLink(atPath: data + "/out", withDestinationPath: secret)
        _ = try kernel.run(["--name", "scraper", "--cap", "capability://file\(data)/**?action=read&max=5",
                            "--", "/bin/sleep", "600"])
        let started = try grants(kernel, "scraper")
        #expect(started.count == 1)
        #expect(started.first?["source"] as? String == "operator")
        #expect(started.first?["remaining_uses"] as? Int == 5)

        let granted = try kernel.ctl(["cap", "grant", "scraper", "capability://http/*.example.com/v1/**?action=get&rate=10/min"])
        #expect(granted.status == 0)
        let httpID = granted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(httpID.count == 12)

        let allowed = try kernel.ctl(["cap", "explain", "scraper", "read", "file\(data)/a.txt"])
        #expect(allowed.status == 0)
        #expect(allowed.stdout.hasPrefix("allowed by \(started.first?["id"] as? String ?? "?")"))
        // Through a symlink out of the granted dir: outside, whatever the path says.
        let escaped = try kernel.ctl(["cap", "explain", "scraper", "read", "file\(data)/out/key"])
        #expect(escaped.status == 1)
        #expect(escaped.stdout.contains("does not cover read on \(secret)/key"), "\(escaped.stdout)")
        let denied = try kernel.ctl(["cap", "explain", "--json", "scraper", "get", "http/api.example.com/v2/x"])
        #expect(denied.status == 1)
        let explained = try #require(try JSONSerialization.jsonObject(with: Data(denied.stdout.utf8)) as? [String: Any])
        #expect(explained["allowed"] as? Bool == false)
        #expect((explained["reasons"] as? [String])?.first?.contains("does not cover get on api.example.com/v2/x") == true)
        // Explaining counts nothing.
        #expect(try grants(kernel, "scraper").first?["uses"] as? Int == 0)

        let malformed = try kernel.ctl(["cap", "grant", "scraper", "capability://fiel/x?action=read"])
        #expect(malformed.status == 1)
        #expect(malformed.stderr.contains("unknown capability kind 'fiel'"))
        #expect(try kernel.ctl(["audit", "--agent", "scraper"]).stdout.contains("capability.refused"))

        let revoked = try kernel.ctl(["cap", "revoke", httpID, "--reason", "no longer needed"])
        #expect(revoked.stdout == httpID + "\n")
        #expect(try grants(kernel).count == 1)
        let events = try kernel.ctl(["events"]).stdout
        #expect(events.contains("capability.granted"))
        #expect(events.contains("capability \(httpID) revoked (no longer needed)"))
    }

    /// No agent outlives its kernel, and no grant does: after kill -9 the
    /// next kernel revokes what the lost agents held.
    @Test func grantsOfAgentsLostWithTheKernelAreRevokedAtTheNextStart() throws {
        let kernel = try KernelProcess(label: "caplost")
        defer { kernel.stop() }
        _ = try kernel.run(["--name", "doomed", "--cap", "capability://tool/x.*?action=call", "--", "/bin/sleep", "600"])
        #expect(try grants(kernel).count == 1)
        kernel.kill9()
        try kernel.start()
        #expect(try grants(kernel).isEmpty)
        #expect(try kernel.ctl(["events"]).stdout.contains("its agent was lost when the kernel stopped"))
    }

    /// An agent, on its own socket, lists its handles and asks; an allowed
    /// ask counts against the grant and is an audit record, a denied one an event.
    @Test func anAgentAsksOnItsOwnSocket() throws {
        let kernel = try KernelProcess(label: "capagent")
        defer { kernel.stop() }
        let data = try temporaryDirectory("capagentdata")
        let id = try kernel.run(Binaries.demoAgentSandboxFlags + [
            "--name", "asker", "--cap", "capability://file\(data)/**?action=read&max=1",
            "--env", "AGENTOS_DEMO_ASK=read file\(data)/a.txt;read file\(data)/b.txt;write file\(data)/a.txt",
            "--", Binaries.demoAgent, "1", "0.05",
        ])
        #expect(try kernel.ctl(["wait", id]).status == 0)
        let log = try kernel.ctl(["logs", id]).stdout
        #expect(log.contains("holds "), "\(log)")
        #expect(log.contains("read file\(data)/a.txt: allowed by"), "\(log)")
        #expect(log.contains("read file\(data)/b.txt: denied (") && log.contains("used all 1 of its uses"), "\(log)")
        #expect(log.contains("write file\(data)/a.txt: denied ("), "\(log)")
        let audit = try #require(try kernel.json(["audit", "--agent", id]) as? [[String: Any]])
        let kinds = audit.compactMap { $0["kind"] as? String }
        #expect(kinds.filter { $0 == "capability.allowed" }.count == 1)
        #expect(kinds.filter { $0 == "capability.denied" }.count == 2)
        // Agent calls are for agents: the operator socket refuses them.
        let client = try kernel.client()
        #expect(throws: (any Error).self) { try client.call(.myCapabilities(.init())) }
    }

    @Test func badAsksAreOneLineErrors() throws {
        let kernel = try KernelProcess(label: "capbad")
        defer { kernel.stop() }
        let cases: [([String], String)] = [
            (["run", "--cap", "capability://file/srv?action=fly", "--", "/bin/true"], "'fly' is not a file action"),
            (["run", "--cap", "file:///srv", "--", "/bin/true"], "a capability starts with 'capability://'"),
            (["cap", "grant", "nobody", "capability://tool?action=call"], "nobody"),
            (["cap", "revoke", "000000000000"], "no live capability 000000000000"),
        ]
        for (arguments, expected) in cases {
            let result = try kernel.ctl(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
        #expect(try #require(try kernel.json(["ps", "-a"]) as? [[String: Any]]).isEmpty, "a refused run started nothing")
        let ended = try kernel.run(["--", "/bin/true"])
        _ = try kernel.ctl(["wait", ended])
        let late = try kernel.ctl(["cap", "grant", ended, "capability://tool?action=call"])
        #expect(late.status != 0)
        #expect(late.stderr.contains("capabilities go to live agents"), "\(late.stderr)")
        let explain = try kernel.ctl(["cap", "explain", ended, "read", "srv/x"])
        #expect(explain.stderr.contains("start with the kind"), "\(explain.stderr)")
    }

    @Test func aPolicysWorkersGetTheirCapabilitiesAtEveryStart() throws {
        let kernel = try KernelProcess(label: "cappolicy")
        defer { kernel.stop() }
        let file = kernel.directory + "/caps.yaml"
        try """
            version: 1
            name: capteam
            supervisor:
              children:
                - id: reader
                  program: /bin/sleep
                  args: ["700"]
                  capabilities:
                    - capability://memory/shared/team?action=read,write
                    - capability://tool/file.*?action=call&max=3
            """.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try kernel.ctl(["apply", file]).status == 0)
        let first = try grants(kernel)
        #expect(first.count == 2)
        #expect(Set(first.compactMap { $0["source"] as? String }) == ["policy:capteam/reader"])
        #expect(first.first?["agent_name"] as? String == "capteam.reader")
        // Restarted: the ended incarnation's grants go with it, the new one
        // (a new agent id) holds them again.
        let before = try #require(first.first?["agent"] as? String)
        #expect(try kernel.ctl(["kill", before]).status == 0)
        #expect(eventually {
            let now = (try? grants(kernel)) ?? []
            return now.count == 2 && now.allSatisfy { ($0["agent"] as? String) != before }
        })
        #expect(try kernel.ctl(["events"]).stdout.contains("revoked (the agent ended)"))
    }
}
