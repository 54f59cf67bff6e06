import AgentOSStore
import Foundation
import Testing

@Suite("Memory in the state store")
struct MemoryStoreTests {
    let store: StateStore

    init() throws {
        let directory = NSTemporaryDirectory() + "agentos-memory-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try StateStore(directory: directory)
    }

    @Test func searchRanksByRelevanceStaysInItsNamespaceAndFollowsUpdates() throws {
        try store.putMemory(namespace: "a", key: "one", value: "the cat sat on the mat", tags: ["pets"], expiresAt: nil, now: 1)
        try store.putMemory(namespace: "a", key: "two", value: "cat cat cat", tags: [], expiresAt: nil, now: 1)
        try store.putMemory(namespace: "b", key: "three", value: "cat in another namespace", tags: [], expiresAt: nil, now: 1)
        let hits = try store.searchMemory(namespace: "a", query: "cat", now: 2, limit: 10)
        #expect(hits.map(\.key) == ["two", "one"])
        #expect((hits.first?.score ?? 0) > (hits.last?.score ?? 0))
        #expect(try store.searchMemory(namespace: "a", query: "pets", now: 2, limit: 10).map(\.key) == ["one"])
        // An update replaces what is indexed.
        try store.putMemory(namespace: "a", key: "two", value: "dog", tags: [], expiresAt: nil, now: 3)
        #expect(try store.searchMemory(namespace: "a", query: "cat", now: 4, limit: 10).map(\.key) == ["one"])
        #expect(try store.searchMemory(namespace: "a", query: "dog", now: 4, limit: 10).map(\.key) == ["two"])
        // FTS5 syntax is text.
        #expect(try store.searchMemory(namespace: "a", query: #"NEAR( "cat" OR * -"#, now: 4, limit: 10).map(\.key) == ["one"])
        #expect(try store.deleteMemory(namespace: "a", key: "one"))
        #expect(try store.searchMemory(namespace: "a", query: "cat", now: 5, limit: 10).isEmpty)
    }

    @Test func expiredEntriesAreNeitherFoundNorListed() throws {
        try store.putMemory(namespace: "a", key: "k", value: "short lived", tags: [], expiresAt: 100, now: 1)
        #expect(try store.memory(namespace: "a", key: "k", now: 99)?.value == "short lived")
        #expect(try store.memory(namespace: "a", key: "k", now: 100) == nil)
        #expect(try store.searchMemory(namespace: "a", query: "short", now: 100, limit: 10).isEmpty)
        #expect(try store.deleteExpiredMemory(now: 100) == 1)
        try store.putMemory(namespace: "working:p/x", key: "k", value: "v", tags: [], expiresAt: nil, now: 1)
        try store.putMemory(namespace: "working:pp/x", key: "k", value: "v", tags: [], expiresAt: nil, now: 1)
        #expect(try store.deleteMemory(namespacePrefix: "working:p/") == 1)
        #expect(try store.memory(namespace: "working:pp/x", key: "k", now: 2) != nil)
    }
}
