import AgentOSClient
import AgentOSProtocol
import Foundation
import Testing

/// The sandbox's settings and the errors for bad ones, through agentctl.
@Suite("Sandbox settings", .serialized)
struct SandboxTests {
    @Test func badSandboxInputIsRefusedAndHoldsNothing() throws {
        let kernel = try KernelProcess(label: "sbbad")
        defer { kernel.stop() }
        // Links to what may not be shared are judged by what they lead to.
        let links = try temporaryDirectory("sblinks")
        for (name, target) in [("root", "/"), ("proc", "/proc"), ("hostname", "/etc/hostname")] {
            try FileManager.default.createSymbolicLink(atPath: links + "/" + name, withDestinationPath: target)
        }
        let cases: [([String], String)] = [
            (["--ro", links + "/root", "--", "/bin/true"], "the host root cannot be shared"),
            (["--workdir", links + "/root", "--", "/bin/true"], "the host root cannot be shared"),
            (["--rw", links + "/proc", "--", "/bin/true"], "/proc cannot be shared"),
            (["--rw", links + "/hostname", "--", "/bin/true"], "inside /etc, which agents see read-only"),
            (["--ro", "/no/such/path", "--", "/bin/true"], "--ro /no/such/path: no such file or directory"),
            (["--rw", "relative/../x", "--", "/bin/true"], "--rw"),
            (["--ro", "/", "--", "/bin/true"], "the host root cannot be shared"),
            (["--workdir", "/", "--", "/bin/true"], "the host root cannot be shared"),
            (["--rw", "/proc", "--", "/bin/true"], "/proc cannot be shared"),
            (["--ro", kernel.stateDirectory, "--", "/bin/true"], "cannot be shared with an agent"),
            (["--rw", kernel.directory, "--", "/bin/true"], "cannot be shared with an agent"),
            (["--net", "internet", "--", "/bin/true"], "--net internet"),
            (["--tmp-size", "1K", "--", "/bin/true"], "--tmp-size 1K"),
            (["--seccomp", "nosuch", "--", "/bin/true"], "no seccomp profile 'nosuch' (available: default)"),
            (["--", kernel.directory + "/nowhere/tool"], "does not exist"),
            (["--", Binaries.agentctl], "is not inside the agent's sandbox: add --ro"),
            (["--rw", "/etc/hostname", "--", "/bin/true"], "--rw /etc/hostname: inside /etc, which agents see read-only"),
            (Array(repeating: ["--ro", "/srv"], count: 64).flatMap { $0 } + ["--", "/bin/true"],
             "64 --ro/--rw paths: at most 63"),
        ]
        for (arguments, expected) in cases {
            let result = try kernel.ctl(["run"] + arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
        #expect(try #require(try kernel.json(["ps", "-a"]) as? [[String: Any]]).isEmpty)
        // No uid was taken by the refused runs: the first agent gets the first one.
        let id = try kernel.run(["--", "/bin/true"])
        #expect(try kernel.ctl(["wait", id]).status == 0)
        let sandbox = try #require(try kernel.agent(id)["sandbox"] as? [String: Any])
        #expect(sandbox["uid"] as? Int == 200_000)
        #expect(sandbox["seccomp"] as? String == "default")
    }

    @Test func anExhaustedUIDRangeIsAClearErrorUntilAUIDIsFree() throws {
        let kernel = try KernelProcess(label: "sbuid", arguments: ["--agent-uids", "300000-300001"])
        defer { kernel.stop() }
        let first = try kernel.run(["--", "/bin/sleep", "30"])
        let second = try kernel.run(["--", "/bin/sleep", "30"])
        let third = try kernel.ctl(["run", "--", "/bin/true"])
        #expect(third.status == 1)
        #expect(third.stderr.contains("no free agent uid: all of 300000-300001 are in use"))
        let uids = try [first, second].map { try #require(try kernel.agent($0)["sandbox"] as? [String: Any])["uid"] as? Int }
        #expect(Set(uids.compactMap { $0 }) == [300_000, 300_001])
        try kernel.ctl(["kill", first])
        #expect(try kernel.ctl(["run", "--", "/bin/true"]).status == 0)
        try kernel.ctl(["kill", second])
    }

    @Test func aProfileThatDoesNotParseIsNamedAndOthersStillWork() throws {
        let directory = try temporaryDirectory("policies")
        try FileManager.default.createDirectory(atPath: directory + "/seccomp", withIntermediateDirectories: true)
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        try FileManager.default.copyItem(atPath: repository + "/Policies/seccomp/default.json",
                                         toPath: directory + "/seccomp/default.json")
        try "{ \"allow\": [\"read\"".write(toFile: directory + "/seccomp/broken.json", atomically: true, encoding: .utf8)
        try #"{"default_errno": "EWHATEVER", "allow": ["read"]}"#
            .write(toFile: directory + "/seccomp/odd.json", atomically: true, encoding: .utf8)
        let kernel = try KernelProcess(label: "sbprof", arguments: ["--policies", directory])
        defer { kernel.stop() }
        let broken = try kernel.ctl(["run", "--seccomp", "broken", "--", "/bin/true"])
        #expect(broken.status == 1)
        #expect(broken.stderr.contains("seccomp profile 'broken'"))
        #expect(broken.stderr.contains("does not parse"))
        let odd = try kernel.ctl(["run", "--seccomp", "odd", "--", "/bin/true"])
        #expect(odd.stderr.contains("default_errno 'EWHATEVER'"))
        #expect(try kernel.ctl(["wait", try kernel.run(["--", "/bin/true"])]).status == 0)
    }

    @Test func agentdRefusesToStartWithoutADefaultProfile() throws {
        let directory = try temporaryDirectory("nopolicies")
        let state = try temporaryDirectory("nopolicies-state")
        let result = try runProgram(Binaries.agentd, ["--state-dir", state, "--socket", state + "/k.sock",
                                                      "--policies", directory])
        #expect(result.status != 0)
        #expect(result.stderr.contains("no seccomp profile 'default'"))
    }

    @Test func aProgramTheAgentsUIDCannotExecIsAClearError() throws {
        let kernel = try KernelProcess(label: "sbexec")
        defer { kernel.stop() }
        chmod(kernel.directory, 0o755)
        let tools = kernel.directory + "/tools"
        try FileManager.default.createDirectory(atPath: tools, withIntermediateDirectories: true)
        // Root may run it on the host; the agent's own uid may not.
        try "#!/bin/sh\necho hi\n".write(toFile: tools + "/private", atomically: true, encoding: .utf8)
        chmod(tools + "/private", 0o700)
        let result = try kernel.ctl(["run", "--ro", tools, "--", tools + "/private"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("sandbox: exec \(tools)/private: Permission denied"), "\(result.stderr)")
        // Over the protocol it carries the right code.
        var request = Agentos_V1_RunRequest()
        request.argv = [tools + "/private"]
        request.sandbox.readOnly = [tools]
        do {
            _ = try kernel.client().call(.run(request))
            Issue.record("the run succeeded")
        } catch let error as ClientError {
            #expect(error.kernelCode == .programNotExecutable)
        }
    }

    @Test func aReadOnlyPathInsideASystemDirIsAcceptedAndVisible() throws {
        let kernel = try KernelProcess(label: "sbsys")
        defer { kernel.stop() }
        let id = try kernel.run(["--ro", "/etc/hostname", "--ro", "/usr/bin", "--", "/bin/cat", "/etc/hostname"])
        #expect(try kernel.ctl(["wait", id]).status == 0)
        let sandbox = try #require(try kernel.agent(id)["sandbox"] as? [String: Any])
        #expect(sandbox["read_only"] as? [String] == ["/etc/hostname", "/usr/bin"])
    }

    @Test func devIsReadOnlyButItsDevicesWork() throws {
        let kernel = try KernelProcess(label: "sbdev")
        defer { kernel.stop() }
        let id = try kernel.run(["--", "/bin/sh", "-c",
                                 "touch /dev/evil 2>&1; echo x > /dev/null && echo null-ok; head -c 4 /dev/urandom | wc -c; "
                                     + "touch /dev/shm/ok && echo shm-ok; ls /dev/tty 2>&1"])
        _ = try kernel.ctl(["wait", id])
        let output = try kernel.ctl(["logs", id]).stdout
        #expect(output.contains("Read-only file system"), "\(output)")
        #expect(output.contains("null-ok"))
        #expect(output.contains("4"))
        #expect(output.contains("shm-ok"))
        #expect(output.contains("No such file"), "a tty device is visible: \(output)")
    }

    @Test func loopbackIsUpOnlyWhenAsked() throws {
        let kernel = try KernelProcess(label: "sbnet")
        defer { kernel.stop() }
        let none = try kernel.run(["--", "/bin/sh", "-c", "grep -q . /proc/net/if_inet6 && echo up || echo down"])
        #expect(try kernel.ctl(["wait", none]).status == 0)
        let loopback = try kernel.run(["--net", "loopback", "--", "/bin/sh", "-c",
                                       "grep -q . /proc/net/if_inet6 && echo up || echo down"])
        #expect(try kernel.ctl(["wait", loopback]).status == 0)
        let without = try kernel.ctl(["logs", none]).stdout
        let with = try kernel.ctl(["logs", loopback]).stdout
        #expect(without.trimmingCharacters(in: .whitespacesAndNewlines) == "down")
        #expect(with.trimmingCharacters(in: .whitespacesAndNewlines) == "up")
        #expect((try kernel.agent(loopback)["sandbox"] as? [String: Any])?["network"] as? String == "loopback")
    }

    /// Landlock fences writes to the agent's writable places; /proc is
    /// mounted writable (for the kernel's own guards), so writes there are
    /// what only Landlock stops: /proc/self/mem (a way around W^X) and comm.
    @Test func landlockAllowsWritesOnlyInTheWritablePlaces() throws {
        let kernel = try KernelProcess(label: "sbll")
        defer { kernel.stop() }
        let abi = try #require(try kernel.json(["status"]) as? [String: Any])["host"] as? [String: Any]
        guard let abi = abi?["landlock_abi"] as? Int, abi > 0 else {
            print("skipped: this host's kernel has no Landlock")
            return
        }
        let shared = try temporaryDirectory("sbll-rw")
        chmod(shared, 0o777)
        let script = """
            (echo 1 > $HOME/w) && echo "wrote home"; \
            for target in /tmp/w /dev/shm/w \(shared)/w /dev/null /dev/stderr /proc/self/comm /proc/self/oom_score_adj; do               if (echo 1 > $target) 2>/dev/null; then echo "wrote $target"; else echo "denied $target"; fi; done;             dd if=/dev/zero of=/proc/self/mem bs=1 count=1 seek=4096 2>/dev/null && echo "wrote mem" || echo "denied mem";             ln -s /tmp/w $HOME/link && echo "linked"; mv /tmp/w $HOME/moved && echo "moved"
            """
        let id = try kernel.run(["--rw", shared, "--", "/bin/sh", "-c", script])
        #expect(try kernel.ctl(["wait", id]).status == 0)
        let output = try kernel.ctl(["logs", id]).stdout
        for allowed in ["wrote home", "wrote /tmp/w", "wrote /dev/shm/w", "wrote \(shared)/w", "wrote /dev/null", "wrote /dev/stderr",
                        "linked", "moved"] {
            #expect(output.contains(allowed), "\(allowed): \(output)")
        }
        for denied in ["denied /proc/self/comm", "denied /proc/self/oom_score_adj", "denied mem"] {
            #expect(output.contains(denied), "\(denied): \(output)")
        }
        let sandbox = try #require(try kernel.agent(id)["sandbox"] as? [String: Any])
        #expect(sandbox["landlock_abi"] as? Int == abi)
    }
}
