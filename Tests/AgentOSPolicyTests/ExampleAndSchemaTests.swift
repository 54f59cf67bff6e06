import AgentOSSupervision
import Foundation
import Testing
@testable import AgentOSPolicy

/// The shipped examples parse, and the JSON Schema describes exactly the
/// keys and values the parser accepts, so the two cannot drift apart.
/// Whether Integration/install-examples.sh has put duo.yaml's programs in place.
let exampleAgentsInstalled = FileManager.default.isExecutableFile(atPath: "/opt/agentos/bin/agentos-example-planner")

@Suite("Examples and the JSON Schema")
struct ExampleAndSchemaTests {
    @Test func everyExampleParsesOnThisHostAndReferencesTheSchema() throws {
        let files = try exampleFiles()
        #expect(Set(files.map(\.lastPathComponent)).isSuperset(of: ["team.yaml", "pipeline.yaml", "pool.yaml", "demo.yaml"]))
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            #expect(text.hasPrefix("# yaml-language-server: $schema=../schema/policy.schema.json\n"), "\(file.lastPathComponent)")
            // The real filesystem: examples use programs of a stock Debian
            // host, except duo's, which Integration/install-examples.sh puts
            // under /opt/agentos (test.sh runs it first).
            if file.lastPathComponent == "duo.yaml", !exampleAgentsInstalled { continue }
            let document = try PolicyParser().parse(text: text, file: file.path)
            #expect(document.name + ".yaml" == file.lastPathComponent)
        }
    }

    @Test func examplesShowWhatTheyAreFor() throws {
        func load(_ name: String) throws -> PolicyDocument {
            try testParser.parse(contentsOf: policiesDirectory.appendingPathComponent("examples/\(name).yaml").path)
        }
        #expect(try load("team").root.strategy == .oneForOne)
        #expect(try load("pipeline").root.strategy == .restForOne)
        let pool = try load("pool")
        let nested = pool.root.children.compactMap { child -> SupervisorSpec? in
            if case .supervisor(let spec) = child.kind { return spec }
            return nil
        }
        #expect(nested.contains { $0.strategy == .dynamic && $0.maxChildren != nil })
        let demo = try load("demo")
        #expect(demo.supervisorCount == 2 && (2...4).contains(demo.workerCount))
        #expect(demo.launches.values.allSatisfy { $0.program == "/bin/sh" })
    }

    private func schema() throws -> [String: Any] {
        let data = try Data(contentsOf: policiesDirectory.appendingPathComponent("schema/policy.schema.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func object(_ schema: [String: Any], _ definition: String?) throws -> [String: Any] {
        guard let definition else { return schema }
        let definitions = try #require(schema["$defs"] as? [String: Any])
        return try #require(definitions[definition] as? [String: Any])
    }

    private func properties(_ object: [String: Any]) throws -> [String: [String: Any]] {
        try #require(object["properties"] as? [String: [String: Any]])
    }

    @Test func schemaKeysAreExactlyTheParsersKeys() throws {
        let schema = try schema()
        let pairs: [(String?, [String])] = [
            (nil, PolicyKeys.document), ("supervisor", PolicyKeys.supervisor), ("child", PolicyKeys.child),
            ("sandbox", PolicyKeys.sandbox), ("backoff", PolicyKeys.backoff),
        ]
        for (definition, keys) in pairs {
            let object = try object(schema, definition)
            #expect(Set(try properties(object).keys) == Set(keys), "\(definition ?? "top")")
            #expect(object["additionalProperties"] as? Bool == false, "\(definition ?? "top")")
        }
    }

    @Test func schemaEnumsAreExactlyTheParsersValues() throws {
        let schema = try schema()
        func values(_ definition: String, _ key: String) throws -> Set<String> {
            let property = try #require(try properties(try object(schema, definition))[key])
            return Set(try #require(property["enum"] as? [String]))
        }
        #expect(try values("supervisor", "strategy") == Set(Strategy.allCases.map(\.rawValue)))
        #expect(try values("supervisor", "auto_shutdown") == Set(AutoShutdown.allCases.map(\.rawValue)))
        #expect(try values("child", "restart") == Set(RestartType.allCases.map(\.rawValue)))
        #expect(try values("child", "readiness") == Set(WorkerLaunch.Readiness.allCases.map(\.rawValue)))
        #expect(try values("sandbox", "net") == Set(NetworkMode.allCases.map(\.rawValue)))
    }

    @Test func everySchemaFieldIsDescribedAndOptionalOnesHaveDefaults() throws {
        let schema = try schema()
        // Optional fields whose absence means "none" rather than a value.
        let noDefault: Set = ["template", "max_children", "backoff", "workdir", "sandbox.memory", "sandbox.cpu",
                              "sandbox.timeout", "backoff.max", "supervisor", "program", "name", "id", "initial",
                              "mcp_server", "llm", "budget"]
        for definition in [nil, "supervisor", "child", "sandbox", "backoff"] {
            let object = try object(schema, definition)
            let required = Set(object["required"] as? [String] ?? [])
            for (key, property) in try properties(object) {
                #expect((property["description"] as? String)?.isEmpty == false, "\(key) has no description")
                let qualified = definition.map { ["sandbox", "backoff"].contains($0) ? "\($0).\(key)" : key } ?? key
                if !required.contains(key) && !noDefault.contains(qualified) && !noDefault.contains(key) {
                    #expect(property["default"] != nil, "\(qualified) has no default")
                }
            }
        }
    }
}
