import GRDB

/// A goal in the scheduler's queue, as stored.
public struct GoalRecord: Sendable, Equatable {
    public enum State: String, Sendable {
        case pending, running, done, failed, cancelled

        public var hasEnded: Bool { self == .done || self == .failed || self == .cancelled }
    }

    public var id: String
    public var text: String
    /// The dynamic supervisor (POLICY/PATH) an agent is started under for it.
    public var target: String
    /// Its policy: what fair share is counted by.
    public var policy: String
    public var priority: Int
    public var state: State
    public var result: String
    public var agentID: String
    public var attempts: Int
    public var submittedAt: Int64
    public var startedAt: Int64
    public var endedAt: Int64

    public init(id: String, text: String, target: String, policy: String, priority: Int, state: State = .pending,
                result: String = "", agentID: String = "", attempts: Int = 0, submittedAt: Int64, startedAt: Int64 = 0,
                endedAt: Int64 = 0) {
        self.id = id
        self.text = text
        self.target = target
        self.policy = policy
        self.priority = priority
        self.state = state
        self.result = result
        self.agentID = agentID
        self.attempts = attempts
        self.submittedAt = submittedAt
        self.startedAt = startedAt
        self.endedAt = endedAt
    }

    init(row: Row) {
        self.init(id: row["id"], text: row["text"], target: row["target"], policy: row["policy"], priority: row["priority"],
                  state: State(rawValue: row["state"]) ?? .failed, result: row["result"], agentID: row["agent_id"],
                  attempts: row["attempts"], submittedAt: row["submitted_at"], startedAt: row["started_at"],
                  endedAt: row["ended_at"])
    }
}

extension StateStore {
    /// Stores a new goal.
    public func insertGoal(_ goal: GoalRecord) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO goals (id, text, target, policy, priority, state, submitted_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [goal.id, goal.text, goal.target, goal.policy, goal.priority, goal.state.rawValue,
                                 goal.submittedAt])
        }
    }

    /// Writes a goal's changing fields (state, result, agent, attempts,
    /// times, priority).
    public func updateGoal(_ goal: GoalRecord) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE goals SET priority = ?, state = ?, result = ?, agent_id = ?, attempts = ?, started_at = ?, ended_at = ?
                WHERE id = ?
                """, arguments: [goal.priority, goal.state.rawValue, goal.result, goal.agentID, goal.attempts,
                                 goal.startedAt, goal.endedAt, goal.id])
        }
    }

    /// Goals in submission order: those not ended, or all (newest `limit`).
    public func goals(includeEnded: Bool, limit: Int = 100_000) throws -> [GoalRecord] {
        try pool.read { db in
            let sql = includeEnded
                ? "SELECT * FROM (SELECT * FROM goals ORDER BY seq DESC LIMIT ?) ORDER BY seq"
                : "SELECT * FROM goals WHERE state IN ('pending', 'running') ORDER BY seq LIMIT ?"
            return try Row.fetchAll(db, sql: sql, arguments: [limit]).map(GoalRecord.init(row:))
        }
    }

    /// One goal by id or unique id prefix.
    public func goal(_ reference: String) throws -> GoalRecord {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM goals WHERE id = ? OR id LIKE ? ESCAPE '\\' LIMIT 2",
                                        arguments: [reference, Self.likePrefix(reference)])
            if let exact = rows.first(where: { ($0["id"] as String) == reference }) { return GoalRecord(row: exact) }
            guard !reference.isEmpty, let first = rows.first else {
                throw StoreError(.notFound, "no goal '\(reference)' (agentctl queue --all lists them)")
            }
            guard rows.count == 1 else { throw StoreError(.ambiguous, "goal id prefix '\(reference)' matches more than one goal") }
            return GoalRecord(row: first)
        }
    }

    static func likePrefix(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }
}
