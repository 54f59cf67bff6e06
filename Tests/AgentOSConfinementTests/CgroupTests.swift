@testable import AgentOSConfinement
import Foundation
import Testing

@Suite("cgroup detection")
struct CgroupHostTests {
    static let hybridMountinfo = """
        25 1 0:23 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
        26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
        27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
        30 25 0:28 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
        31 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
        32 25 0:30 / /sys/fs/cgroup/pids rw,nosuid shared:16 - cgroup cgroup rw,pids
        """
    static let hybridCgroup = """
        5:pids:/user.slice
        4:cpu,cpuacct:/user.slice
        3:memory:/user.slice/session-1.scope
        1:name=systemd:/user.slice/session-1.scope
        0::/user.slice/session-1.scope
        """

    @Test func recognisesAHybridHost() {
        let host = CgroupHost.parse(mountinfo: Self.hybridMountinfo, cgroup: Self.hybridCgroup) { _ in "" }
        #expect(host.mode == .hybrid)
        #expect(host.unified?.ownDirectory == "/sys/fs/cgroup/unified/user.slice/session-1.scope")
        #expect(host.v1["memory"]?.ownDirectory == "/sys/fs/cgroup/memory/user.slice/session-1.scope")
        #expect(host.v1["cpu"]?.mountPoint == "/sys/fs/cgroup/cpu,cpuacct")
        #expect(host.v1["cpuacct"]?.mountPoint == "/sys/fs/cgroup/cpu,cpuacct")
        #expect(host.v1["name=systemd"] == nil)
    }

    @Test func recognisesPureV2WithItsControllers() {
        let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
        let host = CgroupHost.parse(mountinfo: mountinfo, cgroup: "0::/system.slice/agentd.service\n") { path in
            path == "/sys/fs/cgroup/system.slice/agentd.service/cgroup.controllers" ? "cpuset cpu io memory pids\n" : ""
        }
        #expect(host.mode == .v2)
        #expect(host.unifiedControllers == ["cpuset", "cpu", "io", "memory", "pids"])
        #expect(host.summary.hasPrefix("v2"))
    }

    @Test func aCgroupNamespaceRootIsStripped() {
        let mountinfo = "30 23 0:26 /agentd /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
        let host = CgroupHost.parse(mountinfo: mountinfo, cgroup: "0::/agentd/inner\n") { _ in "" }
        #expect(host.unified?.ownDirectory == "/sys/fs/cgroup/inner")
    }

    @Test func thisHostIsDetected() {
        let host = CgroupHost.detect()
        #expect(host.mode != .none, "no cgroup hierarchy found: \(host)")
    }
}

@Suite("Agent cgroups on this host", .serialized)
struct AgentCgroupTests {
    let manager: CgroupManager
    let reactor: ProcessReactor

    init() throws {
        manager = CgroupManager(host: CgroupHost.detect(), baseName: "agentos-test-\(UInt32.random(in: 0...UInt32.max))")
        try manager.prepare()
        reactor = try ProcessReactor()
    }

    func spawn(_ argv: [String], in cgroup: AgentCgroup, sink: CollectingSink? = nil) async throws -> ChildProcess {
        let fds = try cgroup.openProcsFiles()
        defer { for fd in fds { close(fd) } }
        return try await reactor.spawn(SpawnSpec(executable: argv[0], arguments: argv, environment: ["PATH": "/usr/bin:/bin"],
                                                 output: sink, cgroupProcsFDs: fds))
    }

    func cleanUp() async {
        _ = await manager.removeLeftovers()
        manager.removeBases()
    }

