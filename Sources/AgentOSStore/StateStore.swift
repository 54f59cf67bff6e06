import Foundation
import GRDB

/// The kernel's durable state: one SQLite database in WAL mode in the state
/// dir. Every state change is one transaction together with the event that
/// describes it, so the event log and the tables never disagree, and a
/// `kill -9` of the kernel loses nothing that was committed.
public final class StateStore: Sendable {
    public static let fileName = "state.sqlite"

    let pool: DatabasePool
    public let path: String

    public init(directory: String) throws {
        path = directory + "/" + Self.fileName
        var configuration = Configuration()
        configuration.label = "agentos.state"
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            // WAL + NORMAL: a committed transaction survives the process being
            // killed (only power loss may drop the last ones).
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreError(.cannotOpen, "cannot open the state database \(path): \(error)")
        }
    }

    /// Schema versions, oldest first. Never edit a shipped migration; add one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-agents-events-boots") { db in
            try db.execute(sql: """
                CREATE TABLE boots (
                    id TEXT PRIMARY KEY,
                    pid INTEGER NOT NULL,
                    started_at INTEGER NOT NULL,
                    ended_at INTEGER NOT NULL DEFAULT 0,
                    clean INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE agents (
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    state TEXT NOT NULL,
                    program TEXT NOT NULL,
                    argv TEXT NOT NULL,
                    env TEXT NOT NULL,
                    work_dir TEXT NOT NULL,
                    log_path TEXT NOT NULL,
                    pid INTEGER NOT NULL DEFAULT 0,
                    boot_id TEXT NOT NULL REFERENCES boots(id),
                    created_at INTEGER NOT NULL,
                    started_at INTEGER NOT NULL DEFAULT 0,
                    ended_at INTEGER NOT NULL DEFAULT 0,
                    exit_reason TEXT,
                    exit_code INTEGER,
                    exit_signal INTEGER,
                    exit_detail TEXT NOT NULL DEFAULT ''
                );
                CREATE INDEX agents_by_name ON agents(name, created_at);
                -- A name belongs to at most one live agent at a time.
                CREATE UNIQUE INDEX agents_live_name ON agents(name)
                    WHERE state IN ('pending', 'running', 'paused');
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    time INTEGER NOT NULL,
                    kind TEXT NOT NULL,
                    agent_id TEXT NOT NULL DEFAULT '',
                    message TEXT NOT NULL,
                    data TEXT NOT NULL DEFAULT '{}'
                );
                CREATE INDEX events_by_agent ON events(agent_id, seq);
                """)
        }
        migrator.registerMigration("v2-agent-limits") { db in
            try db.execute(sql: "ALTER TABLE agents ADD COLUMN limits TEXT NOT NULL DEFAULT '{}'")
        }
        migrator.registerMigration("v3-agent-sandbox") { db in
            try db.execute(sql: "ALTER TABLE agents ADD COLUMN sandbox TEXT NOT NULL DEFAULT '{}'")
        }
        migrator.registerMigration("v4-policies-checkpoints") { db in
            try db.execute(sql: """
                CREATE TABLE policies (
                    name TEXT PRIMARY KEY,
                    file TEXT NOT NULL,
                    source TEXT NOT NULL,
                    applied_at INTEGER NOT NULL
                );
                CREATE TABLE checkpoints (
                    policy TEXT NOT NULL,
                    path TEXT NOT NULL,
                    agent_id TEXT NOT NULL,
                    saved_at INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    PRIMARY KEY (policy, path)
                );
                """)
        }
        migrator.registerMigration("v5-capabilities") { db in
            try db.execute(sql: """
                CREATE TABLE capabilities (
                    id TEXT PRIMARY KEY,
                    agent_id TEXT NOT NULL,
                    uri TEXT NOT NULL,
                    parent_id TEXT REFERENCES capabilities(id),
                    source TEXT NOT NULL,
                    granted_at INTEGER NOT NULL,
                    revoked_at INTEGER,
                    revoke_reason TEXT NOT NULL DEFAULT '',
                    uses INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX capabilities_by_agent ON capabilities(agent_id);
                CREATE INDEX capabilities_by_parent ON capabilities(parent_id);
                """)
        }
        migrator.registerMigration("v6-audit-chain") { db in
            // No AUTOINCREMENT: seq is set by the chain (the last one + 1), so
            // a removed record leaves a gap that verification names.
            try db.execute(sql: """
                CREATE TABLE audit (
                    seq INTEGER PRIMARY KEY,
                    time INTEGER NOT NULL,
                    kind TEXT NOT NULL,
                    agent_id TEXT NOT NULL DEFAULT '',
                    message TEXT NOT NULL,
                    data TEXT NOT NULL,
                    previous_hash TEXT NOT NULL,
                    hash TEXT NOT NULL
                );
                CREATE INDEX audit_by_agent ON audit(agent_id);
                """)
        }
        migrator.registerMigration("v7-memory") { db in
            // The FTS5 index follows the table through triggers (an external
            // content table: the text is stored once).
            try db.execute(sql: """
                CREATE TABLE memory (
                    id INTEGER PRIMARY KEY,
                    namespace TEXT NOT NULL,
                    key TEXT NOT NULL,
                    value TEXT NOT NULL,
                    tags TEXT NOT NULL DEFAULT '',
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    expires_at INTEGER,
                    UNIQUE(namespace, key)
                );
                CREATE VIRTUAL TABLE memory_fts USING fts5(value, tags, content='memory', content_rowid='id');
                CREATE TRIGGER memory_inserted AFTER INSERT ON memory BEGIN
                    INSERT INTO memory_fts(rowid, value, tags) VALUES (new.id, new.value, new.tags);
                END;
                CREATE TRIGGER memory_deleted AFTER DELETE ON memory BEGIN
                    INSERT INTO memory_fts(memory_fts, rowid, value, tags) VALUES ('delete', old.id, old.value, old.tags);
                END;
                CREATE TRIGGER memory_updated AFTER UPDATE ON memory BEGIN
                    INSERT INTO memory_fts(memory_fts, rowid, value, tags) VALUES ('delete', old.id, old.value, old.tags);
                    INSERT INTO memory_fts(rowid, value, tags) VALUES (new.id, new.value, new.tags);
                END;
                """)
        }
        migrator.registerMigration("v8-mailboxes") { db in
            try db.execute(sql: """
                CREATE TABLE mailbox (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    recipient TEXT NOT NULL,
                    sender TEXT NOT NULL,
                    type TEXT NOT NULL,
                    content_type TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    correlation_id TEXT NOT NULL DEFAULT '',
                    sent_at INTEGER NOT NULL
                );
                CREATE INDEX mailbox_by_recipient ON mailbox(recipient, seq);
                """)
        }
        migrator.registerMigration("v9-message-streams") { db in
            // A stream is messages of type stream sharing a correlation id; the last says so.
            try db.execute(sql: "ALTER TABLE mailbox ADD COLUMN stream_end INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v10-memory-index-by-namespace") { db in
            // Each entry's namespace as one token in the index (ns_token), so
            // a search intersects its words with its namespace in the index:
            // a word found in one entry costs the same in a store of millions.
            try db.execute(sql: "ALTER TABLE memory ADD COLUMN ns_token TEXT NOT NULL DEFAULT ''")
            for namespace in try String.fetchAll(db, sql: "SELECT DISTINCT namespace FROM memory") {
                try db.execute(sql: "UPDATE memory SET ns_token = ? WHERE namespace = ?",
                               arguments: [Self.namespaceToken(namespace), namespace])
            }
            try db.execute(sql: """
                DROP TRIGGER memory_inserted;
                DROP TRIGGER memory_deleted;
                DROP TRIGGER memory_updated;
                DROP TABLE memory_fts;
                CREATE VIRTUAL TABLE memory_fts USING fts5(value, tags, ns_token, content='memory', content_rowid='id');
                CREATE TRIGGER memory_inserted AFTER INSERT ON memory BEGIN
                    INSERT INTO memory_fts(rowid, value, tags, ns_token) VALUES (new.id, new.value, new.tags, new.ns_token);
                END;
                CREATE TRIGGER memory_deleted AFTER DELETE ON memory BEGIN
                    INSERT INTO memory_fts(memory_fts, rowid, value, tags, ns_token)
                    VALUES ('delete', old.id, old.value, old.tags, old.ns_token);
                END;
                CREATE TRIGGER memory_updated AFTER UPDATE ON memory BEGIN
                    INSERT INTO memory_fts(memory_fts, rowid, value, tags, ns_token)
                    VALUES ('delete', old.id, old.value, old.tags, old.ns_token);
                    INSERT INTO memory_fts(rowid, value, tags, ns_token) VALUES (new.id, new.value, new.tags, new.ns_token);
                END;
                INSERT INTO memory_fts(memory_fts) VALUES ('rebuild');
                """)
            // Bytes per namespace (keys and values), kept by triggers: a
            // quota check reads one row, not the whole namespace.
            try db.execute(sql: """
                CREATE TABLE memory_usage (namespace TEXT PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID;
                INSERT INTO memory_usage
                    SELECT namespace, SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))) FROM memory GROUP BY namespace;
                CREATE TRIGGER memory_usage_inserted AFTER INSERT ON memory BEGIN
                    INSERT INTO memory_usage VALUES (new.namespace, length(CAST(new.key AS BLOB)) + length(CAST(new.value AS BLOB)))
                    ON CONFLICT(namespace) DO UPDATE SET bytes = bytes + excluded.bytes;
                END;
                CREATE TRIGGER memory_usage_deleted AFTER DELETE ON memory BEGIN
                    UPDATE memory_usage SET bytes = bytes - length(CAST(old.key AS BLOB)) - length(CAST(old.value AS BLOB))
                    WHERE namespace = old.namespace;
                END;
                CREATE TRIGGER memory_usage_updated AFTER UPDATE OF key, value ON memory BEGIN
                    UPDATE memory_usage SET bytes = bytes - length(CAST(old.key AS BLOB)) - length(CAST(old.value AS BLOB))
                        + length(CAST(new.key AS BLOB)) + length(CAST(new.value AS BLOB))
                    WHERE namespace = new.namespace;
                END;
                """)
        }
        migrator.registerMigration("v11-memory-entry-counts") { db in
            // Entries per namespace beside its bytes: the N of a search's BM25.
            try db.execute(sql: """
                ALTER TABLE memory_usage ADD COLUMN entries INTEGER NOT NULL DEFAULT 0;
                UPDATE memory_usage SET entries = (SELECT COUNT(*) FROM memory WHERE memory.namespace = memory_usage.namespace);
                DROP TRIGGER memory_usage_inserted;
                DROP TRIGGER memory_usage_deleted;
                CREATE TRIGGER memory_usage_inserted AFTER INSERT ON memory BEGIN
                    INSERT INTO memory_usage (namespace, bytes, entries)
                    VALUES (new.namespace, length(CAST(new.key AS BLOB)) + length(CAST(new.value AS BLOB)), 1)
                    ON CONFLICT(namespace) DO UPDATE SET bytes = bytes + excluded.bytes, entries = entries + 1;
                END;
                CREATE TRIGGER memory_usage_deleted AFTER DELETE ON memory BEGIN
                    UPDATE memory_usage SET bytes = bytes - length(CAST(old.key AS BLOB)) - length(CAST(old.value AS BLOB)),
                        entries = entries - 1
                    WHERE namespace = old.namespace;
                END;
                """)
        }
        migrator.registerMigration("v12-capability-tokens") { db in
            // Model tokens spent under each grant: what `tokens=` limits.
            try db.execute(sql: "ALTER TABLE capabilities ADD COLUMN tokens_used INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v13-goals") { db in
            // The scheduler's durable queue: a goal is never lost to a crash.
            try db.execute(sql: """
                CREATE TABLE goals (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    text TEXT NOT NULL,
                    target TEXT NOT NULL,
                    policy TEXT NOT NULL,
                    priority INTEGER NOT NULL,
                    state TEXT NOT NULL,
                    result TEXT NOT NULL DEFAULT '',
                    agent_id TEXT NOT NULL DEFAULT '',
                    attempts INTEGER NOT NULL DEFAULT 0,
                    submitted_at INTEGER NOT NULL,
                    started_at INTEGER NOT NULL DEFAULT 0,
                    ended_at INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX goals_by_state ON goals(state, seq);
                """)
        }
        migrator.registerMigration("v14-model-budgets") { db in
            // Budgets by account (a policy path or an agent's name) and
            // what each account has spent on models.
            try db.execute(sql: """
                CREATE TABLE model_budgets (
                    account TEXT PRIMARY KEY,
                    tokens INTEGER,
                    cost_microdollars INTEGER,
                    requests_per_minute INTEGER
                );
                CREATE TABLE model_spend (
                    account TEXT PRIMARY KEY,
                    input_tokens INTEGER NOT NULL DEFAULT 0,
                    output_tokens INTEGER NOT NULL DEFAULT 0,
                    cost_microdollars INTEGER NOT NULL DEFAULT 0,
                    calls INTEGER NOT NULL DEFAULT 0
                );
                """)
        }
        return migrator
    }

    /// Names of the migrations applied to this database, oldest first.
    public func appliedMigrations() throws -> [String] {
        try pool.read { db in try Self.migrator.appliedMigrations(db) }
    }

    // MARK: Boots

    /// Result of starting a kernel run on this state.
    public struct BootRecovery: Sendable {
        /// Earlier runs that never recorded a clean stop.
        public var uncleanBoots: [BootRecord]
        /// Agents that were live when the kernel last died, now marked lost.
        public var lostAgents: [AgentRecord]
        /// The events written while recovering, in order.
        public var events: [EventRecord]
    }

    /// Records a new kernel run and settles what the previous one left behind:
    /// agents it had running are marked lost (they died with it: PDEATHSIG).
    public func beginBoot(id: String, pid: Int32, at time: Int64) throws -> BootRecovery {
        try pool.write { db in
            var recovery = BootRecovery(uncleanBoots: [], lostAgents: [], events: [])
            let unclean = try Row.fetchAll(db, sql: "SELECT * FROM boots WHERE clean = 0 AND ended_at = 0 ORDER BY started_at")
            for row in unclean {
                let boot = BootRecord(id: row["id"], pid: row["pid"], startedAt: row["started_at"],
                                      endedAt: row["ended_at"], clean: false)
                recovery.uncleanBoots.append(boot)
                try db.execute(sql: "UPDATE boots SET ended_at = ? WHERE id = ? AND ended_at = 0",
                               arguments: [time, boot.id])
                recovery.events.append(try Self.insertEvent(db, EventRecord(
                    time: time, kind: "kernel.recovered",
                    message: "kernel run \(boot.id) (pid \(boot.pid)) ended without a clean shutdown",
                    data: ["boot_id": boot.id, "pid": String(boot.pid)])))
            }
            let live = try Row.fetchAll(db, sql: """
                SELECT * FROM agents WHERE state IN ('pending', 'running', 'paused') ORDER BY created_at
                """).map(Self.agent(from:))
            for var agent in live {
                let detail = "the kernel (run \(agent.bootID)) died while the agent was \(agent.state.rawValue); "
                    + "the agent died with it"
                agent.state = .lost
                agent.endedAt = time
                agent.exit = ExitRecord(reason: "lost", detail: detail)
                try Self.update(db, agent)
                recovery.lostAgents.append(agent)
                recovery.events.append(try Self.insertEvent(db, EventRecord(
                    time: time, kind: "agent.lost", agentID: agent.id,
                    message: "\(agent.name) lost: \(detail)", data: ["name": agent.name])))
            }
            try db.execute(sql: "INSERT INTO boots (id, pid, started_at) VALUES (?, ?, ?)",
                           arguments: [id, pid, time])
            recovery.events.append(try Self.insertEvent(db, EventRecord(
                time: time, kind: "kernel.started", message: "kernel started (run \(id), pid \(pid))",
                data: ["boot_id": id, "pid": String(pid)])))
            return recovery
        }
    }

    /// Marks a kernel run as cleanly stopped.
    @discardableResult
    public func endBoot(id: String, at time: Int64) throws -> EventRecord {
        try pool.write { db in
            try db.execute(sql: "UPDATE boots SET ended_at = ?, clean = 1 WHERE id = ?", arguments: [time, id])
            return try Self.insertEvent(db, EventRecord(
                time: time, kind: "kernel.stopped", message: "kernel stopped cleanly (run \(id))",
                data: ["boot_id": id]))
        }
    }

    public func boots() throws -> [BootRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM boots ORDER BY started_at").map { row in
                BootRecord(id: row["id"], pid: row["pid"], startedAt: row["started_at"],
                           endedAt: row["ended_at"], clean: row["clean"])
            }
        }
    }

    // MARK: Agents

    /// Inserts a new agent and its event in one transaction.
    @discardableResult
    public func insert(_ agent: AgentRecord, event: EventRecord) throws -> EventRecord {
        try pool.write { db in
            do {
                try db.cachedStatement(sql: """
                    INSERT INTO agents (id, name, state, program, argv, env, work_dir, log_path, pid,
                        boot_id, created_at, started_at, ended_at, limits, sandbox)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).execute(arguments: [agent.id, agent.name, agent.state.rawValue, agent.program,
                                     Self.json(agent.argv), Self.json(agent.environment), agent.workDir,
                                     agent.logPath, agent.pid, agent.bootID, agent.createdAt,
                                     agent.startedAt, agent.endedAt, Self.json(agent.limits),
                                     Self.json(agent.sandbox)])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw StoreError(.nameInUse, "the name '\(agent.name)' is in use by a live agent")
            }
            return try Self.insertEvent(db, event)
        }
    }

    /// Writes an agent's new state and its event in one transaction.
    @discardableResult
    public func update(_ agent: AgentRecord, event: EventRecord) throws -> EventRecord {
        try update(agent, event: event, then: [])[0]
    }

    /// An agent's new state and its event, then `events`, in one
    /// transaction and in that order (an agent's end and what its
    /// supervisor does about it).
    public func update(_ agent: AgentRecord, event: EventRecord, then events: [EventRecord]) throws -> [EventRecord] {
        try pool.write { db in
            try Self.update(db, agent)
            return try ([event] + events).map { try Self.insertEvent(db, $0) }
        }
    }

    public func agent(id: String) throws -> AgentRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM agents WHERE id = ?", arguments: [id]).map(Self.agent(from:))
        }
    }

    /// Agents in creation order; only live ones unless `includeEnded`.
    public func agents(includeEnded: Bool) throws -> [AgentRecord] {
        try pool.read { db in
            let sql = includeEnded
                ? "SELECT * FROM agents ORDER BY created_at, id"
                : "SELECT * FROM agents WHERE state IN ('pending', 'running', 'paused') ORDER BY created_at, id"
            return try Row.fetchAll(db, sql: sql).map(Self.agent(from:))
        }
    }

    /// Finds an agent the way an operator names one: its id; its name (the
    /// live one, else the newest); or an unambiguous id prefix of 3+ characters.
    public func resolve(_ reference: String) throws -> AgentRecord {
        try pool.read { db in
            // Cached statements: agents' calls resolve on every message.
            if let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM agents WHERE id = ?"), arguments: [reference]) {
                return Self.agent(from: row)
            }
            if let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT * FROM agents WHERE name = ?
                ORDER BY state IN ('pending', 'running', 'paused') DESC, created_at DESC LIMIT 1
                """), arguments: [reference]) {
                return Self.agent(from: row)
            }
            if reference.count >= 3, reference.allSatisfy({ $0.isHexDigit }) {
                let rows = try Row.fetchAll(db, sql: "SELECT * FROM agents WHERE id LIKE ? LIMIT 2",
                                            arguments: [reference.lowercased() + "%"])
                if rows.count == 1 { return Self.agent(from: rows[0]) }
                if rows.count > 1 {
                    throw StoreError(.ambiguous, "'\(reference)' matches more than one agent id; give more characters")
                }
            }
            throw StoreError(.notFound, "no agent with id or name '\(reference)'")
        }
    }

    /// Every agent id the store knows.
    public func agentIDs() throws -> Set<String> {
        try pool.read { db in Set(try String.fetchAll(db, sql: "SELECT id FROM agents")) }
    }

    public struct Counts: Sendable, Equatable {
        public var live: Int
        public var ended: Int

        public init(live: Int, ended: Int) {
            self.live = live
            self.ended = ended
        }
    }

    public func counts() throws -> Counts {
        try pool.read { db in
            let live = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM agents WHERE state IN ('pending', 'running', 'paused')
                """) ?? 0
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM agents") ?? 0
            return Counts(live: live, ended: total - live)
        }
    }

    // MARK: Policies

    /// Stores an applied policy (replacing the one of the same name) with its event.
    @discardableResult
    public func savePolicy(_ policy: PolicyRecord, event: EventRecord) throws -> EventRecord {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO policies (name, file, source, applied_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET file = excluded.file, source = excluded.source,
                    applied_at = excluded.applied_at
                """, arguments: [policy.name, policy.file, policy.source, policy.appliedAt])
            return try Self.insertEvent(db, event)
        }
    }

    /// Forgets a policy and its checkpoints, with its event.
    @discardableResult
    public func deletePolicy(_ name: String, event: EventRecord) throws -> EventRecord {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM policies WHERE name = ?", arguments: [name])
            try db.execute(sql: "DELETE FROM checkpoints WHERE policy = ?", arguments: [name])
            return try Self.insertEvent(db, event)
        }
    }

    public func policies() throws -> [PolicyRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM policies ORDER BY applied_at, name").map { row in
                PolicyRecord(name: row["name"], file: row["file"], source: row["source"], appliedAt: row["applied_at"])
            }
        }
    }

    // MARK: Checkpoints

    public func saveCheckpoint(_ checkpoint: CheckpointRecord) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO checkpoints (policy, path, agent_id, saved_at, data) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(policy, path) DO UPDATE SET agent_id = excluded.agent_id, saved_at = excluded.saved_at,
                    data = excluded.data
                """, arguments: [checkpoint.policy, checkpoint.path, checkpoint.agentID, checkpoint.savedAt,
                                 Data(checkpoint.data)])
        }
    }

    public func checkpoint(policy: String, path: String) throws -> CheckpointRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM checkpoints WHERE policy = ? AND path = ?",
                             arguments: [policy, path]).map(Self.checkpoint(from:))
        }
    }

    /// Every checkpoint (of one policy, if named), oldest policy first.
    public func checkpoints(policy: String? = nil) throws -> [CheckpointRecord] {
        try pool.read { db in
            if let policy {
                return try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE policy = ? ORDER BY path",
                                        arguments: [policy]).map(Self.checkpoint(from:))
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM checkpoints ORDER BY policy, path").map(Self.checkpoint(from:))
        }
    }

    private static func checkpoint(from row: Row) -> CheckpointRecord {
        let data: Data = row["data"]
        return CheckpointRecord(policy: row["policy"], path: row["path"], agentID: row["agent_id"],
                                savedAt: row["saved_at"], data: [UInt8](data))
    }

    // MARK: Events

    @discardableResult
    public func append(_ event: EventRecord) throws -> EventRecord {
        try pool.write { db in try Self.insertEvent(db, event) }
    }

    /// Several events in one transaction, in order (what one step of a
    /// supervisor decides: one commit instead of one each).
    public func append(_ events: [EventRecord]) throws -> [EventRecord] {
        guard !events.isEmpty else { return [] }
        return try pool.write { db in try events.map { try Self.insertEvent(db, $0) } }
    }

    /// Events with seq > `since`, oldest first; at most `limit` (the newest
    /// ones) when a limit is given.
    public func events(since: Int64 = 0, limit: Int? = nil, agentID: String? = nil) throws -> [EventRecord] {
        try pool.read { db in
            var conditions = ["seq > ?"]
            var arguments: StatementArguments = [since]
            if let agentID {
                conditions.append("agent_id = ?")
                _ = arguments.append(contentsOf: [agentID])
            }
            var sql = "SELECT * FROM events WHERE " + conditions.joined(separator: " AND ")
            if let limit {
                sql = "SELECT * FROM (" + sql + " ORDER BY seq DESC LIMIT \(max(0, limit))) ORDER BY seq"
            } else {
                sql += " ORDER BY seq"
            }
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.event(from:))
        }
    }

    public func lastEventSeq() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM events") ?? 0 }
    }

    // MARK: Rows

    /// An event, and its record in the audit chain, in the caller's transaction.
    static func insertEvent(_ db: Database, _ event: EventRecord) throws -> EventRecord {
        try db.cachedStatement(sql: "INSERT INTO events (time, kind, agent_id, message, data) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [event.time, event.kind, event.agentID, event.message, json(event.data)])
        let seq = db.lastInsertedRowID
        try appendAudit(db, time: event.time, kind: event.kind, agentID: event.agentID, message: event.message,
                        data: event.data)
        var stored = event
        stored.seq = seq
        return stored
    }

    private static func update(_ db: Database, _ agent: AgentRecord) throws {
        try db.cachedStatement(sql: """
            UPDATE agents SET name = ?, state = ?, pid = ?, started_at = ?, ended_at = ?,
                exit_reason = ?, exit_code = ?, exit_signal = ?, exit_detail = ?
            WHERE id = ?
            """).execute(arguments: [agent.name, agent.state.rawValue, agent.pid, agent.startedAt, agent.endedAt,
                             agent.exit?.reason, agent.exit?.code, agent.exit?.signal,
                             agent.exit?.detail ?? "", agent.id])
        if db.changesCount == 0 {
            throw StoreError(.notFound, "no agent with id '\(agent.id)' to update")
        }
    }

    private static func agent(from row: Row) -> AgentRecord {
        let reason: String? = row["exit_reason"]
        return AgentRecord(
            id: row["id"], name: row["name"],
            state: AgentRecord.State(rawValue: row["state"]) ?? .lost,
            program: row["program"],
            argv: decode(row["argv"]) ?? [],
            environment: decode(row["env"]) ?? [:],
            workDir: row["work_dir"], logPath: row["log_path"], pid: row["pid"],
            bootID: row["boot_id"], createdAt: row["created_at"], startedAt: row["started_at"],
            endedAt: row["ended_at"],
            exit: reason.map { ExitRecord(reason: $0, code: row["exit_code"], signal: row["exit_signal"],
                                          detail: row["exit_detail"]) },
            limits: decode(row["limits"]) ?? [:],
            sandbox: decode(row["sandbox"]) ?? [:])
    }

    private static func event(from row: Row) -> EventRecord {
        EventRecord(seq: row["seq"], time: row["time"], kind: row["kind"], agentID: row["agent_id"],
                    message: row["message"], data: decode(row["data"]) ?? [:])
    }

    /// JSON for the string lists and maps the store keeps; written by hand
    /// because Foundation's encoder costs more than the insert itself.
    static func json(_ strings: [String]) -> String {
        "[" + strings.map(quoted).joined(separator: ",") + "]"
    }

    static func json(_ map: [String: String]) -> String {
        "{" + map.sorted { $0.key < $1.key }.map { quoted($0.key) + ":" + quoted($0.value) }.joined(separator: ",") + "}"
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func decode<T: Decodable>(_ text: String?) -> T? {
        guard let text else { return nil }
        return try? JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}
