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

    @Test func phrasesAndPrefixesWorkAndEverythingElseIsText() throws {
        try store.putMemory(namespace: "long-term:team/a", key: "one", value: "the cat sat on the mat", tags: [], expiresAt: nil, now: 1)
        try store.putMemory(namespace: "long-term:team/a", key: "two", value: "catalogue of dogs", tags: [], expiresAt: nil, now: 1)
        try store.putMemory(namespace: "long-term:team/b", key: "secret", value: "the cat of b", tags: [], expiresAt: nil, now: 1)
        func keys(_ query: String) throws -> [String] {
            try store.searchMemory(namespace: "long-term:team/a", query: query, now: 2, limit: 10).map(\.key).sorted()
        }
        #expect(try keys(#""sat on""#) == ["one"])
        #expect(try keys(#""on sat""#).isEmpty)            // a phrase keeps its order
        #expect(try keys("cat*") == ["one", "two"])         // a prefix
        #expect(try keys("cat") == ["one"])                 // a word is a whole word
        #expect(try keys("dog* mat") == ["one", "two"])     // any term matches
        // FTS5 syntax, column filters and quote tricks are text, and never
        // reach another namespace.
        #expect(try keys(#"cat" OR namespace : "b"#) == ["one"])
        #expect(try keys(#"{value tags namespace} : cat"#) == ["one"])
        #expect(try keys("NOT cat") == ["one"])
        #expect(try keys("^the + ( ) * - \" :").contains("one"))
        #expect(try keys("* - : ( )").isEmpty)
        #expect(try keys("").isEmpty)
        // Odd bytes are text too; diacritics fold (the unicode61 tokenizer).
        #expect(try keys("\u{0}\u{7}🐈 ca\u{301}t") == ["one"])
        #expect(StateStore.ftsQuery(#"say "hi there" ok*"#) == #""say" OR "hi there" OR "ok"*"#)
        #expect(StateStore.ftsQuery(#"a"b"#) == #""a""b""#)
        #expect(StateStore.ftsQuery("  ") == nil)
    }

    @Test func aSearchRanksTheNewestMatchesWhenTooManyMatch() throws {
        let window = StateStore.searchWindow
        for index in 0..<(window + 50) {
            try store.putMemory(namespace: "n", key: "k\(index)", value: "common word \(index % 7 == 0 ? "rare" : "")",
                                tags: [], expiresAt: nil, now: 1)
        }
        let hits = try store.searchMemory(namespace: "n", query: "common", now: 2, limit: 1_000)
        #expect(hits.count == 1_000)
        // The oldest 50 are outside the window; a rarer word's matches are all ranked.
        #expect(!hits.contains { ["k0", "k1", "k49"].contains($0.key) })
        #expect(try store.searchMemory(namespace: "n", query: "rare", now: 2, limit: 1_000).count == (window + 50 + 6) / 7)
    }

    @Test func theQuotaCountsWhatIsHeldAndForgetsWhatExpired() throws {
        func put(_ key: String, _ size: Int, expires: Int64? = nil, now: Int64 = 1) throws {
            try store.putMemory(namespace: "q", key: key, value: String(repeating: "x", count: size), tags: [],
                                expiresAt: expires, now: now, quota: 100)
        }
        try put("a", 90)                                        // 91 bytes held
        #expect(throws: StoreError.self) { try put("b", 9) }     // 101 would not fit
        try put("a", 98)                                        // replacing counts the new size only: 99
        #expect(try store.deleteMemory(namespace: "q", key: "a"))
        try put("t", 90, expires: 5)                            // 91, until 5
        #expect(throws: StoreError.self) { try put("b", 50, now: 4) }
        try put("b", 50, now: 6)                                // what expired is purged to make room
        #expect(try store.memory(namespace: "q", key: "t", now: 6) == nil)
        #expect(try store.memory(namespace: "q", key: "b", now: 6) != nil)
        try put("b", 99, now: 7)                                // 100: exactly the quota
    }

    @Test func rarerWordsWeighMoreAndCaseAndAccentsFold() throws {
        func put(_ key: String, _ value: String) throws {
            try store.putMemory(namespace: "r", key: key, value: value, tags: [], expiresAt: nil, now: 1)
        }
        try put("both", "apple banana")
        for index in 0..<20 { try put("apple\(index)", "apple pie") }
        try put("rare", "banana split")
        try put("accent", "Café au lait")
        let ranked = try store.searchMemory(namespace: "r", query: "apple banana", now: 2, limit: 30).map(\.key)
        #expect(ranked.first == "both")      // both words
        #expect(ranked.dropFirst().first == "rare")   // the rarer word beats the common one
        #expect(ranked.count == 22)
        #expect(try store.searchMemory(namespace: "r", query: "CAFE", now: 2, limit: 10).map(\.key) == ["accent"])
        #expect(try store.searchMemory(namespace: "r", query: "café", now: 2, limit: 10).map(\.key) == ["accent"])
        #expect(try store.searchMemory(namespace: "r", query: #""au lait" pie*"#, now: 2, limit: 1).first?.key == "accent")
    }
}