    @Test func theChildStartsInsideItsCgroupsWithItsLimits() async throws {
        let cgroup = try manager.create(agentID: "a1", limits: ResourceLimits(memoryBytes: 64 << 20, pids: 16, cpus: 0.5))
        let sink = CollectingSink()
        let child = try await spawn(["/bin/cat", "/proc/self/cgroup"], in: cgroup, sink: sink)
        _ = await child.exit()
        await sink.waitFinished()
        for directory in cgroup.paths {
            let relative = directory.split(separator: "/").suffix(2).joined(separator: "/")
            #expect(sink.stdout.contains(relative), "\(relative) not in \(sink.stdout)")
        }
        if let memory = cgroup.directories["memory"] {
            #expect(CgroupFiles.int(memory + "/memory.limit_in_bytes") == 64 << 20)
        }
        if let pids = cgroup.directories["pids"] {
            #expect(CgroupFiles.read(pids + "/pids.max")?.hasPrefix("16") == true)
        }
        if let cpu = cgroup.directories["cpu"] {
            #expect(CgroupFiles.int(cpu + "/cpu.cfs_quota_us") == 50_000)
        }
        await cgroup.killAndRemove()
        #expect(cgroup.paths.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
        await cleanUp()
    }

    @Test func thePidsLimitStopsAForkBomb() async throws {
        let cgroup = try manager.create(agentID: "a2", limits: ResourceLimits(pids: 8))
        let sink = CollectingSink()
        let child = try await spawn(["/bin/sh", "-c", "for i in $(seq 20); do sleep 5 & done 2>&1; echo started"],
                                    in: cgroup, sink: sink)
        _ = await child.exit()
        #expect(cgroup.stats().pids ?? 99 <= 8)
        await cgroup.killAndRemove()
        await sink.waitFinished()
        let output = sink.stdout + sink.stderr
        #expect(output.contains("fork") || output.contains("Resource temporarily unavailable"),
                "no fork failure reported: \(output)")
        await cleanUp()
    }

    @Test func aMemoryHogIsOOMKilledAndCounted() async throws {
        let cgroup = try manager.create(agentID: "a3", limits: ResourceLimits(memoryBytes: 32 << 20))
        // The shell holds 300 MB in a variable: far past 32 MB.
        let child = try await spawn(["/bin/sh", "-c", "x=$(head -c 300000000 /dev/zero | tr '\\0' x); echo ${#x}"],
                                    in: cgroup)
        let exit = await child.exit()
        #expect(exit != .exited(code: 0))
        #expect(cgroup.oomKills() >= 1)
        await cgroup.killAndRemove()
        await cleanUp()
    }

    @Test func freezeStopsTheAgentAndThawResumesIt() async throws {
        let cgroup = try manager.create(agentID: "a4", limits: ResourceLimits())
        let child = try await spawn(["/bin/sh", "-c", "while :; do :; done"], in: cgroup)
        try await cgroup.freeze()
        let before = cgroup.stats().cpuNanoseconds ?? 0
        try await Task.sleep(for: .milliseconds(300))
        let after = cgroup.stats().cpuNanoseconds ?? 0
        #expect(after - before < 20_000_000, "a frozen agent used \(after - before) ns of CPU")
        try await cgroup.thaw()
        try await Task.sleep(for: .milliseconds(200))
        #expect((cgroup.stats().cpuNanoseconds ?? 0) - after > 50_000_000)
        cgroup.killAll()
        #expect(await child.exit() == .signaled(signal: SIGKILL, coreDumped: false))
        await cgroup.killAndRemove()
        await cleanUp()
    }

    @Test func killAllReachesDescendantsThatLeftTheProcessGroup() async throws {
        let cgroup = try manager.create(agentID: "a5", limits: ResourceLimits())
        let sink = CollectingSink()
        // setsid: the grandchild leaves the process group a group kill would hit.
        let child = try await spawn(["/bin/sh", "-c", "setsid sleep 60 & echo $!; wait"], in: cgroup, sink: sink)
        var grandchild: Int32?
        for _ in 0..<200 where grandchild == nil {
            grandchild = Int32(sink.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            try await Task.sleep(for: .milliseconds(10))
        }
        let pid = try #require(grandchild)
        #expect(cgroup.processes().contains(pid))
        cgroup.killAll()
        _ = await child.exit()
        await cgroup.killAndRemove()
        #expect(kill(pid, 0) != 0 || (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z") == true)
        await cleanUp()
    }

    @Test func leftoversOfADeadKernelAreKilledAndRemoved() async throws {
        let cgroup = try manager.create(agentID: "a6", limits: ResourceLimits())
        let child = try await spawn(["/bin/sleep", "60"], in: cgroup)
        let cleaned = await manager.removeLeftovers()
        #expect(cleaned == ["a6"])
        #expect(await child.exit() == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(cgroup.paths.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
        await cleanUp()
    }
}

