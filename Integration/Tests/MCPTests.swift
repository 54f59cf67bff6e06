import Foundation
import Testing

/// MCP servers as supervised, confined tools: a real server from PyPI
/// (mcp-server-time, installed by Integration/setup.sh into a venv), run
/// from a policy, its tools listed and called through the kernel, and
/// restarted with its tools back after it is killed.
@Suite("MCP servers", .serialized)
struct MCPTests {
    static let venv = ProcessInfo.processInfo.environment["AGENTOS_MCP_TIME_VENV"] ?? "/opt/agentos-test/mcp-time"
    static var server: String { venv + "/bin/mcp-server-time" }
    static var installed: Bool { FileManager.default.isExecutableFile(atPath: server) }

    func toolNames(_ kernel: KernelProcess) throws -> [String] {
        try #require(try kernel.json(["tools"]) as? [[String: Any]]).compactMap { $0["name"] as? String }
    }

    func callTools(_ kernel: KernelProcess, name: String, capabilities: [String], _ calls: [String]) throws -> [[String: Any]] {
        let id = try kernel.run(Binaries.demoAgentSandboxFlags + ["--name", name] + capabilities.flatMap { ["--cap", $0] }
            + ["--env", "AGENTOS_DEMO_TOOLS=" + calls.joined(separator: "\n"), "--", Binaries.demoAgent, "1", "0.01"])
        try kernel.ctl(["wait", id])
        return try kernel.ctl(["logs", id]).lines.compactMap { line -> [String: Any]? in
            guard line.hasPrefix("tool-result ") else { return nil }
            return try JSONSerialization.jsonObject(with: Data(line.dropFirst(12).utf8)) as? [String: Any]
        }
    }

    func text(_ call: [String: Any]) -> String {
        let content = (call["result"] as? [String: Any])?["content"] as? [[String: Any]] ?? []
        return content.compactMap { $0["text"] as? String }.joined()
    }

    @Test(.enabled(if: MCPTests.installed, "mcp-server-time is not installed: run Integration/setup.sh (it makes \(MCPTests.venv))"))
    func aSupervisedMCPServersToolsAreListedCheckedCalledAndComeBackAfterACrash() throws {
        let kernel = try KernelProcess(label: "mcp")
        defer { kernel.stop() }
        try kernel.apply("""
            version: 1
            name: mcptools
            supervisor:
              strategy: one_for_one
              intensity: 5
              period: 60s
              children:
                - id: time
                  program: \(Self.server)
                  args: [--local-timezone, UTC]
                  mcp_server: time
                  sandbox:
                    ro: [\(Self.venv)]
                    memory: 256M
            """)
        #expect(eventually(timeout: 30) { (try? toolNames(kernel))?.contains("mcp.time.get_current_time") == true },
                "the server's tools never appeared: \(kernel.kernelLog.suffix(2_000))")
        let tools = try #require(try kernel.json(["tools"]) as? [[String: Any]])
        let current = try #require(tools.first { $0["name"] as? String == "mcp.time.get_current_time" })
        #expect(current["source"] as? String == "mcp:time")
        #expect(current["capability_kind"] as? String == "tool")
        #expect((current["parameters_schema"] as? String)?.contains("timezone") == true)

        let paris = #"mcp.time.get_current_time {"timezone": "Europe/Paris"}"#
        let denied = try callTools(kernel, name: "nocap", capabilities: [], [paris])
        #expect(denied.first?["ok"] as? Bool == false)
        #expect((denied.first?["error"] as? String)?.contains("needs tool call on mcp.time.get_current_time") == true)

        let allowed = try callTools(kernel, name: "timely", capabilities: ["capability://tool/mcp.time.*?action=call"], [
            paris,
            #"mcp.time.convert_time {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}"#,
            #"mcp.time.get_current_time {"timezone": "Mars/Olympus"}"#,
        ])
        try #require(allowed.count == 3)
        #expect(allowed[0]["is_error"] as? Bool == false)
        #expect(text(allowed[0]).contains("Europe/Paris"))
        #expect(text(allowed[1]).contains("21:00:00+09:00"), "\(allowed[1])")
        // The server's own error comes back as the tool's, not the kernel's.
        #expect(allowed[2]["ok"] as? Bool == true)
        #expect(allowed[2]["is_error"] as? Bool == true)
        #expect(text(allowed[2]).contains("Invalid timezone"))

        // Killed from outside: its tools go, its supervisor restarts it, they come back and work.
        let pid = try #require(try kernel.treeNodes("mcptools")["mcptools/time"]?["pid"] as? Int)
        kill(Int32(pid), SIGKILL)
        #expect(eventually(timeout: 10) { (try? kernel.eventList())?.contains { $0.kind == "mcp.gone" } == true })
        #expect(eventually(timeout: 30) {
            let restarted = (try? kernel.treeNodes("mcptools")["mcptools/time"]?["pid"] as? Int).flatMap { $0 != pid } ?? false
            let ready = (try? kernel.eventList())?.filter { $0.kind == "mcp.ready" }.count ?? 0
            return restarted && ready >= 2
        }, "the server did not come back: \(kernel.kernelLog.suffix(2_000))")
        let again = try callTools(kernel, name: "timely2", capabilities: ["capability://tool/mcp.time.*?action=call"], [paris])
        #expect(again.first?["is_error"] as? Bool == false)
        #expect(text(again.first ?? [:]).contains("Europe/Paris"))
        let audit = try kernel.ctl(["audit"]).stdout
        #expect(audit.contains("timely called mcp.time.get_current_time: ok"))
        #expect(audit.contains("mcp.ready"))
    }

    @Test func aBadServerNameIsRefusedBeforeAnythingStarts() throws {
        let kernel = try KernelProcess(label: "mcpbad")
        defer { kernel.stop() }
        let result = try kernel.ctl(["run", "--mcp-server", "has.dot", "--", "/bin/true"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("invalid MCP server name 'has.dot'"))
    }
}
