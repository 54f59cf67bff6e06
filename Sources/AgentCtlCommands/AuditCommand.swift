import AgentOSProtocol
import ArgumentParser
import Foundation

/// `agentctl audit ...`: the tamper-evident record of what happened.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read, verify and export the audit chain.",
        discussion: """
            Every event the kernel records (spawns, exits, supervision actions, policy changes, \
            grants, revocations, denials) and every capability check it allows is appended to the \
            audit chain, each record carrying the SHA-256 of the one before. `verify` walks the \
            chain and names the first record that was changed, removed or reordered; against a \
            head kept elsewhere (--anchor) it also shows a chain rewritten or cut back.

            Examples:
              agentctl audit --agent scraper --since 10m
              agentctl audit verify
              agentctl audit export > audit.jsonl
            """,
        subcommands: [AuditListCommand.self, AuditVerifyCommand.self, AuditExportCommand.self],
        defaultSubcommand: AuditListCommand.self)
}

/// Options shared by listing and exporting.
struct AuditFilter: ParsableArguments {
    @Option(help: ArgumentHelp("Only this agent's records (id, unique prefix or name).", valueName: "agent"))
    var agent: String?

    @Option(help: ArgumentHelp("Only records this recent (e.g. 10m, 2h) or since this time (2026-11-27T10:00:00Z).",
                               valueName: "when"))
    var since: String?

    func request() throws -> Agentos_V1_AuditRequest {
        var request = Agentos_V1_AuditRequest()
        request.agent = agent ?? ""
        if let since {
            if let date = ISO8601DateFormatter().date(from: since) {
                request.sinceNs = Int64(date.timeIntervalSince1970 * 1e9)
            } else {
                do {
                    request.sinceNs = Output.now() - (try Units.milliseconds(since)) * 1_000_000
                } catch {
                    throw ValidationError("--since \(since): give a duration (10m) or a time (2026-11-27T10:00:00Z)")
                }
            }
        }
        return request
    }
}

/// The records as `AuditRecordJSON`, page by page (the kernel answers at most 10,000 at a time).
func auditPages(_ connection: ConnectionOptions, _ request: Agentos_V1_AuditRequest, limit: Int?,
                _ page: ([Agentos_V1_AuditRecord]) -> Void) throws {
    var request = request
    var remaining = limit ?? Int.max
    try connection.withKernel { client in
        while remaining > 0 {
            request.limit = UInt32(min(remaining, 10_000))
            guard case .audit(let list) = try client.call(.audit(request)) else { throw unexpectedResponse("audit") }
            page(list.records)
            remaining -= list.records.count
            guard let last = list.records.last, list.records.count == Int(request.limit) else { break }
            request.afterSeq = last.seq
        }
    }
}

struct AuditListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "Audit records, oldest first.")

    @OptionGroup var filter: AuditFilter
    @Option(help: "At most this many records.")
    var limit: Int = 1_000
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var records: [Agentos_V1_AuditRecord] = []
        try auditPages(connection, try filter.request(), limit: max(1, limit)) { records += $0 }
        if output.json {
            Output.json(records.map(AuditRecordJSON.init))
            return
        }
        Output.table(["SEQ", "TIME", "KIND", "AGENT", "MESSAGE"], records.map {
            [String($0.seq), Output.timestamp($0.timeNs) ?? "", $0.kind, $0.agentID.isEmpty ? "-" : $0.agentID, $0.message]
        })
    }
}

struct AuditVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Walk the chain; name the first record changed, removed or reordered (exit 1).",
        discussion: """
            The chain shows any change made without rewriting every record after it. Whoever can \
            write the state file can rewrite the chain from some record on, or cut its end: keep \
            the head this prints (SEQ:HASH) somewhere else, and pass it back with --anchor; a \
            rewritten or shortened chain no longer has it.
            """)

    @Option(help: ArgumentHelp("A head printed by an earlier verify (repeatable): that record must still be there, unchanged.",
                               valueName: "seq:hash"))
    var anchor: [String] = []
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let anchors = try anchor.map { text -> (Int64, String) in
            let parts = text.split(separator: ":")
            guard parts.count == 2, let seq = Int64(parts[0]), seq > 0, parts[1].count == 64 else {
                throw ValidationError("--anchor \(text): give SEQ:HASH as verify prints it")
            }
            return (seq, String(parts[1]))
        }
        var (result, anchorProblem): (Agentos_V1_AuditVerifyResponse, String?) = (.init(), nil)
        try connection.withKernel { client in
            guard case .auditVerify(let verified) = try client.call(.auditVerify(Agentos_V1_AuditVerifyRequest())) else {
                throw unexpectedResponse("audit verify")
            }
            result = verified
            for (seq, hash) in anchors where anchorProblem == nil {
                var request = Agentos_V1_AuditRequest()
                request.afterSeq = seq - 1
                request.limit = 1
                guard case .audit(let list) = try client.call(.audit(request)) else { throw unexpectedResponse("audit") }
                if let record = list.records.first, record.seq == seq {
                    if record.hash != hash { anchorProblem = "record \(seq) is not the one anchored: the chain was rewritten from it or before" }
                } else {
                    anchorProblem = "record \(seq) is gone: the chain was cut back"
                }
            }
        }
        let intact = result.intact && anchorProblem == nil
        let head = result.records > 0 ? "\(result.records):\(result.lastHash)" : "empty"
        if output.json {
            Output.json(AuditVerifyJSON(intact: intact, records: result.records,
                                        first_bad: result.intact ? nil : result.firstBadSeq,
                                        problem: result.intact ? anchorProblem : result.problem,
                                        head: result.intact ? head : nil))
        } else if intact {
            Output.line("intact: \(result.records) records; head \(head)")
        } else if !result.intact {
            Output.line("BROKEN at record \(result.firstBadSeq): \(result.problem)")
        } else {
            Output.line("BROKEN: \(anchorProblem ?? "")")
        }
        if !intact { throw ExitCode(1) }
    }
}

struct AuditExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Every record as JSON Lines on stdout (with the hashes, to check elsewhere).")

    @OptionGroup var filter: AuditFilter
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try auditPages(connection, try filter.request(), limit: nil) { records in
            var text = Data()
            for record in records {
                guard let line = try? encoder.encode(AuditRecordJSON(record)) else { continue }
                text.append(line)
                text.append(0x0A)
            }
            FileHandle.standardOutput.write(text)
        }
    }
}

struct AuditRecordJSON: Encodable {
    var seq: Int64
    var time: String?
    var time_ns: Int64
    var kind: String
    var agent: String?
    var message: String
    var data: [String: String]
    var previous_hash: String
    var hash: String

    init(_ record: Agentos_V1_AuditRecord) {
        seq = record.seq
        time = Output.timestamp(record.timeNs)
        time_ns = record.timeNs
        kind = record.kind
        agent = record.agentID.isEmpty ? nil : record.agentID
        message = record.message
        data = record.data
        previous_hash = record.previousHash
        hash = record.hash
    }
}

struct AuditVerifyJSON: Encodable {
    var intact: Bool
    var records: UInt64
    var first_bad: Int64?
    var problem: String?
    /// SEQ:HASH of the last record, to keep as an anchor.
    var head: String?
}