/// The pure cgroup v2 path, which this hybrid build host cannot run for
/// real: the files the manager writes, against a directory laid out like a
/// cgroup2 mount (regular files stand in for the kernel's).
@Suite("cgroup v2 files")
struct CgroupV2FileTests {
    private func fakeV2Host() throws -> (CgroupHost, String) {
        let root = NSTemporaryDirectory() + "agentos-fake-cgroup2-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/system.slice/agentd.service", withIntermediateDirectories: true)
        let host = CgroupHost(mode: .v2, unified: .init(mountPoint: root, ownPath: "/system.slice/agentd.service"),
                              unifiedControllers: ["memory", "pids", "cpu"], v1: [:])
        return (host, root)
    }

    private func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }

    /// What the kernel does on mkdir in cgroupfs: the interface files appear.
    private func makeCgroup(_ directory: String, files: [String]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in files { _ = FileManager.default.createFile(atPath: directory + "/" + file, contents: nil) }
    }

    @Test func prepareDelegatesTheControllersAndCreateWritesEveryLimit() throws {
        let (host, root) = try fakeV2Host()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let own = root + "/system.slice/agentd.service"
        try makeCgroup(own, files: ["cgroup.subtree_control", "cgroup.procs"])
        try makeCgroup(own + "/agentos-test", files: ["cgroup.subtree_control", "cgroup.procs"])
        try makeCgroup(own + "/agentos-test/a1", files: ["cgroup.procs", "memory.max", "memory.swap.max", "pids.max", "cpu.max"])
        let manager = CgroupManager(host: host, baseName: "agentos-test")
        try manager.prepare()
        #expect(read(own + "/cgroup.subtree_control") == "+memory +pids +cpu")
        #expect(read(own + "/agentos-test/cgroup.subtree_control") == "+memory +pids +cpu")
        let cgroup = try manager.create(agentID: "a1", limits: ResourceLimits(memoryBytes: 64 << 20, pids: 32, cpus: 0.5))
        let directory = own + "/agentos-test/a1"
        #expect(cgroup.paths == [directory])
        #expect(cgroup.procsFiles == [directory + "/cgroup.procs"])
        #expect(read(directory + "/memory.max") == String(64 << 20))
        #expect(read(directory + "/memory.swap.max") == "0")
        #expect(read(directory + "/pids.max") == "32")
        #expect(read(directory + "/cpu.max") == "50000 100000")
        // No v1 file anywhere.
        #expect(read(directory + "/memory.limit_in_bytes") == nil)
    }

    @Test func aLimitWithoutItsV2ControllerIsAnErrorAndLeavesNothing() throws {
        let root = NSTemporaryDirectory() + "agentos-fake-cgroup2-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let host = CgroupHost(mode: .v2, unified: .init(mountPoint: root, ownPath: "/"),
                              unifiedControllers: ["pids"], v1: [:])
        try makeCgroup(root, files: ["cgroup.subtree_control"])
        try makeCgroup(root + "/agentos-test", files: ["cgroup.subtree_control"])
        let manager = CgroupManager(host: host, baseName: "agentos-test")
        try manager.prepare()
        #expect(throws: ConfinementError.self) {
            try manager.create(agentID: "a2", limits: ResourceLimits(memoryBytes: 64 << 20))
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/agentos-test/a2"))
        try makeCgroup(root + "/agentos-test/a3", files: ["pids.max"])
        _ = try manager.create(agentID: "a3", limits: ResourceLimits(pids: 8))
        #expect(read(root + "/agentos-test/a3/pids.max") == "8")
    }
}

@Suite("cgroup tuning")
struct CgroupTuningTests {
    @Test func superOptionsComeFromTheMountsOwnLine() {
        let options = CgroupTuning.superOptions(of: "/sys/fs/cgroup/unified", mountinfo: CgroupHostTests.hybridMountinfo)
        #expect(options == ["rw", "nsdelegate"])
        #expect(CgroupTuning.superOptions(of: "/nowhere", mountinfo: CgroupHostTests.hybridMountinfo) == nil)
    }
}
