@testable import AgentOSStore
import Foundation
import Testing

private func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "agentos-store-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func agent(_ id: String, name: String, state: AgentRecord.State = .running, boot: String,
                   created: Int64 = 1) -> AgentRecord {
    AgentRecord(id: id, name: name, state: state, program: "/bin/true", argv: ["/bin/true", "a b"],
                environment: ["K": "V=1"], workDir: "/w", logPath: "/l", pid: 42, bootID: boot,
                createdAt: created, startedAt: created, limits: ["pids": "64"])
}

private func event(_ kind: String, _ agentID: String = "") -> EventRecord {
    EventRecord(time: 1, kind: kind, agentID: agentID, message: kind)
}

@Suite("State store")
struct StateStoreTests {
    @Test func appliesEveryMigrationOnAFreshDatabase() throws {
        let store = try StateStore(directory: try temporaryDirectory())
        #expect(try store.appliedMigrations() == ["v1-agents-events-boots", "v2-agent-limits", "v3-agent-sandbox",
                                                  "v4-policies-checkpoints", "v5-capabilities", "v6-audit-chain", "v7-memory", "v8-mailboxes", "v9-message-streams", "v10-memory-index-by-namespace", "v11-memory-entry-counts",
                                                  "v12-capability-tokens", "v13-goals", "v14-model-budgets"])
    }

    @Test func policiesAreReplacedByNameAndSurviveAReopen() throws {
        let directory = try temporaryDirectory()
        do {
            let store = try StateStore(directory: directory)
            try store.savePolicy(PolicyRecord(name: "team", file: "/a.yaml", source: "v1", appliedAt: 10),
                                 event: event("policy.applied"))
            try store.savePolicy(PolicyRecord(name: "team", file: "/a.yaml", source: "v2", appliedAt: 20),
                                 event: event("policy.applied"))
            try store.savePolicy(PolicyRecord(name: "pool", file: "/b.yaml", source: "p", appliedAt: 15),
                                 event: event("policy.applied"))
        }
        let store = try StateStore(directory: directory)
        #expect(try store.policies().map(\.name) == ["pool", "team"])
        #expect(try store.policies().last?.source == "v2")
        #expect(try store.events().filter { $0.kind == "policy.applied" }.count == 3)
    }

    @Test func checkpointsKeepTheLastAndGoWithTheirPolicy() throws {
        let store = try StateStore(directory: try temporaryDirectory())
        try store.savePolicy(PolicyRecord(name: "team", file: "/a.yaml", source: "v1", appliedAt: 10),
                             event: event("policy.applied"))
        try store.saveCheckpoint(CheckpointRecord(policy: "team", path: "w", agentID: "a1", savedAt: 1, data: [1, 2]))
        try store.saveCheckpoint(CheckpointRecord(policy: "team", path: "w", agentID: "a2", savedAt: 2, data: [3]))
        try store.saveCheckpoint(CheckpointRecord(policy: "other", path: "x", agentID: "a3", savedAt: 3, data: []))
        #expect(try store.checkpoint(policy: "team", path: "w")?.data == [3])
        #expect(try store.checkpoint(policy: "team", path: "w")?.agentID == "a2")
        #expect(try store.checkpoints().count == 2)
        try store.deletePolicy("team", event: event("policy.deleted"))
        #expect(try store.checkpoint(policy: "team", path: "w") == nil)
        #expect(try store.checkpoints().map(\.policy) == ["other"])
        #expect(try store.policies().isEmpty)
    }

    @Test func usesWriteAheadLogging() throws {
        let directory = try temporaryDirectory()
        _ = try StateStore(directory: directory)
        let header = try #require(FileManager.default.contents(atPath: directory + "/" + StateStore.fileName))
        // SQLite header bytes 18 and 19 are 2 in WAL mode.
        #expect(header[18] == 2 && header[19] == 2)
    }

    @Test func keepsAgentsAndTheirEventsAcrossReopen() throws {
        let directory = try temporaryDirectory()
        do {
            let store = try StateStore(directory: directory)
            _ = try store.beginBoot(id: "b1", pid: 1, at: 1)
            try store.insert(agent("aaa111", name: "alpha", boot: "b1"), event: event("agent.spawned", "aaa111"))
        }
        let reopened = try StateStore(directory: directory)
        let stored = try #require(try reopened.agent(id: "aaa111"))
        #expect(stored.argv == ["/bin/true", "a b"])
        #expect(stored.environment == ["K": "V=1"])
        #expect(stored.limits == ["pids": "64"])
        #expect(try reopened.events(agentID: "aaa111").map(\.kind) == ["agent.spawned"])
    }

    @Test func aNameBelongsToOneLiveAgentAtATime() throws {
        let store = try StateStore(directory: try temporaryDirectory())
        _ = try store.beginBoot(id: "b1", pid: 1, at: 1)
        try store.insert(agent("aaa111", name: "alpha", boot: "b1"), event: event("e"))
        #expect(throws: StoreError.self) {
            try store.insert(agent("bbb222", name: "alpha", boot: "b1"), event: event("e"))
        }
        var ended = try #require(try store.agent(id: "aaa111"))
        ended.state = .completed
        ended.exit = ExitRecord(reason: "exited", code: 0)
        try store.update(ended, event: event("agent.exited"))
        try store.insert(agent("bbb222", name: "alpha", boot: "b1", created: 2), event: event("e"))
        // The name resolves to the live agent first.
        #expect(try store.resolve("alpha").id == "bbb222")
    }

    @Test func resolvesIdsNamesAndUniquePrefixes() throws {
        let store = try StateStore(directory: try temporaryDirectory())
        _ = try store.beginBoot(id: "b1", pid: 1, at: 1)
        try store.insert(agent("abc123", name: "one", boot: "b1"), event: event("e"))
        try store.insert(agent("abd456", name: "two", boot: "b1"), event: event("e"))
        #expect(try store.resolve("abc123").name == "one")
        #expect(try store.resolve("two").id == "abd456")
        #expect(try store.resolve("abc").id == "abc123")
        #expect(throws: StoreError.self) { try store.resolve("ab") }     // too short for a prefix
        do {
            _ = try store.resolve("abx")
            Issue.record("resolved a missing agent")
        } catch let error as StoreError {
            #expect(error.code == .notFound)
        }
        let store2 = try StateStore(directory: try temporaryDirectory())
        _ = try store2.beginBoot(id: "b1", pid: 1, at: 1)
        try store2.insert(agent("fff111", name: "x", boot: "b1"), event: event("e"))
        try store2.insert(agent("fff222", name: "y", boot: "b1"), event: event("e"))
        do {
            _ = try store2.resolve("fff")
            Issue.record("ambiguous prefix resolved")
        } catch let error as StoreError {
            #expect(error.code == .ambiguous)
        }
    }

    @Test func anUncleanBootLeavesLostAgentsAndARecoveryEvent() throws {
        let directory = try temporaryDirectory()
        do {
            let store = try StateStore(directory: directory)
            _ = try store.beginBoot(id: "b1", pid: 100, at: 1)
            try store.insert(agent("aaa111", name: "alive", boot: "b1"), event: event("agent.spawned", "aaa111"))
            var done = agent("bbb222", name: "done", boot: "b1")
            try store.insert(done, event: event("agent.spawned", "bbb222"))
            done.state = .completed
            done.exit = ExitRecord(reason: "exited", code: 0)
            try store.update(done, event: event("agent.exited", "bbb222"))
            // No endBoot: the kernel was killed.
        }
        let store = try StateStore(directory: directory)
        let recovery = try store.beginBoot(id: "b2", pid: 200, at: 5)
        #expect(recovery.uncleanBoots.map(\.id) == ["b1"])
        #expect(recovery.lostAgents.map(\.id) == ["aaa111"])
        let lost = try #require(try store.agent(id: "aaa111"))
        #expect(lost.state == .lost)
        #expect(lost.exit?.reason == "lost")
        #expect(lost.endedAt == 5)
        #expect(try store.agent(id: "bbb222")?.state == .completed)
        #expect(recovery.events.map(\.kind) == ["kernel.recovered", "agent.lost", "kernel.started"])
        #expect(try store.agents(includeEnded: false).isEmpty)
        #expect(try store.agents(includeEnded: true).count == 2)

        try store.endBoot(id: "b2", at: 9)
        let again = try store.beginBoot(id: "b3", pid: 300, at: 10)
        #expect(again.uncleanBoots.isEmpty)
        #expect(again.lostAgents.isEmpty)
    }

    @Test func eventsPageBySequenceAndLimit() throws {
        let store = try StateStore(directory: try temporaryDirectory())
        var seqs: [Int64] = []
        for index in 0..<10 { seqs.append(try store.append(event("k\(index)", index % 2 == 0 ? "even" : "odd")).seq) }
        #expect(seqs == Array(1...10))
        #expect(try store.events(since: 7).map(\.seq) == [8, 9, 10])
        #expect(try store.events(limit: 3).map(\.seq) == [8, 9, 10])
        #expect(try store.events(since: 2, limit: 2, agentID: "even").map(\.seq) == [7, 9])
        #expect(try store.lastEventSeq() == 10)
        #expect(try store.counts().live == 0)
    }
}

