import Foundation
import Testing

/// Tools as agents call them: the demo agent (AGENTOS_DEMO_TOOLS) asks the
/// real kernel, which checks, runs each call as its own confined child and
/// records it; the tests read what the agent got back from its log.
@Suite("Tools", .serialized)
struct ToolTests {
    /// Runs the demo agent calling `calls` ("TOOL {json}" each) and returns
    /// what it printed for each call, once it has ended.
    func callTools(_ kernel: KernelProcess, name: String, capabilities: [String], extra: [String] = [],
                   _ calls: [String]) throws -> [[String: Any]] {
        let id = try kernel.run(Binaries.demoAgentSandboxFlags + extra + ["--name", name]
            + capabilities.flatMap { ["--cap", $0] }
            + ["--env", "AGENTOS_DEMO_TOOLS=" + calls.joined(separator: "\n"), "--", Binaries.demoAgent, "1", "0.01"])
        try kernel.ctl(["wait", id])
        return try results(kernel, id)
    }

    func results(_ kernel: KernelProcess, _ id: String) throws -> [[String: Any]] {
        try kernel.ctl(["logs", id]).lines.compactMap { line -> [String: Any]? in
            guard line.hasPrefix("tool-result ") else { return nil }
            return try JSONSerialization.jsonObject(with: Data(line.dropFirst(12).utf8)) as? [String: Any]
        }
    }

    func result(_ call: [String: Any]) -> [String: Any] { call["result"] as? [String: Any] ?? [:] }

