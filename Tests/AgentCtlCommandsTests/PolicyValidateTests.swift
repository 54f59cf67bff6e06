@testable import AgentCtlCommands
import AgentOSPolicy
import ArgumentParser
import Foundation
import Testing

@Suite("agentctl policy validate")
struct PolicyValidateTests {
    /// Writes `text` to a fresh temporary file and returns its path.
    private func temporaryPolicy(_ text: String, name: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("agentctl-policy-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func parsesFilesAndJSON() throws {
        let command = try #require(try AgentCtl.parseAsRoot(["policy", "validate", "a.yaml", "b.yaml", "--json"])
            as? PolicyValidateCommand)
        #expect(command.files == ["a.yaml", "b.yaml"])
        #expect(command.output.json)
        #expect(throws: (any Error).self) { try AgentCtl.parseAsRoot(["policy", "validate"]) }
        #expect(throws: (any Error).self) { try AgentCtl.parseAsRoot(["policy", "frobnicate", "a.yaml"]) }
    }

    @Test func reportsEachFileOkOrEveryProblem() throws {
        let good = try temporaryPolicy("""
            version: 1
            name: good
            supervisor:
              children:
                - {id: a, program: /bin/sh}
                - id: sub
                  supervisor: {children: [{id: b, program: /bin/sh}]}
            """, name: "good.yaml")
        let bad = try temporaryPolicy("""
            version: 1
            name: bad
            supervisor:
              intensity: -1
              children:
                - {id: a, program: /bin/sh, restart: sometimes}
            """, name: "bad.yaml")
        let command = try #require(try AgentCtl.parseAsRoot(["policy", "validate", good, bad, "/nonexistent/x.yaml"])
            as? PolicyValidateCommand)
        let outcomes = command.outcomes()
        #expect(outcomes.map(\.file) == [good, bad, "/nonexistent/x.yaml"])
        let document = try #require(outcomes[0].document)
        #expect(PolicyValidateCommand.summary(document) == "policy good: 2 supervisors, 2 workers")
        #expect(outcomes[1].document == nil)
        #expect(outcomes[1].problems.map(\.description) == [
            "\(bad):4:14: supervisor.intensity: must be 0 or more, not -1",
            "\(bad):6:42: supervisor.children[0].restart: unknown value 'sometimes': use one of permanent, transient, temporary",
        ])
        #expect(outcomes[2].problems.map(\.description) == ["/nonexistent/x.yaml: no such file"])

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = try #require(String(data: try encoder.encode(PolicyValidationJSON(Array(outcomes.prefix(2)))),
                                       encoding: .utf8))
        #expect(json == """
            {"files":[{"file":"\(good)","ok":true,"policy":"good","problems":[],"supervisors":2,"workers":2},\
            {"file":"\(bad)","ok":false,"problems":[{"column":14,"field":"supervisor.intensity","file":"\(bad)",\
            "line":4,"message":"must be 0 or more, not -1"},{"column":42,"field":"supervisor.children[0].restart",\
            "file":"\(bad)","line":6,"message":"unknown value 'sometimes': use one of permanent, transient, temporary"}]}],\
            "ok":false}
            """)
    }

    @Test func everyShippedExampleValidatesOnThisHost() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Policies/examples")
        let files = try FileManager.default.contentsOfDirectory(atPath: examples.path)
            .filter { $0.hasSuffix(".yaml") }.map { examples.appendingPathComponent($0).path }
            // duo's programs are installed by Integration/install-examples.sh (test.sh runs it first).
            .filter { !$0.hasSuffix("/duo.yaml") || FileManager.default.isExecutableFile(atPath: "/opt/agentos/bin/agentos-example-planner") }
        let command = try #require(try AgentCtl.parseAsRoot(["policy", "validate"] + files) as? PolicyValidateCommand)
        #expect(!files.isEmpty)
        #expect(command.outcomes().allSatisfy { $0.document != nil && $0.problems.isEmpty })
    }
}
