import Foundation
import GRDB

/// A message waiting in a mailbox (durable until its recipient acks it).
public struct MessageRecord: Sendable, Equatable {
    public var seq: Int64
    public var id: String
    /// The recipient's identity: a policy worker's path, else an agent's name.
    public var recipient: String
    /// Set by the kernel: the sending agent's identity, or "operator".
    public var sender: String
    public var type: String
    public var contentType: String
    public var payload: [UInt8]
    public var correlationID: String
    public var sentAt: Int64
    /// Type stream: the last chunk of the stream `correlationID` names.
    public var streamEnd: Bool

    public init(seq: Int64 = 0, id: String, recipient: String, sender: String, type: String, contentType: String,
                payload: [UInt8], correlationID: String = "", sentAt: Int64, streamEnd: Bool = false) {
        self.streamEnd = streamEnd
        self.seq = seq
        self.id = id
        self.recipient = recipient
        self.sender = sender
        self.type = type
        self.contentType = contentType
        self.payload = payload
        self.correlationID = correlationID
        self.sentAt = sentAt
    }
}

extension StateStore {
    /// Puts messages in their recipients' mailboxes, in order, in one
    /// transaction (the bus commits what arrives together as a group). A
    /// mailbox whose stored messages and `unstored` ones (in it, not yet
    /// written: the bus's count) reach `limit` refuses (nil in its place:
    /// nothing grows); a message whose id is in `admitted` was counted as
    /// unstored already and is stored without a check. `depths` are the
    /// stored counts the caller knows; the others are counted here.
    /// Returns each message as stored, and the stored counts after.
    public func enqueueMessages(_ messages: [MessageRecord], limit: Int, depths known: [String: Int],
                                unstored: [String: Int] = [:],
                                admitted: Set<String> = []) throws -> (stored: [MessageRecord?], depths: [String: Int]) {
        try pool.write { db in
            var depths = known
            var waiting = unstored
            var stored: [MessageRecord?] = []
            stored.reserveCapacity(messages.count)
            let insert = try db.cachedStatement(sql: """
                INSERT INTO mailbox (id, recipient, sender, type, content_type, payload, correlation_id, sent_at, stream_end)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for message in messages {
                let depth: Int
                if let known = depths[message.recipient] {
                    depth = known
                } else {
                    depth = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM mailbox WHERE recipient = ?",
                                             arguments: [message.recipient]) ?? 0
                }
                let isAdmitted = admitted.contains(message.id)
                guard isAdmitted || depth + waiting[message.recipient, default: 0] < limit else {
                    depths[message.recipient] = depth
                    stored.append(nil)
                    continue
                }
                try insert.execute(arguments: [message.id, message.recipient, message.sender, message.type,
                                               message.contentType, Data(message.payload), message.correlationID,
                                               message.sentAt, message.streamEnd])
                var copy = message
                copy.seq = db.lastInsertedRowID
                stored.append(copy)
                depths[message.recipient] = depth + 1
                if isAdmitted { waiting[message.recipient, default: 1] -= 1 }
            }
            return (stored, depths)
        }
    }

    /// Messages for `recipient` after `seq`, oldest first.
    public func messages(for recipient: String, after seq: Int64 = 0, limit: Int = 1_000) throws -> [MessageRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM mailbox WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?",
                             arguments: [recipient, seq, limit]).map(Self.message)
        }
    }

    /// Removes acknowledged messages of `recipient`; returns how many.
    @discardableResult
    public func acknowledgeMessages(_ ids: [String], recipient: String) throws -> Int {
        try pool.write { db in
            var removed = 0
            let delete = try db.cachedStatement(sql: "DELETE FROM mailbox WHERE id = ? AND recipient = ?")
            for id in ids {
                try delete.execute(arguments: [id, recipient])
                removed += db.changesCount
            }
            return removed
        }
    }

    /// One waiting message of `recipient`.
    public func message(id: String, recipient: String) throws -> MessageRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM mailbox WHERE id = ? AND recipient = ?", arguments: [id, recipient])
                .map(Self.message)
        }
    }

    /// How many wait for `recipient`, and when the oldest was sent.
    public func mailboxDepth(_ recipient: String) throws -> (count: Int, oldest: Int64?) {
        try pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, MIN(sent_at) AS oldest FROM mailbox WHERE recipient = ?",
                                       arguments: [recipient])
            return (row?["n"] ?? 0, row?["oldest"])
        }
    }

    private static func message(_ row: Row) -> MessageRecord {
        let payload: Data = row["payload"]
        return MessageRecord(seq: row["seq"], id: row["id"], recipient: row["recipient"], sender: row["sender"],
                             type: row["type"], contentType: row["content_type"], payload: [UInt8](payload),
                             correlationID: row["correlation_id"], sentAt: row["sent_at"], streamEnd: row["stream_end"])
    }
}
