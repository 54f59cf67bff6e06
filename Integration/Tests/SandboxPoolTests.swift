import AgentOSClient
import AgentOSProtocol
import Foundation
import Testing

/// Sandboxes held ahead of their agents (agentd --sandbox-pool) and the
/// cold path (--sandbox-pool 0): the same sandbox either way, nothing left
/// behind by the held ones.
@Suite("Sandbox pool", .serialized)
struct SandboxPoolTests {
    /// Host processes of this kernel's held sandboxes (three each: the
    /// monitor, init and the agent's process waiting for its request).
    func heldHelpers(_ kernel: KernelProcess) -> [Int32] {
        let root = kernel.stateDirectory + "/sandbox-root"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let arguments = String(decoding: data, as: UTF8.self).split(separator: "\0").map(String.init)
            return arguments.contains("--request-fd") && arguments.contains(root) && processExists(pid)
        }
    }

    /// What an agent sees of its sandbox, one fact per line.
    static let probe = [
        "/bin/sh", "-c",
        "echo env=$GREETING; echo uid=$(id -u); echo host=$(hostname); echo pwd=$(pwd); "
            + "grep '^Seccomp:' /proc/self/status; grep '^CapEff' /proc/self/status; "
            + "cat /srv-probe/file; (echo x > /srv-probe/file) 2>/dev/null || echo ro-denied; "
            + "echo fds=$(ls /proc/self/fd | wc -l); echo $$",   // the agent is pid 2 (init is 1)
    ]

    func probeFacts(_ kernel: KernelProcess, shared: String) throws -> [String] {
        let id = try kernel.run(["--name", "probe", "--env", "GREETING=hello there", "--ro", shared, "--"]
            + Self.probe.map { $0.replacingOccurrences(of: "/srv-probe", with: shared) })
        #expect(try kernel.ctl(["wait", id]).status == 0)
        return try kernel.ctl(["logs", id]).lines
    }

    func sharedDirectory() throws -> String {
        let shared = try temporaryDirectory("pool-ro")
        chmod(shared, 0o755)
        try "from the host\n".write(toFile: shared + "/file", atomically: true, encoding: .utf8)
        chmod(shared + "/file", 0o666)
        return shared
    }

    /// fds=5: 0, 1, 2, the socket and ls's own directory handle; nothing else.
    static let expectedFacts = ["env=hello there", "host=probe", "Seccomp:\t2", "CapEff:\t0000000000000000",
                                "from the host", "ro-denied", "fds=5", "2"]

    @Test func heldSandboxesServeSpawnsAndLeaveNothingBehind() throws {
        let kernel = try KernelProcess(label: "poolheld", arguments: ["--sandbox-pool", "3"])
        #expect(eventually { heldHelpers(kernel).count == 9 }, "three held sandboxes (monitor, init and the agent-to-be each)")
        let held = Set(heldHelpers(kernel))
        let shared = try sharedDirectory()
        let facts = try probeFacts(kernel, shared: shared)
        for fact in Self.expectedFacts { #expect(facts.contains(fact), "\(fact) in \(facts)") }
        #expect(facts.contains("uid=200000"), "the oldest held sandbox (first uid) served the spawn: \(facts)")
        let agent = try kernel.agent("probe")
        // This kernel's cgroup bases: the parents of a live agent's cgroups.
        let sleeper = try kernel.run(["--", "/bin/sleep", "30"])
        let bases = Set((try kernel.agent(sleeper)["cgroups"] as? [String] ?? [])
            .map { ($0 as NSString).deletingLastPathComponent })
        #expect(!bases.isEmpty)
        try kernel.ctl(["kill", sleeper])
        #expect(facts.contains("pwd=\(agent["work_dir"] as? String ?? "?")"), "\(facts)")
        // The one used was a held one; the pool is topped up behind it.
        #expect(held.contains(Int32(agent["pid"] as? Int ?? -1)), "agent pid \(agent["pid"] ?? "-") not a held monitor")
        #expect(eventually { heldHelpers(kernel).count == 9 })
        #expect(kernel.stop() == 0)
        #expect(heldHelpers(kernel).isEmpty, "held sandboxes outlived agentd: \(heldHelpers(kernel))")
        let agents = try FileManager.default.contentsOfDirectory(atPath: kernel.stateDirectory + "/agents")
        #expect(Set(agents) == [agent["id"] as? String ?? "?", sleeper], "unused slot dirs left: \(agents)")
        for base in bases {
            let left = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter { !$0.contains(".") }
            #expect(left.isEmpty, "cgroups left in \(base): \(left)")
        }
    }

    /// init keeps an ended agent's namespaces a moment (their teardown
    /// would compete with a restart), and no longer: its sandbox and cgroups
    /// are gone soon after the exit.
    @Test func anEndedAgentsSandboxIsGoneSoonAfter() throws {
        let kernel = try KernelProcess(label: "poolgone", arguments: ["--sandbox-pool", "1"])
        defer { kernel.stop() }
        let id = try kernel.run(["--", "/bin/true"])
        #expect(try kernel.ctl(["wait", id]).status == 0)
        let agent = try kernel.agent(id)
        let monitor = try #require(agent["pid"] as? Int)
        let cgroups = agent["cgroups"] as? [String] ?? []
        #expect(eventually(timeout: 2) { !processExists(Int32(monitor)) }, "the sandbox's monitor outlived its agent")
        #expect(eventually(timeout: 2) { cgroups.allSatisfy { !FileManager.default.fileExists(atPath: $0) } },
                "cgroups left: \(cgroups)")
    }

    @Test func theColdPathGivesTheSameSandbox() throws {
        let kernel = try KernelProcess(label: "poolcold", arguments: ["--sandbox-pool", "0"])
        defer { kernel.stop() }
        let facts = try probeFacts(kernel, shared: try sharedDirectory())
        for fact in Self.expectedFacts { #expect(facts.contains(fact), "\(fact) in \(facts)") }
        #expect(facts.contains("uid=200000"))
        #expect(heldHelpers(kernel).isEmpty)
    }

    @Test func aHeldSandboxKilledWhileWaitingIsReplacedNotUsed() throws {
        let kernel = try KernelProcess(label: "pooldead", arguments: ["--sandbox-pool", "1"])
        defer { kernel.stop() }
        #expect(eventually { heldHelpers(kernel).count == 3 })
        for pid in heldHelpers(kernel) { kill(pid, SIGKILL) }
        let id = try kernel.run(["--", "/bin/sh", "-c", "echo still-works"])
        #expect(try kernel.ctl(["wait", id]).status == 0)
        #expect(try kernel.ctl(["logs", id]).stdout == "still-works\n")
    }

    /// A held sandbox copied the host's mounts when it started: one mounted
    /// later must still be what an agent's --ro shows.
    @Test func aMountMadeAfterTheSandboxesWereHeldIsWhatTheAgentSees() throws {
        let kernel = try KernelProcess(label: "poolmount", arguments: ["--sandbox-pool", "2"])
        defer { kernel.stop() }
        #expect(eventually { heldHelpers(kernel).count == 6 })
        let target = try temporaryDirectory("poolmnt")
        chmod(target, 0o755)
        guard mount("tmpfs", target, "tmpfs", 0, "size=1m,mode=0755") == 0 else {
            print("skipped: cannot mount a tmpfs here (errno \(errno))")
            return
        }
        defer { umount2(target, Int32(MNT_DETACH)) }
        try "mounted later\n".write(toFile: target + "/file", atomically: true, encoding: .utf8)
        chmod(target + "/file", 0o644)
        let id = try kernel.run(["--ro", target, "--", "/bin/cat", target + "/file"])
        #expect(try kernel.ctl(["wait", id]).status == 0)
        #expect(try kernel.ctl(["logs", id]).stdout == "mounted later\n")
    }

    @Test func aNULInAnArgumentOrValueIsRefused() throws {
        let kernel = try KernelProcess(label: "poolnul")
        defer { kernel.stop() }
        let client = try kernel.client()
        var request = Agentos_V1_RunRequest()
        request.argv = ["/bin/echo", "a\0--rw\0/etc"]
        #expect(throws: (any Error).self) { try client.call(.run(request)) }
        request.argv = ["/bin/true"]
        request.env = ["X": "1\0--rw\0/etc"]
        #expect(throws: (any Error).self) { try client.call(.run(request)) }
        // Paths: the part before the NUL exists, the rest would be options.
        request.env = [:]
        request.workDir = "/tmp\0--rw\0/var/tmp"
        #expect(throws: (any Error).self) { try client.call(.run(request)) }
        request.workDir = ""
        request.sandbox.readOnly = ["/opt\0--landlock\00"]
        #expect(throws: (any Error).self) { try client.call(.run(request)) }
        #expect(try #require(try kernel.json(["ps", "-a"]) as? [[String: Any]]).isEmpty)
    }

    /// The helper itself refuses a request that tries to set what only its
    /// command line may (its uid, root, fds), an option twice, or no filter.
    @Test func aRequestCarriesOnlyTheAgentsOptions() throws {
        let root = try temporaryDirectory("poolreq")
        func send(_ options: [String], filter: [UInt8] = [UInt8](repeating: 0, count: 8),
                  start: [String]? = nil) throws -> String {
            var block: [UInt8] = []
            for option in options { block += Array(option.utf8) + [0] }
            var bytes: [UInt8] = []
            for length in [UInt32(block.count), UInt32(filter.count)] { withUnsafeBytes(of: length.littleEndian) { bytes += $0 } }
            bytes += block + filter
            if let start {
                var startBlock: [UInt8] = []
                for string in start { startBlock += Array(string.utf8) + [0] }
                withUnsafeBytes(of: UInt32(startBlock.count).littleEndian) { bytes += $0 }
                bytes += startBlock
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Binaries.directory + "/agentos-sandbox")
            // stdin carries the request, stdout is the ready fd, stderr the exec fd.
            process.arguments = ["--uid", "60123", "--gid", "60123", "--root", root, "--request-fd", "0",
                                 "--ready-fd", "1", "--exec-fd", "2"]
            let input = Pipe(), ready = Pipe(), exec = Pipe()
            process.standardInput = input
            process.standardOutput = ready
            process.standardError = exec
            try process.run()
            input.fileHandleForWriting.write(Data(bytes))
            try input.fileHandleForWriting.close()
            let said = String(decoding: exec.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return said
        }
        let program = ["--", "/bin/true"]
        // Armed (--start later): the program and environment come in the start block alone.
        #expect(try send(["--start", "later"] + program).contains("with --start later, the program and --env come in the start block"))
        #expect(try send(["--start", "later", "--env", "A=b"]).contains("with --start later, the program and --env come in the start block"))
        #expect(try send(["--start", "now"] + program).contains("--start takes later"))
        // The start block is read as the agent, under its filter: it may not change the sandbox.
        let allowAll: [UInt8] = [0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]   // BPF_RET|BPF_K SECCOMP_RET_ALLOW
        let armed = ["--start", "later"]
        #expect(try send(armed, filter: allowAll, start: ["--rw", "/etc"] + program)
            .contains("start block: an option a start block may not carry"))
        #expect(try send(armed, filter: allowAll, start: ["--env", "A=b"]).contains("start block: no program after --"))
        #expect(try send(armed, filter: allowAll, start: ["--env", "A=b"] + program) == "", "a good start block: exec, no error")
        #expect(try send(["--uid", "0"] + program).contains("request: an option a request may not carry"))
        #expect(try send(["--root", "/"] + program).contains("request: an option a request may not carry"))
        #expect(try send(["--ready-fd", "9"] + program).contains("request: an option a request may not carry"))
        #expect(try send(["--landlock", "7", "--landlock", "0"] + program).contains("request: an option given twice"))
        #expect(try send(program, filter: []).contains("0 filter bytes"))
    }
}
