import AgentOSConfinement
import AgentOSClient
import AgentOSProtocol
import Foundation
import Testing

/// Resource limits and the freezer, through the real agentd and agentctl.
@Suite("Resource limits through cgroups", .serialized)
struct ResourceTests {
    let kernel: KernelProcess

    init() throws {
        kernel = try KernelProcess(label: "limits")
    }

    func exit(_ id: String) throws -> [String: Any] {
        try #require(try kernel.agent(id)["exit"] as? [String: Any])
    }

    @Test func statusReportsWhatTheHostOffers() throws {
        let status = try #require(try kernel.json(["status"]) as? [String: Any])
        let host = try #require(status["host"] as? [String: Any])
        #expect(["v2", "v1", "hybrid"].contains(host["cgroup_mode"] as? String ?? ""))
        #expect(host["user_namespaces"] as? Bool != nil)
        #expect(host["landlock_abi"] as? Int != nil)
    }

    @Test func aMemoryBombIsOOMKilledAndReportedAsOOM() throws {
        let id = try kernel.run(["--memory", "32M", "--", "/bin/sh", "-c",
                                 "x=$(head -c 300000000 /dev/zero | tr '\\0' x); echo ${#x}"])
        #expect(try kernel.ctl(["wait", id]).status != 0)
        let info = try kernel.agent(id)
        #expect(info["state"] as? String == "failed")
        #expect(try exit(id)["reason"] as? String == "oom")
        #expect((info["limits"] as? [String: Any])?["memory_bytes"] as? Int == 32 << 20)
    }

