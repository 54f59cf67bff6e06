import GRDB

/// A capability granted to an agent, as the store keeps it.
public struct CapabilityRecord: Sendable, Equatable {
    public var id: String
    public var agentID: String
    /// The canonical URI.
    public var uri: String
    /// The grant it was delegated from; nil for one the operator or a policy gave.
    public var parentID: String?
    /// "operator", "policy:NAME/PATH" or "delegated".
    public var source: String
    public var grantedAt: Int64
    public var revokedAt: Int64?
    public var revokeReason: String
    /// Uses allowed so far (what `max` counts).
    public var uses: Int
    /// Model tokens spent under it (what `tokens` counts).
    public var tokensUsed: Int

    public init(id: String, agentID: String, uri: String, parentID: String? = nil, source: String, grantedAt: Int64,
                revokedAt: Int64? = nil, revokeReason: String = "", uses: Int = 0, tokensUsed: Int = 0) {
        self.id = id
        self.agentID = agentID
        self.uri = uri
        self.parentID = parentID
        self.source = source
        self.grantedAt = grantedAt
        self.revokedAt = revokedAt
        self.revokeReason = revokeReason
        self.uses = uses
        self.tokensUsed = tokensUsed
    }
}

extension StateStore {
    /// Stores a grant with its event, in one transaction.
    @discardableResult
    public func insertCapability(_ capability: CapabilityRecord, event: EventRecord) throws -> EventRecord {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO capabilities (id, agent_id, uri, parent_id, source, granted_at, uses)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [capability.id, capability.agentID, capability.uri, capability.parentID,
                                 capability.source, capability.grantedAt, capability.uses])
            return try Self.insertEvent(db, event)
        }
    }

    /// Marks grants revoked, with one event, in one transaction.
    @discardableResult
    public func revokeCapabilities(_ ids: [String], at time: Int64, reason: String, event: EventRecord) throws -> EventRecord {
        try pool.write { db in
            for id in ids {
                try db.execute(sql: "UPDATE capabilities SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL",
                               arguments: [time, reason, id])
            }
            return try Self.insertEvent(db, event)
        }
    }

    /// Counts one allowed use of a grant and of those it was delegated from
    /// (what `max` limits; kept across restarts), with its audit record.
    public func recordCapabilityUse(_ ids: [String], time: Int64, agentID: String, message: String,
                                    data: [String: String]) throws {
        try pool.write { db in
            for id in ids {
                try db.execute(sql: "UPDATE capabilities SET uses = uses + 1 WHERE id = ?", arguments: [id])
            }
            try Self.appendAudit(db, time: time, kind: "capability.allowed", agentID: agentID, message: message, data: data)
        }
    }

    /// Adds model tokens spent under a grant and those it was delegated from.
    public func recordCapabilityTokens(_ ids: [String], tokens: Int) throws {
        try pool.write { db in
            for id in ids {
                try db.execute(sql: "UPDATE capabilities SET tokens_used = tokens_used + ? WHERE id = ?", arguments: [tokens, id])
            }
        }
    }

    /// Grants, oldest first: of one agent, or every one; revoked ones only if asked.
    public func capabilities(agentID: String? = nil, includeRevoked: Bool = false) throws -> [CapabilityRecord] {
        try pool.read { db in
            var sql = "SELECT * FROM capabilities"
            var conditions: [String] = []
            var arguments: [(any DatabaseValueConvertible)?] = []
            if let agentID {
                conditions.append("agent_id = ?")
                arguments.append(agentID)
            }
            if !includeRevoked { conditions.append("revoked_at IS NULL") }
            if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
            sql += " ORDER BY granted_at, id"
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map { row in
                CapabilityRecord(id: row["id"], agentID: row["agent_id"], uri: row["uri"], parentID: row["parent_id"],
                                 source: row["source"], grantedAt: row["granted_at"], revokedAt: row["revoked_at"],
                                 revokeReason: row["revoke_reason"], uses: row["uses"], tokensUsed: row["tokens_used"])
            }
        }
    }
}
