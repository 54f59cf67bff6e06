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
                let others = try Int.fetchOne(db, sql: """
                    SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0) FROM memory
                    WHERE namespace = ? AND key <> ? AND (expires_at IS NULL OR expires_at > ?)
                    """, arguments: [namespace, key, now]) ?? 0
                let total = others + key.utf8.count + value.utf8.count
                guard total <= quota else {
                    throw StoreError(.quotaExceeded, "it would hold \(total) bytes, at most \(quota)")
                }
            }
            try db.execute(sql: """
                INSERT INTO memory (namespace, key, value, tags, created_at, updated_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(namespace, key) DO UPDATE SET
                    value = excluded.value, tags = excluded.tags, updated_at = excluded.updated_at,
                    expires_at = excluded.expires_at
                """, arguments: [namespace, key, value, tags.joined(separator: " "), now, now, expiresAt])
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM memory WHERE namespace = ? AND key = ?",
                                             arguments: [namespace, key]) else {
                throw StoreError(.corrupt, "memory \(namespace)/\(key) vanished as it was written")
            }
            return Self.memoryEntry(row)
        }
    }

    /// `key` in `namespace`, unless it expired.
    public func memory(namespace: String, key: String, now: Int64) throws -> MemoryEntry? {
        try pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT * FROM memory WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)
                """, arguments: [namespace, key, now]).map(Self.memoryEntry)
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

    /// Entries of `namespace` whose value or tags match `query` (its words,
    /// any of them; each taken literally, never as FTS5 syntax), best first
    /// by BM25.
    public func searchMemory(namespace: String, query: String, now: Int64, limit: Int) throws -> [MemoryEntry] {
        let words = query.split(whereSeparator: { $0.isWhitespace }).prefix(32)
        guard !words.isEmpty else { return [] }
        // Every word a quoted string: FTS5 operators in it are plain text.
        let match = words.map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }.joined(separator: " OR ")
        return try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT memory.*, bm25(memory_fts) AS rank FROM memory_fts JOIN memory ON memory.id = memory_fts.rowid
                WHERE memory_fts MATCH ? AND memory.namespace = ? AND (memory.expires_at IS NULL OR memory.expires_at > ?)
                ORDER BY rank LIMIT ?
                """, arguments: [match, namespace, now, limit]).map { row in
                var entry = Self.memoryEntry(row)
                // SQLite's bm25() is lower for better matches: turned around.
                entry.score = -(row["rank"] as Double? ?? 0)
                return entry
            }
        }
    }

    private static func memoryEntry(_ row: Row) -> MemoryEntry {
        let tags: String = row["tags"]
        return MemoryEntry(namespace: row["namespace"], key: row["key"], value: row["value"],
                           tags: tags.split(separator: " ").map(String.init), createdAt: row["created_at"],
                           updatedAt: row["updated_at"], expiresAt: row["expires_at"])
    }
}

extension StateStore {
    /// Bytes of keys and values a namespace holds now (its quota's measure).
    public func memoryBytes(namespace: String, now: Int64) throws -> Int {
        try pool.read { db in
            try Int.fetchOne(db, sql: """
                SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0) FROM memory
                WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?)
                """, arguments: [namespace, now]) ?? 0
        }
    }
}