    @Test func aForkBombHitsThePidsLimitAndTheKernelStaysResponsive() throws {
        let id = try kernel.run(["--pids", "32", "--", "/bin/sh", "-c",
                                 // exec: the main shell needs no fork of its own to stay (dash exits when a fork fails).
                                 "bomb() { bomb | bomb & }; bomb; exec sleep 30"])
        var slowest = 0.0
        for _ in 0..<20 {
            let started = Date()
            #expect(try kernel.ctl(["ps"]).status == 0)
            slowest = max(slowest, Date().timeIntervalSince(started))
            let stats = try #require(try kernel.json(["stats", id]) as? [[String: Any]]).first
            if let pids = stats?["pids"] as? Int { #expect(pids <= 32) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(slowest < 1.0, "agentctl ps took \(slowest) s during a fork bomb")
        try kernel.ctl(["kill", id])
        #expect(try kernel.agent(id)["state"] as? String == "completed")
    }

    @Test func theWallClockLimitKillsAndIsReportedAsTimeout() throws {
        let started = Date()
        let id = try kernel.run(["--timeout", "300ms", "--", "/bin/sleep", "30"])
        #expect(try kernel.ctl(["wait", id]).status == 137)
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(try exit(id)["reason"] as? String == "timeout")
        let kinds = (try kernel.agent(id)["history"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
        #expect(kinds.contains("agent.timeout"))
    }

    @Test func pauseFreezesTheAgentAndResumeThawsIt() throws {
        let id = try kernel.run(["--", "/bin/sh", "-c", "while :; do :; done"])
        Thread.sleep(forTimeInterval: 0.2)
        #expect(try kernel.ctl(["pause", id]).status == 0)
        #expect(try kernel.agent(id)["state"] as? String == "paused")
        func cpu() throws -> Int {
            try #require(try kernel.json(["stats", id]) as? [[String: Any]]).first?["cpu_ns"] as? Int ?? -1
        }
        let frozenAt = try cpu()
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try cpu() - frozenAt < 20_000_000, "a paused agent kept using CPU")
        #expect(try kernel.ctl(["resume", id]).status == 0)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try cpu() - frozenAt > 100_000_000, "a resumed agent did not run")
        // Stopping a paused agent works too (it is thawed to get SIGTERM).
        #expect(try kernel.ctl(["pause", id]).status == 0)
        #expect(try kernel.ctl(["stop", "--timeout", "2s", id]).status == 0)
        #expect(try exit(id)["signal_name"] as? String == "SIGTERM")
        // An ended agent cannot be paused: a clear error.
        let again = try kernel.ctl(["pause", id])
        #expect(again.status == 1)
        #expect(again.stderr.contains("not running"))
    }

    @Test func theCPULimitHoldsAHogToItsShare() throws {
        let id = try kernel.run(["--cpu", "0.2", "--", "/bin/sh", "-c", "while :; do :; done"])
        Thread.sleep(forTimeInterval: 1.5)
        let used = try #require(try kernel.json(["stats", id]) as? [[String: Any]]).first?["cpu_ns"] as? Int ?? 0
        try kernel.ctl(["kill", id])
        // 0.2 CPU for ~1.5 s is ~0.3 s; allow scheduling slack, far below a full CPU.
        #expect(used < 600_000_000, "used \(used) ns of CPU under --cpu 0.2")
        #expect(used > 50_000_000)
    }

    @Test func killReachesDescendantsThatLeftTheProcessGroup() throws {
        let id = try kernel.run(["--", "/bin/sh", "-c", "setsid sleep 61.3 & wait"])
        let escaped = try waitForHostPid(["sleep", "61.3"])
        try kernel.ctl(["kill", id])
        #expect(eventually(timeout: 3) { !processExists(escaped) })
    }

    @Test func nonsenseLimitsAreRefusedAndNothingIsLeftBehind() throws {
        let before = try #require(try kernel.json(["ps", "-a"]) as? [[String: Any]]).count
        let cases: [([String], String)] = [
            (["--memory=-5"], "--memory -5"),
            (["--memory", "lots"], "--memory lots"),
            (["--memory", "512K"], "at least 1M"),
            (["--cpu", "0"], "--cpu 0"),
            (["--cpu", "-1"], "--cpu"),
            (["--pids", "abc"], "--pids abc"),
            (["--pids", "0"], "--pids 0"),
            (["--timeout", "soon"], "--timeout soon"),
        ]
        for (flags, expected) in cases {
            let result = try kernel.ctl(["run"] + flags + ["--", "/bin/true"])
            #expect(result.status != 0, "\(flags)")
            #expect(result.stderr.contains(expected), "\(flags): \(result.stderr)")
        }
        #expect(try #require(try kernel.json(["ps", "-a"]) as? [[String: Any]]).count == before)
        // No agent cgroup was left: only the ones of live agents exist.
        let status = try #require(try kernel.json(["status"]) as? [String: Any])
        #expect((status["agents"] as? [String: Any])?["running"] as? Int == 0)
    }

    @Test func aDeadKernelTakesEveryAgentProcessWithItAndItsCgroupsAreCleared() throws {
        // The agent's pid namespace dies with its init, which dies with the
        // sandbox monitor, which dies with the kernel (PR_SET_PDEATHSIG):
        // even a descendant that left the process group is gone. What the
        // dead run left in cgroupfs is removed at the next start.
        let id = try kernel.run(["--", "/bin/sh", "-c", "setsid sleep 62.4 & wait"])
        let escaped = try waitForHostPid(["sleep", "62.4"])
        let cgroups = try #require(try kernel.agent(id)["cgroups"] as? [String])
        #expect(!cgroups.isEmpty)
        kernel.kill9()
        #expect(eventually(timeout: 5) { !processExists(escaped) })
        try kernel.start()
        #expect(eventually(timeout: 5) { cgroups.allSatisfy { !FileManager.default.fileExists(atPath: $0) } })
        #expect(try kernel.agent(id)["state"] as? String == "lost")
    }

    /// Opt-in host tuning: agentd remounts cgroup2 with favordynmods and
    /// says so in status; the mount is put back as it was afterwards.
    @Test func favordynmodsIsSetOnlyWhenAskedAndReported() throws {
        let host = CgroupHostProbe()
        guard let mountPoint = host.unifiedMountPoint, let original = host.options(mountPoint) else {
            print("skipped: no cgroup2 hierarchy on this host")
            return
        }
        defer { host.remount(mountPoint, original) }
        if original.contains("favordynmods") { host.remount(mountPoint, original.filter { $0 != "favordynmods" }) }
        let plain = try KernelProcess(label: "rsfav0")
        let before = try #require(try plain.json(["status"]) as? [String: Any])["host"] as? [String: Any]
        plain.stop()
        #expect((before?["cgroup_detail"] as? String)?.contains("favordynmods") == false)
        #expect(host.options(mountPoint)?.contains("favordynmods") == false)
        let tuned = try KernelProcess(label: "rsfav1", arguments: ["--cgroup-favordynmods"])
        defer { tuned.stop() }
        #expect(host.options(mountPoint)?.contains("favordynmods") == true)
        let after = try #require(try tuned.json(["status"]) as? [String: Any])["host"] as? [String: Any]
        #expect((after?["cgroup_detail"] as? String)?.contains("favordynmods") == true)
        // Other options are kept.
        #expect(Set(host.options(mountPoint) ?? []).isSuperset(of: Set(original.filter { $0 != "ro" })))
        #expect(try tuned.ctl(["wait", try tuned.run(["--memory", "16M", "--", "/bin/true"])]).status == 0)
    }
}

/// The host's cgroup2 mount, read and put back by the tests.
struct CgroupHostProbe {
    var unifiedMountPoint: String? { CgroupHost.detect().unified?.mountPoint }

    func options(_ mountPoint: String) -> [String]? { CgroupTuning.superOptions(of: mountPoint) }

    func remount(_ mountPoint: String, _ options: [String]) { try? CgroupTuning.remount(mountPoint, options: options) }
}
