import AgentOSModels
import Foundation
import Testing
@testable import AgentOSKernel

@Suite struct ModelKeysTests {
    private func file(_ text: String, mode: mode_t = 0o600) throws -> String {
        let path = NSTemporaryDirectory() + "secrets-\(UInt64.random(in: 0...UInt64.max)).env"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, mode)
        return path
    }

    @Test func windowsLineEndingsQuotesAndExport() throws {
        let path = try file("# keys\r\nA_KEY=sk-one\r\nexport B_KEY=\"sk two\"\r\n\r\n")
        defer { unlink(path) }
        let keys = try ModelKeys(secretsFile: path, environment: ["C_KEY": "sk-three\n", "D_KEY": ""])
        #expect(keys.key("A_KEY") == "sk-one")
        #expect(keys.key("B_KEY") == "sk two")
        #expect(keys.key("C_KEY") == "sk-three")
        #expect(keys.key("D_KEY") == nil)
        #expect(keys.whereLooked("D_KEY").contains(path))
    }

    @Test func refusedFilesNeverEchoAKey() throws {
        let wide = try file("A_KEY=sk-secret-1\n", mode: 0o640)
        defer { unlink(wide) }
        #expect(throws: KernelError.self) { _ = try ModelKeys(secretsFile: wide) }
        let broken = try file("sk-secret-2\n")
        defer { unlink(broken) }
        do {
            _ = try ModelKeys(secretsFile: broken)
            Issue.record("accepted a line without NAME=")
        } catch {
            #expect(!error.message.contains("sk-secret-2") && error.message.contains("line 1"))
        }
        let control = try file("A_KEY=sk-\u{1b}x\n")
        defer { unlink(control) }
        #expect(throws: KernelError.self) { _ = try ModelKeys(secretsFile: control) }
    }

    @Test func aProviderQuotingTheKeyIsRedacted() {
        let error = ModelError(.authentication, "openai: Incorrect API key provided: sk-live-123456", status: 401)
        let redacted = ModelGateway.redacted(error, key: "sk-live-123456")
        #expect(!redacted.message.contains("sk-live-123456"))
        #expect(redacted.code == .authentication && redacted.status == 401)
    }
}