    @Test func theRegistryListsEachToolWithItsSchemaAndTheCapabilityItNeeds() throws {
        let kernel = try KernelProcess(label: "toolls")
        defer { kernel.stop() }
        let tools = try #require(try kernel.json(["tools"]) as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: tools.compactMap { tool in (tool["name"] as? String).map { ($0, tool) } })
        #expect(Set(byName.keys).isSuperset(of: ["file.read", "file.write", "file.list", "shell.execute"]))
        #expect(byName["file.write"]?["capability_kind"] as? String == "file")
        #expect(byName["file.write"]?["action"] as? String == "write")
        #expect(byName["shell.execute"]?["action"] as? String == "execute")
        for tool in tools {
            let schema = try #require(tool["parameters_schema"] as? String)
            let object = try JSONSerialization.jsonObject(with: Data(schema.utf8)) as? [String: Any]
            #expect(object?["type"] as? String == "object", "\(tool["name"] ?? "?")")
        }
        let schema = try kernel.ctl(["tools", "--schema", "file.read"])
        #expect(schema.status == 0)
        #expect(schema.stdout.contains("\"max_bytes\""))
        let missing = try kernel.ctl(["tools", "--schema", "file.delete"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no tool 'file.delete'"))
    }

    @Test func withoutACapabilityEveryToolIsDeniedAndAuditedAndNothingRuns() throws {
        let kernel = try KernelProcess(label: "tooldeny")
        defer { kernel.stop() }
        let data = try temporaryDirectory("tooldenydata")
        chmod(data, 0o777)
        try "secret".write(toFile: data + "/a.txt", atomically: true, encoding: .utf8)
        let calls = try callTools(kernel, name: "nocaps", capabilities: [], [
            #"file.read {"path": "\#(data)/a.txt"}"#,
            #"file.list {"path": "\#(data)"}"#,
            #"file.write {"path": "\#(data)/new.txt", "content": "x"}"#,
            #"shell.execute {"command": "touch \#(data)/touched"}"#,
        ])
        #expect(calls.count == 4)
        for call in calls {
            #expect(call["ok"] as? Bool == false, "\(call)")
            #expect((call["error"] as? String)?.contains("holds no") == true, "\(call)")
        }
        #expect(!FileManager.default.fileExists(atPath: data + "/new.txt"))
        #expect(!FileManager.default.fileExists(atPath: data + "/touched"))
        let audit = try kernel.ctl(["audit", "--agent", "nocaps"]).stdout
        #expect(audit.components(separatedBy: "tool.refused").count - 1 == 4, "\(audit)")
        #expect(audit.components(separatedBy: "capability.denied").count - 1 == 4)
    }

    @Test func withTheCapabilityTheFileToolsWorkOnlyOnWhatItCovers() throws {
        let kernel = try KernelProcess(label: "toolfile")
        defer { kernel.stop() }
        let data = try temporaryDirectory("toolfiledata")
        let out = try temporaryDirectory("toolfileout")
        let secret = try temporaryDirectory("toolfilesecret")
        chmod(data, 0o755)
        chmod(out, 0o777)
        try "hello tools\n".write(toFile: data + "/a.txt", atomically: true, encoding: .utf8)
        try Data([0xff, 0x00, 0xfe]).write(to: URL(fileURLWithPath: data + "/bin.dat"))
        try "top secret".write(toFile: secret + "/key", atomically: true, encoding: .utf8)
        // A link inside the covered dir that leads out of it.
        try FileManager.default.createSymbolicLink(atPath: data + "/link", withDestinationPath: secret + "/key")
        let calls = try callTools(kernel, name: "filer", capabilities: [
            "capability://file\(data)/**?action=read,list", "capability://file\(out)/*.txt?action=write",
        ], [
            #"file.read {"path": "\#(data)/a.txt"}"#,
            #"file.read {"path": "\#(data)/a.txt", "max_bytes": 5}"#,
            #"file.read {"path": "\#(data)/bin.dat"}"#,
            #"file.list {"path": "\#(data)"}"#,
            #"file.write {"path": "\#(out)/b.txt", "content": "written\n"}"#,
            #"file.write {"path": "\#(out)/b.txt", "content": "more\n", "mode": "append"}"#,
            #"file.write {"path": "\#(out)/b.txt", "content": "again"}"#,
            #"file.read {"path": "\#(data)/link"}"#,
            #"file.read {"path": "\#(data)/../\#((secret as NSString).lastPathComponent)/key"}"#,
            #"file.write {"path": "\#(out)/b.sh", "content": "x"}"#,
            #"file.write {"path": "\#(data)/c.txt", "content": "x"}"#,
            #"file.read {"path": "\#(data)/missing.txt"}"#,
        ])
        try #require(calls.count == 12)
        #expect(result(calls[0])["content"] as? String == "hello tools\n")
        #expect(result(calls[0])["truncated"] as? Bool == false)
        #expect(result(calls[1])["content"] as? String == "hello")
        #expect(result(calls[1])["truncated"] as? Bool == true)
        #expect(result(calls[1])["size"] as? Int == 12)
        #expect(result(calls[2])["encoding"] as? String == "base64")
        #expect(result(calls[2])["content"] as? String == "/wD+")
        let names = (result(calls[3])["entries"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(names == ["a.txt", "bin.dat", "link"])
        #expect(result(calls[4])["bytes_written"] as? Int == 8)
        #expect(result(calls[5])["bytes_written"] as? Int == 5)
        #expect(try String(contentsOfFile: out + "/b.txt", encoding: .utf8) == "written\nmore\n")
        // create (the default) does not replace a file.
        #expect(calls[6]["is_error"] as? Bool == true)
        #expect((result(calls[6])["error"] as? String)?.contains("File exists") == true, "\(calls[6])")
        // Neither a link nor '..' leads out of what the grant covers.
        for index in [7, 8] {
            #expect(calls[index]["ok"] as? Bool == false, "\(calls[index])")
            #expect((calls[index]["error"] as? String)?.contains("does not cover read on \(secret)/key") == true,
                    "\(calls[index])")
        }
        // Write is granted for *.txt in out only; data is read-only to this agent.
        #expect((calls[9]["error"] as? String)?.contains("does not cover write") == true)
        #expect((calls[10]["error"] as? String)?.contains("does not cover write") == true)
        #expect(!FileManager.default.fileExists(atPath: data + "/c.txt"))
        #expect(calls[11]["is_error"] as? Bool == true)
        #expect((result(calls[11])["error"] as? String)?.contains("No such file") == true)
        // Each call that ran is in the audit chain, with its arguments' digest.
        let audit = try #require(try kernel.json(["audit", "--agent", "filer"]) as? [[String: Any]])
        let called = audit.filter { $0["kind"] as? String == "tool.called" }
        #expect(called.count == 8)   // the missing file is a call too (answered without a run)
        let data0 = try #require(called.first?["data"] as? [String: String])
        #expect(data0["tool"] == "file.read")
        #expect(data0["arguments_sha256"]?.count == 64)
        #expect(data0["outcome"] == "ok")
    }

    @Test func shellReachesNoNetworkNoPathOutsideItsCapabilityAndOnlyItsAllowlist() throws {
        let kernel = try KernelProcess(label: "toolshell")
        defer { kernel.stop() }
        let data = try temporaryDirectory("toolshelldata")
        let secret = try temporaryDirectory("toolshellsecret")
        chmod(data, 0o755)
        try "data\n".write(toFile: data + "/a.txt", atomically: true, encoding: .utf8)
        try "secret\n".write(toFile: secret + "/key", atomically: true, encoding: .utf8)
        // A listener on the host's loopback: the tool's empty network namespace cannot reach it.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        _ = listen(listener, 4)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let port = UInt16(bigEndian: address.sin_port)
        let connect = "import socket; socket.create_connection(('127.0.0.1', \(port)), timeout=2); print('connected')"

        let open = try callTools(kernel, name: "sheller", capabilities: [
            "capability://file\(data)/**?action=read", "capability://shell/**?action=execute",
        ], [
            #"shell.execute {"command": "cat \#(data)/a.txt; cat \#(secret)/key; echo done"}"#,
            #"shell.execute {"argv": ["/usr/bin/python3", "-c", "\#(connect)"]}"#,
            #"shell.execute {"command": "touch \#(data)/new; echo $?"}"#,
            #"shell.execute {"command": "while :; do :; done", "timeout_ms": 300}"#,
            #"shell.execute {"command": "head -c 100000 /dev/zero | tr '\\0' x"}"#,
        ])
        try #require(open.count == 5)
        let first = result(open[0])
        #expect(first["stdout"] as? String == "data\ndone\n")
        #expect((first["stderr"] as? String)?.contains("No such file") == true)
        let network = result(open[1])
        #expect(network["exit_code"] as? Int == 1)
        #expect(!(network["stdout"] as? String ?? "").contains("connected"))
        #expect((network["stderr"] as? String)?.contains("unreachable") == true, "\(network)")
        // Read-only: the grant has no write.
        #expect((result(open[2])["stderr"] as? String)?.contains("Read-only file system") == true, "\(open[2])")
        #expect(!FileManager.default.fileExists(atPath: data + "/new"))
        let spinning = result(open[3])
        #expect(spinning["timed_out"] as? Bool == true)
        #expect(spinning["signal"] as? String == "SIGKILL")
        #expect(open[3]["is_error"] as? Bool == true)
        let chatty = result(open[4])
        #expect((chatty["stdout"] as? String)?.utf8.count == 64 << 10)
        #expect(chatty["stdout_truncated"] as? Bool == true)
        #expect(chatty["stdout_bytes"] as? Int == 100_000)

        // With an allowlist: only those programs are there, nothing else runs,
        // not a copy in /tmp and not through the dynamic loader.
        let fenced = try callTools(kernel, name: "fenced", capabilities: [
            "capability://shell/usr/bin/dash?action=execute&allowlist=/usr/bin/ls,/usr/bin/cp,/bin/sh",
            "capability://shell/**?action=execute&allowlist=/usr/bin/ls",
        ], [
            #"shell.execute {"command": "ls /usr/bin; cat /etc/hostname; cp /usr/bin/ls /tmp/x && /tmp/x; /lib64/ld-linux-x86-64.so.2 /tmp/x; echo end"}"#,
            #"shell.execute {"argv": ["/usr/bin/cat", "/etc/hostname"]}"#,
        ])
        try #require(fenced.count == 2)
        let listing = result(fenced[0])
        #expect(listing["stdout"] as? String == "cp\ndash\nls\nsh\nend\n", "\(listing)")
        let errors = listing["stderr"] as? String ?? ""
        #expect(errors.contains("cat: not found"))
        #expect(errors.contains("/tmp/x: Permission denied"))
        #expect(errors.contains("failed to map segment"))
        // Covered by the second grant's pattern, but not on its allowlist: the program started is on it or nothing runs.
        #expect((fenced[1]["error"] as? String)?.contains("/usr/bin/cat is not on the grant's allowlist") == true, "\(fenced[1])")
    }

    /// A tool run acts as its agent (what it writes is the agent's) and
    /// does not outlive it: killing the agent kills its running tool.
    @Test func aToolRunsAsItsAgentAndEndsWithIt() throws {
        let kernel = try KernelProcess(label: "toolas")
        defer { kernel.stop() }
        let out = try temporaryDirectory("toolasout")
        chmod(out, 0o777)
        let marker = "\(UInt32.random(in: 100_000...999_999))"
        let id = try kernel.run(Binaries.demoAgentSandboxFlags + [
            "--name", "owner", "--cap", "capability://file\(out)/**?action=write", "--cap", "capability://shell/**?action=execute",
            "--env", "AGENTOS_DEMO_TOOLS=" + [
                #"file.write {"path": "\#(out)/mine.txt", "content": "x"}"#,
                #"shell.execute {"argv": ["/bin/sleep", "\#(marker)"], "timeout_ms": 600000}"#,
            ].joined(separator: "\n"),
            "--", Binaries.demoAgent, "1", "0.01",
        ])
        // Run by its canonical path (the one the check saw).
        let sleeper = try waitForHostPid(["/usr/bin/sleep", marker])
        let agent = try kernel.agent(id)
        let uid = try #require((agent["sandbox"] as? [String: Any])?["uid"] as? Int)
        var info = stat()
        #expect(stat(out + "/mine.txt", &info) == 0)
        #expect(Int(info.st_uid) == uid)
        let status = try String(contentsOfFile: "/proc/\(sleeper)/status", encoding: .utf8)
        #expect(status.contains("Uid:\t\(uid)\t"), "\(status)")
        try kernel.ctl(["kill", id])
        #expect(eventually(timeout: 5) { !processExists(sleeper) }, "the tool's sleep outlived its agent")
    }

    /// A revocation takes effect on a running agent at once: the tool run
    /// the grant allowed is killed, the call says why, the next is denied.
    @Test func revokingAGrantKillsTheRunItAllowedAndDeniesTheNext() throws {
        let kernel = try KernelProcess(label: "toolrevoke")
        defer { kernel.stop() }
        let marker = "\(UInt32.random(in: 100_000...999_999))"
        let sleep = #"shell.execute {"argv": ["/bin/sleep", "\#(marker)"], "timeout_ms": 600000}"#
        let id = try kernel.run(Binaries.demoAgentSandboxFlags + [
            "--name", "revokee", "--cap", "capability://shell/usr/bin/sleep?action=execute",
            "--env", "AGENTOS_DEMO_TOOLS=" + [sleep, sleep].joined(separator: "\n"), "--", Binaries.demoAgent, "1", "0.01",
        ])
        let sleeper = try waitForHostPid(["/usr/bin/sleep", marker])
        let grants = try #require(try kernel.json(["cap", "ls", "revokee"]) as? [[String: Any]])
        let grant = try #require(grants.first?["id"] as? String)
        #expect(try kernel.ctl(["cap", "revoke", grant]).status == 0)
        #expect(eventually(timeout: 5) { !processExists(sleeper) }, "the run outlived its grant")
        try kernel.ctl(["wait", id])
        let calls = try results(kernel, id)
        try #require(calls.count == 2)
        #expect((calls[0]["error"] as? String)?.contains("was revoked while the call ran") == true, "\(calls[0])")
        #expect((calls[1]["error"] as? String)?.contains("holds no shell capability") == true, "\(calls[1])")
    }

    @Test func anOperatorApprovesDeniesOrLetsTheCallTimeOut() throws {
        let kernel = try KernelProcess(label: "toolapprove", arguments: ["--approval-timeout", "2s"])
        defer { kernel.stop() }
        let data = try temporaryDirectory("toolapprovedata")
        chmod(data, 0o755)
        try "gated\n".write(toFile: data + "/a.txt", atomically: true, encoding: .utf8)
        let read = #"file.read {"path": "\#(data)/a.txt"}"#
        let id = try kernel.run(Binaries.demoAgentSandboxFlags + [
            "--name", "gated", "--cap", "capability://file\(data)/**?action=read&approve=operator",
            "--env", "AGENTOS_DEMO_TOOLS=" + [read, read, read].joined(separator: "\n"),
            "--", Binaries.demoAgent, "1", "0.01",
        ])
        func nextPending() throws -> [String: Any] {
            var pending: [[String: Any]] = []
            _ = try eventually { pending = try kernel.json(["pending"]) as? [[String: Any]] ?? []; return !pending.isEmpty }
            return try #require(pending.first)
        }
        let first = try nextPending()
        #expect(first["tool"] as? String == "file.read")
        #expect(first["agent_name"] as? String == "gated")
        #expect((first["arguments"] as? String)?.contains("a.txt") == true)
        let callID = try #require(first["call_id"] as? String)
        #expect(try kernel.ctl(["approve", String(callID.prefix(6)), "--reason", "looks fine"]).status == 0)
        let second = try #require(try nextPending()["call_id"] as? String)
        #expect(second != callID)
        #expect(try kernel.ctl(["deny", second]).status == 0)
        // The third is left alone: denied when the 2 s pass.
        try kernel.ctl(["wait", id])
        let calls = try results(kernel, id)
        try #require(calls.count == 3)
        #expect(result(calls[0])["content"] as? String == "gated\n")
        #expect((calls[1]["error"] as? String)?.contains("denied by the operator") == true)
        #expect((calls[2]["error"] as? String)?.contains("no operator decided") == true)
        let unknown = try kernel.ctl(["approve", "ffffffffffff"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no tool call ffffffffffff waits for approval"))
        let events = try kernel.ctl(["audit", "--agent", "gated"]).stdout
        for kind in ["approval.requested", "approval.approved", "approval.denied", "approval.expired", "tool.called"] {
            #expect(events.contains(kind), "\(kind)")
        }
        // Bad operator input is on the record too.
        #expect(try kernel.ctl(["audit"]).stdout.contains("approval.unknown"))
    }

    @Test func badCallsGetAClearErrorAnAuditRecordAndRunNothing() throws {
        let kernel = try KernelProcess(label: "toolbad")
        defer { kernel.stop() }
        let data = try temporaryDirectory("toolbaddata")
        chmod(data, 0o777)
        let arguments = try temporaryDirectory("toolbadargs")
        chmod(arguments, 0o755)
        let big = #"{"path": "\#(data)/big.txt", "content": ""# + String(repeating: "y", count: (4 << 20) + 10) + "\"}"
        try big.write(toFile: arguments + "/big.json", atomically: true, encoding: .utf8)
        chmod(arguments + "/big.json", 0o644)
        let calls = try callTools(kernel, name: "badcalls", capabilities: ["capability://file\(data)/**?action=read,write"],
                                  extra: ["--ro", arguments], [
            #"file.delete {"path": "\#(data)/a"}"#,
            #"file.read {"path": 42}"#,
            #"file.read {"path": "relative.txt"}"#,
            #"file.read {"path": "\#(data)/a", "color": "red"}"#,
            "file.write @\(arguments)/big.json",
            #"file.write {"path": "\#(data)/nul.txt", "content_base64": "%%%"}"#,
        ])
        #expect(calls.count == 6)
        let expected = ["no tool 'file.delete'", "'path' must be a string", "is not absolute", "unknown argument 'color'",
                        "longer than", "not valid base64"]
        for (call, problem) in zip(calls, expected) {
            #expect(call["ok"] as? Bool == false)
            #expect((call["error"] as? String)?.contains(problem) == true, "\(call) lacks \(problem)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: data).isEmpty)
        let audit = try #require(try kernel.json(["audit", "--agent", "badcalls"]) as? [[String: Any]])
        #expect(audit.filter { $0["kind"] as? String == "tool.refused" }.count == 6)
        #expect(try kernel.ctl(["audit", "verify"]).status == 0)
    }
}

/// agent.spawn: a lead agent starts children in its policy's pool, handing
/// each a part of its own capabilities, never more, at most `max` times.
@Suite("agent.spawn", .serialized)
struct SpawnToolTests {
    @Test func aLeadSpawnsIntoItsPoolWithDelegatedCapabilitiesWithinItsOwnAndItsMax() throws {
        let kernel = try KernelProcess(label: "spawntool")
        defer { kernel.stop() }
        let data = try temporaryDirectory("spawndata")
        try FileManager.default.createDirectory(atPath: data + "/sub", withIntermediateDirectories: true)
        let ro = Binaries.demoAgentSandboxFlags.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        let roList = "[" + ro.joined(separator: ", ") + "]"
        func spawn(_ capabilities: [String]) -> String {
            let list = capabilities.map { "\"\($0)\"" }.joined(separator: ", ")
            return #"agent.spawn {"supervisor": "crew/pool", "args": ["300", "1"], "capabilities": [\#(list)]}"#
        }
        let calls = [
            spawn(["capability://file\(data)/sub/**?action=read"]),
            spawn(["capability://file\(data)/**?action=read,write"]),   // wider than the lead's: refused
            spawn([]),
            spawn([]),                                                   // a third spawn: max=2 is used up
        ].joined(separator: "\n")
        try kernel.apply("""
            version: 1
            name: crew
            supervisor:
              strategy: one_for_one
              children:
                - id: pool
                  supervisor:
                    strategy: dynamic
                    max_children: 5
                    template:
                      id: worker
                      program: \(Binaries.demoAgent)
                      restart: temporary
                      sandbox: {ro: \(roList)}
                - id: lead
                  program: \(Binaries.demoAgent)
                  args: ["100", "0.1"]
                  restart: temporary
                  env:
                    AGENTOS_DEMO_TOOLS: |
            \(calls.split(separator: "\n").map { "              " + $0 }.joined(separator: "\n"))
                  sandbox: {ro: \(roList)}
                  capabilities:
                    - capability://agent/crew/pool?action=spawn&max=2
                    - capability://file\(data)/**?action=read,list
            """)
        var results: [[String: Any]] = []
        #expect(eventually(timeout: 20) {
            results = ((try? kernel.ctl(["logs", "crew.lead"]).lines) ?? []).compactMap { line in
                guard line.hasPrefix("tool-result ") else { return nil }
                return (try? JSONSerialization.jsonObject(with: Data(line.dropFirst(12).utf8))) as? [String: Any]
            }
            return results.count == 4
        }, "\(kernel.kernelLog.suffix(2_000))")
        try #require(results.count == 4)
        let first = try #require(results[0]["result"] as? [String: Any])
        #expect(results[0]["is_error"] as? Bool == false, "\(results[0])")
        #expect((first["path"] as? String)?.hasPrefix("crew/pool/") == true)
        let delegated = try #require((first["capabilities"] as? [[String: Any]])?.first)
        #expect(delegated["uri"] as? String == "capability://file\(data)/sub/**?action=read")
        #expect((results[1]["error"] as? String)?.contains("is not within a capability you hold") == true, "\(results[1])")
        #expect(results[2]["is_error"] as? Bool == false)
        #expect((results[3]["error"] as? String)?.contains("used all 2 of its uses") == true, "\(results[3])")

        // The child holds the delegated grant, from the lead's; revoking the lead's takes it along.
        let child = try #require(first["agent"] as? String)
        let held = try #require(try kernel.json(["cap", "ls", child]) as? [[String: Any]])
        #expect(held.count == 1)
        #expect(held.first?["source"] as? String == "delegated")
        let parent = try #require(held.first?["parent"] as? String)
        #expect(try kernel.ctl(["cap", "revoke", parent]).status == 0)
        #expect(try #require(try kernel.json(["cap", "ls", child]) as? [[String: Any]]).isEmpty)
        #expect(try kernel.ctl(["audit", "--agent", "crew.lead"]).stdout.contains("called agent.spawn on crew/pool"))
    }
}

/// http.fetch against a real HTTP server on this host's loopback.
@Suite("http.fetch", .serialized)
struct HTTPFetchTests {
    /// A small server: /public/data.txt, redirects inside and out of
    /// /public, a large body. Prints its port, then serves until killed.
    static let server = """
        import http.server, sys
        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def do_GET(self):
                p = self.path
                if p == '/public/data.txt': self.reply(200, b'hello http')
                elif p == '/public/hop': self.move('/public/data.txt')
                elif p == '/public/out': self.move('/secret/key')
                elif p == '/public/gated': self.move('/gated/x')
                elif p == '/public/big': self.reply(200, b'z' * 100000)
                elif p == '/public/slow':
                    import time; time.sleep(20); self.reply(200, b'late')
                elif p == '/secret/key': self.reply(200, b'secret')
                else: self.reply(404, b'no')
            def reply(self, code, body):
                self.send_response(code); self.send_header('Content-Length', str(len(body))); self.send_header('X-Test', 'yes'); self.end_headers(); self.wfile.write(body)
            def move(self, where):
                self.send_response(302); self.send_header('Location', where); self.send_header('Content-Length', '0'); self.end_headers()
        s = http.server.HTTPServer(('127.0.0.1', 0), H)
        print(s.server_address[1], flush=True)
        s.serve_forever()
        """

    /// Starts the server; returns it and its port.
    static func startServer() throws -> (Process, Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", server]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var portLine = Data()
        while !portLine.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            portLine += chunk
        }
        guard let port = Int(String(decoding: portLine, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            kill(process.processIdentifier, SIGKILL)
            throw HarnessError("the test HTTP server did not start")
        }
        return (process, port)
    }

    /// A revocation answers a fetch under way at once.
    @Test func revokingItsGrantEndsAFetchUnderWay() throws {
        let (process, port) = try Self.startServer()
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        let kernel = try KernelProcess(label: "httprevoke")
        defer { kernel.stop() }
        let id = try kernel.run(Binaries.demoAgentSandboxFlags + [
            "--name", "waiter", "--cap", "capability://http/127.0.0.1/public/**?action=get",
            "--env", #"AGENTOS_DEMO_TOOLS=http.fetch {"url": "http://127.0.0.1:\#(port)/public/slow", "timeout_ms": 60000}"#,
            "--", Binaries.demoAgent, "1", "0.01",
        ])
        #expect(eventually { (try? kernel.ctl(["audit"]).stdout.contains("was allowed get")) ?? false })
        let grant = try #require((try kernel.json(["cap", "ls", "waiter"]) as? [[String: Any]])?.first?["id"] as? String)
        let start = Date()
        #expect(try kernel.ctl(["cap", "revoke", grant]).status == 0)
        try kernel.ctl(["wait", id])
        #expect(Date().timeIntervalSince(start) < 5, "the fetch was not ended by the revocation")
        let line = try #require(try kernel.ctl(["logs", id]).lines.first { $0.hasPrefix("tool-result ") })
        #expect(line.contains("was revoked"), "\(line)")
    }

    @Test func fetchesWhatTheGrantCoversAndChecksEveryRedirect() throws {
        let (process, port) = try Self.startServer()
        // SIGKILL: the test process may have SIGTERM blocked, and the child inherits that.
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        let base = "http://127.0.0.1:\(port)"

        let kernel = try KernelProcess(label: "httpfetch")
        defer { kernel.stop() }
        let id = try kernel.run(Binaries.demoAgentSandboxFlags + [
            "--name", "fetcher", "--cap", "capability://http/127.0.0.1/public/**?action=get&rate=6/min",
            "--cap", "capability://http/127.0.0.1/gated/**?action=get&approve=operator",
            "--env", "AGENTOS_DEMO_TOOLS=" + [
                #"http.fetch {"url": "\#(base)/public/data.txt"}"#,
                #"http.fetch {"url": "\#(base)/public/hop"}"#,
                #"http.fetch {"url": "\#(base)/public/out"}"#,
                #"http.fetch {"url": "\#(base)/secret/key"}"#,
                #"http.fetch {"url": "\#(base)/public/big", "max_bytes": 1000}"#,
                #"http.fetch {"url": "\#(base)/public/gated"}"#,
                #"http.fetch {"url": "\#(base)/public/data.txt", "method": "POST"}"#,
                #"http.fetch {"url": "\#(base)/public/data.txt"}"#,
                #"http.fetch {"url": "ftp://127.0.0.1/public/x"}"#,
            ].joined(separator: "\n"),
            "--", Binaries.demoAgent, "1", "0.01",
        ])
        try kernel.ctl(["wait", id])
        let calls = try kernel.ctl(["logs", id]).lines.compactMap { line -> [String: Any]? in
            guard line.hasPrefix("tool-result ") else { return nil }
            return try JSONSerialization.jsonObject(with: Data(line.dropFirst(12).utf8)) as? [String: Any]
        }
        try #require(calls.count == 9)
        func result(_ index: Int) -> [String: Any] { calls[index]["result"] as? [String: Any] ?? [:] }
        #expect(result(0)["status"] as? Int == 200)
        #expect(result(0)["body"] as? String == "hello http")
        #expect((result(0)["headers"] as? [String: Any])?["x-test"] as? String == "yes")
        // A redirect inside the grant is followed; one out of it is not.
        #expect(result(1)["body"] as? String == "hello http")
        #expect((result(1)["redirects"] as? [Any])?.count == 1)
        #expect((calls[2]["error"] as? String)?.contains("redirected to \(base)/secret/key") == true, "\(calls[2])")
        #expect((calls[3]["error"] as? String)?.contains("does not cover get on 127.0.0.1:\(port)/secret/key") == true,
                "\(calls[3])")
        #expect(result(4)["truncated"] as? Bool == true)
        #expect((result(4)["body"] as? String)?.count == 1000)
        // A redirect whose grant needs approval is not followed behind the operator's back.
        #expect((result(5)["error"] as? String)?.contains("needs an operator's approval: not followed") == true, "\(calls[5])")
        #expect((calls[6]["error"] as? String)?.contains("needs http post") == true, "\(calls[6])")
        // rate=6/min: data, hop (2 uses: the URL and its redirect), out (1; its redirect denied), big, gated: 6 used.
        #expect((calls[7]["error"] as? String)?.contains("rate 6/min reached") == true, "\(calls[7])")
        #expect((calls[8]["error"] as? String)?.contains("is not an http or https URL") == true)
    }

    @Test func aWildcardGrantDoesNotReachTheKernelHostsLoopback() throws {
        let kernel = try KernelProcess(label: "httploop")
        defer { kernel.stop() }
        let id = try kernel.run(Binaries.demoAgentSandboxFlags + [
            "--name", "prober", "--cap", "capability://http/**?action=get",
            "--env", "AGENTOS_DEMO_TOOLS=" + [
                #"http.fetch {"url": "http://127.0.0.1:1/"}"#,
                #"http.fetch {"url": "http://localhost:1/"}"#,
                #"http.fetch {"url": "http://169.254.169.254/latest/meta-data/"}"#,
            ].joined(separator: "\n"),
            "--", Binaries.demoAgent, "1", "0.01",
        ])
        try kernel.ctl(["wait", id])
        let errors = try kernel.ctl(["logs", id]).lines.filter { $0.hasPrefix("tool-result ") }
        #expect(errors.count == 3)
        for line in errors { #expect(line.contains("a loopback or link-local address"), "\(line)") }
    }
}
