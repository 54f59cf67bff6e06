import Crypto
import Foundation
import GRDB

/// One record of the audit chain: every event the kernel records, and every
/// capability check it allows, each carrying the hash of the one before.
public struct AuditRecord: Sendable, Equatable {
    public var seq: Int64
    public var time: Int64
    public var kind: String
    public var agentID: String
    public var message: String
    public var data: [String: String]
    public var previousHash: String
    public var hash: String
}

/// What walking the chain found.
public struct AuditVerification: Sendable, Equatable {
    public var records: Int
    /// The first record that was changed, removed or reordered, and how.
    public var firstBad: Int64?
    public var problem: String?
    public var lastHash: String
}

extension StateStore {
    /// The previous hash of the first record.
    static let auditGenesis = String(repeating: "0", count: 64)

    /// SHA-256 over the record's place in the chain and every field, in a
    /// fixed order (the data as the store's canonical JSON), each field
    /// length-prefixed ("<bytes>:<field>"), so that no two different records
    /// hash the same input (a newline in a message cannot stand for a field border).
    static func auditHash(previous: String, seq: Int64, time: Int64, kind: String, agentID: String,
                          message: String, data: String) -> String {
        var input = Data()
        for field in [previous, String(seq), String(time), kind, agentID, message, data] {
            input.append(contentsOf: Array("\(field.utf8.count):".utf8))
            input.append(contentsOf: Array(field.utf8))
        }
        return hex(SHA256.hash(data: input))
    }

    /// Lower-case hex of `bytes` (a digest): every event is hashed into the
    /// chain, and `String(format:)` per byte was half an append's time.
    public static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Appends one record, chained to the last (inside the caller's write
    /// transaction: the writer is serial, so the chain cannot fork).
    static func appendAudit(_ db: Database, time: Int64, kind: String, agentID: String, message: String,
                            data: [String: String]) throws {
        let last = try Row.fetchOne(db.cachedStatement(sql: "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"))
        let seq: Int64 = (last?["seq"] ?? 0) + 1
        let previous: String = last?["hash"] ?? auditGenesis
        let json = Self.json(data)
        let hash = auditHash(previous: previous, seq: seq, time: time, kind: kind, agentID: agentID, message: message,
                             data: json)
        try db.cachedStatement(sql: """
            INSERT INTO audit (seq, time, kind, agent_id, message, data, previous_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [seq, time, kind, agentID, message, json, previous, hash])
    }

    /// Appends a record that is not an event (an allowed capability check).
    public func appendAudit(time: Int64, kind: String, agentID: String, message: String,
                            data: [String: String]) throws {
        try pool.write { db in
            try Self.appendAudit(db, time: time, kind: kind, agentID: agentID, message: message, data: data)
        }
    }

    /// Records after `afterSeq`, oldest first: of one agent, from a time, at most `limit`.
    public func audit(afterSeq: Int64 = 0, agentID: String? = nil, since time: Int64 = 0,
                      limit: Int = 1_000) throws -> [AuditRecord] {
        try pool.read { db in
            var sql = "SELECT * FROM audit WHERE seq > ? AND time >= ?"
            var arguments: [(any DatabaseValueConvertible)?] = [afterSeq, time]
            if let agentID {
                sql += " AND agent_id = ?"
                arguments.append(agentID)
            }
            sql += " ORDER BY seq LIMIT ?"
            arguments.append(limit)
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map(Self.auditRecord(from:))
        }
    }

    /// Walks the whole chain: every record must follow the one before (its
    /// seq one more, its previous hash that record's hash) and hash to what
    /// it says. Names the first record that does not.
    public func verifyAudit() throws -> AuditVerification {
        try pool.read { db in
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM audit ORDER BY seq")
            var expectedSeq: Int64 = 1
            var previous = Self.auditGenesis
            var count = 0
            while let row = try cursor.next() {
                let record = Self.auditRecord(from: row)
                count += 1
                func broken(_ problem: String) -> AuditVerification {
                    AuditVerification(records: count, firstBad: record.seq, problem: problem, lastHash: previous)
                }
                if record.seq != expectedSeq {
                    return broken(record.seq > expectedSeq
                        ? "record \(expectedSeq)\(record.seq - expectedSeq > 1 ? "-\(record.seq - 1)" : "") is missing (removed)"
                        : "record \(record.seq) comes after record \(expectedSeq - 1) (reordered)")
                }
                if record.previousHash != previous {
                    return broken("record \(record.seq) does not follow record \(record.seq - 1) (reordered or replaced)")
                }
                let recomputed = Self.auditHash(previous: record.previousHash, seq: record.seq, time: record.time,
                                                kind: record.kind, agentID: record.agentID, message: record.message,
                                                data: row["data"])
                if recomputed != record.hash {
                    return broken("record \(record.seq) was changed (its hash does not match its contents)")
                }
                previous = record.hash
                expectedSeq += 1
            }
            return AuditVerification(records: count, firstBad: nil, problem: nil, lastHash: previous)
        }
    }

    private static func auditRecord(from row: Row) -> AuditRecord {
        AuditRecord(seq: row["seq"], time: row["time"], kind: row["kind"], agentID: row["agent_id"],
                    message: row["message"], data: decode(row["data"]) ?? [:], previousHash: row["previous_hash"],
                    hash: row["hash"])
    }
}
