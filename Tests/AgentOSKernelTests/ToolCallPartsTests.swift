@testable import AgentOSKernel
import AgentOSProtocol
import AgentOSStore
import Foundation
import Testing

@Suite("Tool calls: URLs as http.fetch checks them, approvals")
struct ToolCallPartsTests {
    @Test func aURLBecomesTheAskItIsCheckedAs() throws {
        let target = try HTTPFetchTool.target("https://API.Example.com/v1/items/")
        #expect(target.host == "api.example.com")
        #expect(target.port == 443)
        #expect(target.resource == "api.example.com:443/v1/items")
        #expect(try HTTPFetchTool.target("http://example.com").resource == "example.com:80/")
        #expect(try HTTPFetchTool.target("http://example.com:8080/a?q=1#f").resource == "example.com:8080/a")
        #expect(try HTTPFetchTool.target("http://[::1]:9/x").host == "::1")
        for bad in ["ftp://example.com/x", "file:///etc/passwd", "http://user:pw@example.com/", "http:///nohost",
                    "http://example.com/%2e%2e/secret", "not a url"] {
            #expect(throws: KernelError.self, "\(bad)") { _ = try HTTPFetchTool.target(bad) }
        }
    }

    @Test func loopbackLinkLocalAndUnspecifiedAddressesAreInternal() {
        for address in ["127.0.0.1", "127.8.9.10", "::1", "169.254.169.254", "::ffff:127.0.0.1", "fe80::1", "0.0.0.0", "::"] {
            #expect(HTTPFetchTool.isInternal(address), "\(address)")
        }
        for address in ["10.0.0.1", "192.168.1.1", "93.184.216.34", "2001:db8::1", "::ffff:8.8.8.8"] {
            #expect(!HTTPFetchTool.isInternal(address), "\(address)")
        }
    }

    func pending(_ id: String, agent: String = "a1", waitMilliseconds: Int64 = 10_000) -> Agentos_V1_PendingCall {
        var call = Agentos_V1_PendingCall()
        call.callID = id
        call.agent = agent
        call.agentName = "agent-" + agent
        call.tool = "file.read"
        call.requestedAtNs = unixNanoseconds()
        call.deadlineNs = call.requestedAtNs + waitMilliseconds * 1_000_000
        return call
    }

    func approvals() throws -> (Approvals, StateStore) {
        let directory = NSTemporaryDirectory() + "agentos-approvals-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = try StateStore(directory: directory)
        return (Approvals(events: EventHub(store: store)), store)
    }

    @Test func aWaitingCallIsListedAndDecidedOnceByItsIDOrAUniquePrefix() async throws {
        let (gate, store) = try approvals()
        async let first = gate.decision(for: pending("abc123"))
        async let second = gate.decision(for: pending("abd456"))
        var listed: [String] = []
        for _ in 0..<200 where listed.count < 2 {
            listed = gate.pending().map(\.callID)
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(Set(listed) == ["abc123", "abd456"])
        #expect(throws: KernelError.self) { _ = try gate.decide("ab", approve: true, reason: "") }   // ambiguous
        #expect(throws: KernelError.self) { _ = try gate.decide("zzz", approve: true, reason: "") }  // no such call
        let approved = try gate.decide("abc", approve: true, reason: "fine")
        #expect(approved.decision == "approved")
        _ = try gate.decide("abd456", approve: false, reason: "")
        #expect(await first == .approved(reason: "approved by the operator: fine"))
        #expect(await second == .denied(reason: "denied by the operator"))
        // Decided once: a second decision finds nothing waiting.
        #expect(throws: KernelError.self) { _ = try gate.decide("abc123", approve: false, reason: "") }
        #expect(gate.pending().isEmpty)
        let kinds = try store.events().map(\.kind)
        #expect(kinds.filter { $0 == "approval.requested" }.count == 2)
        #expect(kinds.contains("approval.approved") && kinds.contains("approval.denied"))
    }

    @Test func aCallNobodyDecidesIsDeniedAtItsDeadlineAndOneWhoseCallerGoesIsAbandoned() async throws {
        let (gate, store) = try approvals()
        let expired = await gate.decision(for: pending("late", waitMilliseconds: 50))
        #expect(expired == .denied(reason: "no operator decided within the approval timeout"))
        let waiter = Task { await gate.decision(for: pending("gone")) }
        for _ in 0..<200 where gate.pending().isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        waiter.cancel()
        #expect(await waiter.value == .denied(reason: "the calling agent went away"))
        #expect(gate.pending().isEmpty)
        let kinds = try store.events().map(\.kind)
        #expect(kinds.contains("approval.expired") && kinds.contains("approval.abandoned"))
    }
}
