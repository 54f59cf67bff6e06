import Foundation
import Testing

/// The audit chain through agentctl; tampering made with the sqlite3 CLI.
@Suite("Audit chain", .serialized)
struct AuditTests {
    func sqlite(_ kernel: KernelProcess, _ sql: String) throws {
        let result = try runProgram("/usr/bin/sqlite3", [kernel.stateDirectory + "/state.sqlite", sql])
        guard result.status == 0 else { throw HarnessError("sqlite3 \(sql): \(result.stderr)") }
    }

    func verify(_ kernel: KernelProcess) throws -> (Int32, [String: Any]) {
        let result = try kernel.ctl(["audit", "verify", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        return (result.status, object)
    }

    /// A kernel with some history: agents run and exit, a grant, a denial-free explain.
    func kernelWithHistory(_ label: String) throws -> KernelProcess {
        let kernel = try KernelProcess(label: label)
        for _ in 0..<3 {
            let id = try kernel.run(["--cap", "capability://tool/x?action=call", "--", "/bin/true"])
            _ = try kernel.ctl(["wait", id])
        }
        return kernel
    }

    @Test func everyEventIsChainedAndTheChainVerifies() throws {
        let kernel = try kernelWithHistory("auditok")
        defer { kernel.stop() }
        let records = try #require(try kernel.json(["audit"]) as? [[String: Any]])
        let kinds = records.compactMap { $0["kind"] as? String }
        #expect(kinds.contains("kernel.started"))
        #expect(kinds.filter { $0 == "agent.spawned" }.count == 3)
        #expect(kinds.filter { $0 == "capability.granted" }.count == 3)
        #expect(kinds.filter { $0 == "capability.revoked" }.count == 3)   // each agent ended
        for (earlier, later) in zip(records, records.dropFirst()) {
            #expect(later["previous_hash"] as? String == earlier["hash"] as? String)
            #expect((later["seq"] as? Int ?? 0) == (earlier["seq"] as? Int ?? 0) + 1)
        }
        let (status, result) = try verify(kernel)
        #expect(status == 0)
        #expect(result["intact"] as? Bool == true)
        #expect(result["records"] as? Int == records.count)
        let exported = try kernel.ctl(["audit", "export"]).stdout.split(separator: "\n")
        #expect(exported.count == records.count)
        let one = try #require(records.first { $0["kind"] as? String == "agent.spawned" })
        let agent = try #require(one["agent"] as? String)
        let mine = try #require(try kernel.json(["audit", "--agent", agent]) as? [[String: Any]])
        #expect(!mine.isEmpty && mine.allSatisfy { $0["agent"] as? String == agent })
    }

    /// Whoever can write the file can rewrite the chain from a record on:
    /// a head kept from an earlier verify shows it.
    @Test func aRewrittenOrShortenedChainFailsItsAnchor() throws {
        let kernel = try kernelWithHistory("auditanchor")
        defer { kernel.stop() }
        let (_, first) = try verify(kernel)
        let head = try #require(first["head"] as? String)
        #expect(try kernel.ctl(["audit", "verify", "--anchor", head]).status == 0)
        let last = try #require(Int64(head.split(separator: ":")[0]))
        // Cut the end off: every remaining link is still right.
        try sqlite(kernel, "DELETE FROM audit WHERE seq >= \(last)")
        #expect(try verify(kernel).0 == 0, "a shortened chain verifies on its own")
        let cut = try kernel.ctl(["audit", "verify", "--anchor", head])
        #expect(cut.status == 1)
        #expect(cut.stdout.contains("record \(last) is gone"), "\(cut.stdout)")
        let bad = try kernel.ctl(["audit", "verify", "--anchor", "12:abc"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("--anchor 12:abc"))
    }

    @Test func anEditedRecordIsNamed() throws {
        let kernel = try kernelWithHistory("auditedit")
        defer { kernel.stop() }
        try sqlite(kernel, "UPDATE audit SET message = 'nothing happened' WHERE seq = 4")
        let (status, result) = try verify(kernel)
        #expect(status == 1)
        #expect(result["first_bad"] as? Int == 4)
        #expect((result["problem"] as? String)?.contains("record 4 was changed") == true, "\(result)")
    }

    @Test func aRemovedRecordIsNamed() throws {
        let kernel = try kernelWithHistory("auditdelete")
        defer { kernel.stop() }
        try sqlite(kernel, "DELETE FROM audit WHERE seq = 5")
        let (status, result) = try verify(kernel)
        #expect(status == 1)
        #expect(result["first_bad"] as? Int == 6)
        #expect((result["problem"] as? String)?.contains("record 5 is missing") == true, "\(result)")
    }

    @Test func reorderedRecordsAreNamed() throws {
        let kernel = try kernelWithHistory("auditswap")
        defer { kernel.stop() }
        // Swap the contents of records 3 and 4 (each keeps its own hash fields).
        try sqlite(kernel, """
            UPDATE audit SET seq = -1 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = -1;
            """)
        let (status, result) = try verify(kernel)
        #expect(status == 1)
        #expect(result["first_bad"] as? Int == 3)
        #expect((result["problem"] as? String)?.contains("does not follow record 2") == true, "\(result)")
        let text = try kernel.ctl(["audit", "verify"])
        #expect(text.stdout.hasPrefix("BROKEN at record 3:"))
    }
}
