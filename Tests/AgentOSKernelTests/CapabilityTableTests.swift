@testable import AgentOSKernel
import AgentOSStore
import Foundation
import Logging
import Testing

@Suite("Capability table")
struct CapabilityTableTests {
    let directory: String
    let store: StateStore

    init() throws {
        directory = NSTemporaryDirectory() + "agentos-caps-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try StateStore(directory: directory)
    }

    func table() throws -> CapabilityTable {
        try CapabilityTable(store: store, events: EventHub(store: store), logger: Logger(label: "test"))
    }

    func allowed(_ decision: CapabilityTable.Decision) -> Bool {
        if case .allowed = decision { return true }
        return false
    }

    func reasons(_ decision: CapabilityTable.Decision) -> String {
        if case .denied(let reasons) = decision { return reasons.joined(separator: "; ") }
        return ""
    }

    @Test func aGrantAllowsWhatItCoversAndEveryDenialIsAnEvent() throws {
        let caps = try table()
        let grant = try caps.grant("capability://file\(directory)/data/**?action=read", to: "a1", agentName: "one",
                                   source: "operator")
        #expect(allowed(caps.check(agentID: "a1", agentName: "one", kind: .file, action: "read",
                                   resource: directory + "/data/x.txt")))
        let write = caps.check(agentID: "a1", agentName: "one", kind: .file, action: "write", resource: directory + "/data/x")
        #expect(reasons(write).contains("\(grant.id) (capability://file\(directory)/data/**?action=read) does not cover write"))
        #expect(reasons(caps.check(agentID: "a2", agentName: "two", kind: .file, action: "read",
                                   resource: directory + "/data/x")) == "a2 holds no file capability")
        #expect(reasons(caps.check(agentID: "a1", agentName: "one", kind: .http, action: "get", resource: "x.com/")) != "")
        let kinds = try store.events().map(\.kind)
        #expect(kinds == ["capability.granted", "capability.denied", "capability.denied", "capability.denied"])
        // The audit chain has every event, and the allowed check with the grant that decided it.
        let audit = try store.audit()
        #expect(audit.map(\.kind) == ["capability.granted", "capability.allowed", "capability.denied",
                                       "capability.denied", "capability.denied"])
        #expect(audit[1].data["capability"] == grant.id)
        #expect(try store.verifyAudit().firstBad == nil)
    }

    @Test func aSymlinkOutOfAGrantedDirIsOutside() throws {
        let caps = try table()
        try FileManager.default.createDirectory(atPath: directory + "/granted", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/secret", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: directory + "/granted/way-out", withDestinationPath: directory + "/secret")
        try caps.grant("capability://file\(directory)/granted/**?action=read", to: "a1", agentName: "one", source: "operator")
        #expect(!allowed(caps.check(agentID: "a1", agentName: "one", kind: .file, action: "read",
                                    resource: directory + "/granted/way-out/key")))
        #expect(!allowed(caps.check(agentID: "a1", agentName: "one", kind: .file, action: "read",
                                    resource: directory + "/granted/../secret/key")))
    }

    @Test func maxCountsUsesAndTheCountSurvivesAKernelRestart() throws {
        var caps = try table()
        try caps.grant("capability://tool/file.read?action=call&max=2", to: "a1", agentName: "one", source: "operator")
        for _ in 0..<2 {
            #expect(allowed(caps.check(agentID: "a1", agentName: "one", kind: .tool, action: "call", resource: "file.read")))
        }
        caps = try table()   // a new kernel on the same store
        let third = caps.check(agentID: "a1", agentName: "one", kind: .tool, action: "call", resource: "file.read")
        #expect(reasons(third).contains("used all 2 of its uses"))
        #expect(caps.remaining(try #require(caps.grants(of: "a1").first)).uses == 0)
    }

    @Test func rateIsASlidingWindowAndExpiryAMoment() throws {
        let caps = try table()
        try caps.grant("capability://tool/x?action=call&rate=2/min&expires=2000000000", to: "a1", agentName: "one",
                       source: "operator")
        let start: Int64 = 1_900_000_000_000
        #expect(allowed(caps.check(agentID: "a1", agentName: "one", kind: .tool, action: "call", resource: "x", now: start)))
        #expect(allowed(caps.check(agentID: "a1", agentName: "one", kind: .tool, action: "call", resource: "x", now: start + 1_000)))
        let third = caps.check(agentID: "a1", agentName: "one", kind: .tool, action: "call", resource: "x", now: start + 2_000)
        #expect(reasons(third).contains("rate 2/min reached (the next use in 58 s)"))
        #expect(caps.remaining(try #require(caps.grants(of: "a1").first), now: start + 2_000).rate == 0)
        #expect(allowed(caps.check(agentID: "a1", agentName: "one", kind: .tool, action: "call", resource: "x", now: start + 60_001)))
        #expect(reasons(caps.check(agentID: "a1", agentName: "one", kind: .tool, action: "call", resource: "x",
                                   now: 2_000_000_000_000)).contains("expired"))
    }

    @Test func delegationNarrowsCountsAgainstTheParentAndRevocationCascades() throws {
        let caps = try table()
        let parent = try caps.grant("capability://tool/**?action=call&max=3", to: "boss", agentName: "boss", source: "operator")
        #expect(throws: KernelError.self) {
            try caps.delegate("capability://tool/**?action=call", from: parent.id, holder: "boss", to: "w", childName: "w")
        }
        #expect(throws: KernelError.self) {
            try caps.delegate("capability://tool/x?action=call&max=1", from: parent.id, holder: "someone-else", to: "w", childName: "w")
        }
        let child = try caps.delegate("capability://tool/x?action=call&max=2", from: parent.id, holder: "boss", to: "w", childName: "w")
        #expect(child.parentID == parent.id)
        #expect(allowed(caps.check(agentID: "w", agentName: "w", kind: .tool, action: "call", resource: "x")))
        #expect(!allowed(caps.check(agentID: "w", agentName: "w", kind: .tool, action: "call", resource: "y")))
        #expect(allowed(caps.check(agentID: "boss", agentName: "boss", kind: .tool, action: "call", resource: "y")))
        // Parent: 2 of 3 used (one through the child); one left, for either.
        #expect(allowed(caps.check(agentID: "w", agentName: "w", kind: .tool, action: "call", resource: "x")))
        #expect(reasons(caps.check(agentID: "boss", agentName: "boss", kind: .tool, action: "call", resource: "z"))
                    .contains("used all 3 of its uses"))
        let revoked = try caps.revoke(parent.id, reason: "test")
        #expect(revoked == [parent.id, child.id])
        #expect(caps.grants(of: "w").isEmpty)
        #expect(try store.capabilities(includeRevoked: false).isEmpty)
        #expect(try store.capabilities(includeRevoked: true).map(\.revokeReason) == ["test", "test"])
    }

    @Test func manyGrantsStayApartByAgentAndDelegation() throws {
        let caps = try table()
        var firsts: [String] = []
        for agent in 0..<200 {
            for tool in 0..<5 {
                let record = try caps.grant("capability://tool/t\(agent).\(tool)?action=call", to: "a\(agent)",
                                            agentName: "a\(agent)", source: "operator")
                if tool == 0 { firsts.append(record.id) }
            }
        }
        #expect(caps.allGrants().count == 1_000)
        #expect(allowed(caps.check(agentID: "a7", agentName: "a7", kind: .tool, action: "call", resource: "t7.4")))
        #expect(!allowed(caps.check(agentID: "a7", agentName: "a7", kind: .tool, action: "call", resource: "t8.4")))
        #expect(reasons(caps.check(agentID: "a7", agentName: "a7", kind: .tool, action: "call", resource: "t8.4"))
                    .split(separator: ";").count == 5, "only a7's five grants were looked at")
        let child = try caps.delegate("capability://tool/t7.0?action=call", from: firsts[7], holder: "a7", to: "b", childName: "b")
        #expect(try caps.revoke(firsts[7], reason: "test") == [firsts[7], child.id])
        #expect(caps.grants(of: "a7").count == 4)
        #expect(caps.grants(of: "b").isEmpty)
        #expect(caps.grants(of: "a8").count == 5)
    }

    @Test func approvalIsSaidWithTheAllowance() throws {
        let caps = try table()
        try caps.grant("capability://shell?action=execute&approve=operator", to: "a1", agentName: "one", source: "operator")
        #expect(caps.check(agentID: "a1", agentName: "one", kind: .shell, action: "execute", resource: "/bin/ls")
                    == .allowed(grantID: try #require(caps.grants(of: "a1").first).record.id, approval: true))
    }
}
