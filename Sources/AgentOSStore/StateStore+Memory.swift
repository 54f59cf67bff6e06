import GRDB

/// One remembered value, as the store keeps it.
public struct MemoryEntry: Sendable, Equatable {
    /// Whose and which scope: `context:AGENT`, `working:SESSION`,
    /// `long-term:IDENTITY`, `shared:NAME` (the kernel builds these).
    public var namespace: String
    public var key: String
    public var value: String
    public var tags: [String]
    public var createdAt: Int64
    public var updatedAt: Int64
    /// Unix ns; nil: kept until deleted.
    public var expiresAt: Int64?
    /// Search only: BM25 relevance, higher is better.
    public var score: Double?

    public init(namespace: String, key: String, value: String, tags: [String] = [], createdAt: Int64, updatedAt: Int64,
                expiresAt: Int64? = nil, score: Double? = nil) {
        self.namespace = namespace
        self.key = key
        self.value = value
        self.tags = tags
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.expiresAt = expiresAt
        self.score = score
    }
}

extension StateStore {
    /// Stores (or replaces) `key` in `namespace`; returns the entry as kept.
    /// With a `quota`, refused (`quotaExceeded`) when the namespace's keys
    /// and values would then take more than `quota` bytes: checked in the
    /// same transaction, so concurrent writers cannot overshoot it together.
    @discardableResult
    public func putMemory(namespace: String, key: String, value: String, tags: [String], expiresAt: Int64?,
                          now: Int64, quota: Int? = nil) throws -> MemoryEntry {
        try pool.write { db in
            if let quota {
                func total() throws -> Int {
                    let held = try Int.fetchOne(db.cachedStatement(sql: "SELECT bytes FROM memory_usage WHERE namespace = ?"),
                                                arguments: [namespace]) ?? 0
                    let replaced = try Int.fetchOne(db.cachedStatement(sql: """
                        SELECT length(CAST(key AS BLOB)) + length(CAST(value AS BLOB)) FROM memory WHERE namespace = ? AND key = ?
                        """), arguments: [namespace, key]) ?? 0
                    return held - replaced + key.utf8.count + value.utf8.count
                }
                var bytes = try total()
                if bytes > quota {
                    // What has expired no longer counts: gone first.
                    try db.execute(sql: "DELETE FROM memory WHERE namespace = ? AND expires_at IS NOT NULL AND expires_at <= ?",
                                   arguments: [namespace, now])
                    bytes = try total()
                }
                guard bytes <= quota else {
                    throw StoreError(.quotaExceeded, "it would hold \(bytes) bytes, at most \(quota)")
                }
            }
            try db.cachedStatement(sql: """
                INSERT INTO memory (namespace, key, value, tags, created_at, updated_at, expires_at, ns_token)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(namespace, key) DO UPDATE SET
                    value = excluded.value, tags = excluded.tags, updated_at = excluded.updated_at,
                    expires_at = excluded.expires_at
                """).execute(arguments: [namespace, key, value, tags.joined(separator: " "), now, now, expiresAt,
                                         Self.namespaceToken(namespace)])
            guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM memory WHERE namespace = ? AND key = ?"),
                                             arguments: [namespace, key]) else {
                throw StoreError(.corrupt, "memory \(namespace)/\(key) vanished as it was written")
            }
            return Self.memoryEntry(row)
        }
    }

    /// `key` in `namespace`, unless it expired.
    public func memory(namespace: String, key: String, now: Int64) throws -> MemoryEntry? {
        try pool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: """
                SELECT * FROM memory WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)
                """), arguments: [namespace, key, now]).map(Self.memoryEntry)
        }
    }

    /// Entries of a namespace by key (at most `limit`), unexpired.
    public func memories(namespace: String, now: Int64, limit: Int) throws -> [MemoryEntry] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM memory WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?
                """, arguments: [namespace, now, limit]).map(Self.memoryEntry)
        }
    }

    /// Removes `key`; false if there was none.
    @discardableResult
    public func deleteMemory(namespace: String, key: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM memory WHERE namespace = ? AND key = ?", arguments: [namespace, key])
            return db.changesCount > 0
        }
    }

    /// Removes a whole namespace (an agent's context when it ends); returns how many.
    @discardableResult
    public func deleteMemory(namespace: String) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM memory WHERE namespace = ?", arguments: [namespace])
            return db.changesCount
        }
    }

    /// Removes every namespace that starts with `prefix` (a deleted
    /// policy's working memory); returns how many entries.
    @discardableResult
    public func deleteMemory(namespacePrefix prefix: String) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM memory WHERE substr(namespace, 1, ?) = ?", arguments: [prefix.utf8.count, prefix])
            return db.changesCount
        }
    }

    /// Removes what has expired; returns how many.
    @discardableResult
    public func deleteExpiredMemory(now: Int64) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM memory WHERE expires_at IS NOT NULL AND expires_at <= ?", arguments: [now])
            return db.changesCount
        }
    }

    /// How many of the newest matches a search ranks: its cost stays flat
    /// however many entries match (a word in nearly every entry of a
    /// million). Fewer matches than this are all ranked.
    public static let searchWindow = 1_000

    /// Entries of `namespace` matching `query` (see `ftsQuery`), best first
    /// by BM25 over values and tags (`MemoryQuery`): all matches when there
    /// are at most `searchWindow`, else the best of the newest `searchWindow`.
    /// The index finds them through the namespace's token, newest first, and
    /// stops at the window: no step reads every entry holding a word.
    public func searchMemory(namespace: String, query: String, now: Int64, limit: Int) throws -> [MemoryEntry] {
        let search = MemoryQuery(query)
        guard let terms = search.expression else { return [] }
        let match = "ns_token : " + Self.namespaceToken(namespace) + " AND {value tags} : (" + terms + ")"
        return try pool.read { db in
            let window = try Int64.fetchAll(db.cachedStatement(sql: """
                SELECT rowid FROM memory_fts WHERE memory_fts MATCH ? ORDER BY rowid DESC LIMIT ?
                """), arguments: [match, Self.searchWindow])
            guard !window.isEmpty else { return [] }
            let entries = try Int.fetchOne(db.cachedStatement(sql: "SELECT entries FROM memory_usage WHERE namespace = ?"),
                                           arguments: [namespace]) ?? window.count
            // The candidates' text only (read by column index: the cheap
            // way through a few thousand rows); whole entries for the best.
            var ids: [Int64] = []
            var candidates: [MemoryQuery.Candidate] = []
            let rows = try Row.fetchCursor(db.cachedStatement(sql: """
                SELECT id, value, tags FROM memory WHERE id IN (SELECT value FROM json_each(?)) AND +namespace = ?
                    AND (expires_at IS NULL OR expires_at > ?)
                """), arguments: [Self.jsonArray(window), namespace, now])   // `+namespace`: by id, not the namespace index
            while let row = try rows.next() {
                let value: String = row[1]
                let tags: String = row[2]
                candidates.append(MemoryQuery.Candidate(index: ids.count, text: tags.isEmpty ? value : value + " " + tags))
                ids.append(row[0])
            }
            let scores = search.scores(candidates, complete: window.count < Self.searchWindow, entries: entries)
            // Best first; equal scores: the newer (higher id) first.
            let best = ids.indices.sorted {
                let (left, right) = (scores[$0] ?? 0, scores[$1] ?? 0)
                return left != right ? left > right : ids[$0] > ids[$1]
            }.prefix(limit)
            let entriesByID = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db.cachedStatement(sql: """
                SELECT * FROM memory WHERE id IN (SELECT value FROM json_each(?))
                """), arguments: [Self.jsonArray(best.map { ids[$0] })]).map { row -> (Int64, MemoryEntry) in
                (row["id"], Self.memoryEntry(row))
            })
            return best.compactMap { index in
                guard var entry = entriesByID[ids[index]] else { return nil }
                entry.score = scores[index] ?? 0
                return entry
            }
        }
    }

    private static func jsonArray(_ ids: some Sequence<Int64>) -> String {
        "[" + ids.map(String.init).joined(separator: ",") + "]"
    }

    /// The FTS5 expression of a search query, or nil when it has nothing to
    /// look for. Terms are separated by spaces and any of them matches:
    /// `"several words"` is a phrase (those words in that order), `word*`
    /// a prefix; everything else is text: FTS5's own syntax (AND, OR, NOT,
    /// NEAR, column filters, `^`, `+`, parentheses) has no effect. At most
    /// 32 terms.
    public static func ftsQuery(_ query: String) -> String? {
        MemoryQuery(query).expression
    }

    /// A namespace as one index token: "ns" and 16 hex digits of its
    /// FNV-1a hash (a collision only widens the candidates; the namespace
    /// itself is compared exactly).
    static func namespaceToken(_ namespace: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in namespace.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "ns" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    private static func memoryEntry(_ row: Row) -> MemoryEntry {
        let tags: String = row["tags"]
        return MemoryEntry(namespace: row["namespace"], key: row["key"], value: row["value"],
                           tags: tags.split(separator: " ").map(String.init), createdAt: row["created_at"],
                           updatedAt: row["updated_at"], expiresAt: row["expires_at"])
    }
}