@Suite("State store JSON columns")
struct StoreJSONTests {
    @Test func handWrittenJSONDecodesToTheSameValues() throws {
        let tricky = ["", "plain", "quote\"s", "back\\slash", "new\nline\ttab\r", "\u{01}\u{1F}ctl", "ünïcødé 🚀", "{\"x\":1}"]
        let list = try JSONDecoder().decode([String].self, from: Data(StateStore.json(tricky).utf8))
        #expect(list == tricky)
        let map = Dictionary(uniqueKeysWithValues: tricky.enumerated().map { ("k\($0.offset)" + $0.element, $0.element) })
        let decoded = try JSONDecoder().decode([String: String].self, from: Data(StateStore.json(map).utf8))
        #expect(decoded == map)
    }

    @Test func auditHashesKeepFieldBordersApart() {
        let one = StateStore.auditHash(previous: "0", seq: 1, time: 1, kind: "k", agentID: "a1", message: "x\ny", data: "{}")
        let other = StateStore.auditHash(previous: "0", seq: 1, time: 1, kind: "k", agentID: "a1\nx", message: "y", data: "{}")
        #expect(one != other)
        #expect(one.count == 64)
    }

    /// The chain's hashes are what every earlier release wrote (lower-case
    /// hex of SHA-256 over length-prefixed fields), or old chains would no
    /// longer verify; the value is Python's hashlib of the same bytes.
    @Test func anAuditHashIsTheSameBytesItAlwaysWas() {
        #expect(StateStore.auditHash(previous: "0", seq: 1, time: 1, kind: "k", agentID: "a1", message: "x", data: "{}")
                    == "dc3b995af1260da1a3e85fa0bf15b5b4d5f76386ddc345760237f84a6c66151c")
        #expect(StateStore.hex([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
    }
}
