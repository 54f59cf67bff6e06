import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Limits an agent runs under; nil = not limited (by this setting).
public struct ResourceLimits: Sendable, Equatable {
    public var memoryBytes: Int?
    public var pids: Int?
    /// CPUs' worth of time per period, e.g. 0.5.
    public var cpus: Double?

    public init(memoryBytes: Int? = nil, pids: Int? = nil, cpus: Double? = nil) {
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.cpus = cpus
    }
}

/// What the cgroups say an agent uses.
public struct CgroupStats: Sendable, Equatable {
    public var memoryBytes: Int?
    public var memoryPeakBytes: Int?
    public var pids: Int?
    public var cpuNanoseconds: Int?
    public var oomKills: Int
}

/// Creates and finds agents' cgroups. Each kernel (state dir) has its own
/// base cgroup in every hierarchy it uses, below the kernel's own cgroup;
/// each agent a leaf below that.
public final class CgroupManager: Sendable {
    public let host: CgroupHost
    public let baseName: String
    /// The v1 controllers agents join (for limits, accounting, freezing).
    static let v1Controllers = ["memory", "pids", "cpu", "cpuacct", "freezer"]

    public init(host: CgroupHost, baseName: String) {
        self.host = host
        self.baseName = baseName
    }

    /// Base directories, by hierarchy key ("unified" or a v1 controller).
    var bases: [(key: String, directory: String)] {
        var result: [(String, String)] = []
        if let unified = host.unified { result.append(("unified", unified.ownDirectory + "/" + baseName)) }
        var seen: Set<String> = []
        for controller in Self.v1Controllers {
            guard let hierarchy = host.v1[controller] else { continue }
            let directory = hierarchy.ownDirectory + "/" + baseName
            // cpu and cpuacct are often one hierarchy (cpu,cpuacct).
            if seen.insert(directory).inserted { result.append((controller, directory)) }
        }
        return result
    }

    /// Creates the base cgroups. On cgroup v2 with controllers, enables them
    /// for agents, first moving the kernel into a leaf of its own if its
    /// cgroup holds processes (the "no internal processes" rule).
    public func prepare() throws(ConfinementError) {
        guard host.mode != .none else { return }
        let wanted = ["memory", "pids", "cpu"].filter { host.unifiedControllers.contains($0) }
        if let unified = host.unified, !wanted.isEmpty {
            let enable = wanted.map { "+" + $0 }.joined(separator: " ")
            let own = unified.ownDirectory
            do {
                try CgroupFiles.write(own + "/cgroup.subtree_control", enable)
            } catch where error.errno == EBUSY {
                let leaf = own + "/agentd"
                try CgroupFiles.makeDirectory(leaf)
                try CgroupFiles.write(leaf + "/cgroup.procs", "0")
                try CgroupFiles.write(own + "/cgroup.subtree_control", enable)
            }
            try CgroupFiles.makeDirectory(own + "/" + baseName)
            try CgroupFiles.write(own + "/" + baseName + "/cgroup.subtree_control", enable)
        }
        for (_, directory) in bases {
            try CgroupFiles.makeDirectory(directory)
        }
    }

    /// A new agent's cgroups with `limits` applied. A limit this host cannot
    /// enforce is an error, never silently dropped.
    public func create(agentID: String, limits: ResourceLimits) throws(ConfinementError) -> AgentCgroup {
        guard host.mode != .none || limits == ResourceLimits() else {
            throw ConfinementError(.unsupported, "cannot enforce resource limits: no cgroup hierarchy is mounted on this host")
        }
        var directories: [String: String] = [:]
        for (key, base) in bases { directories[key] = base + "/" + agentID }
        let cgroup = AgentCgroup(host: host, directories: directories)
        do {
            for directory in Set(directories.values) { try CgroupFiles.makeDirectory(directory) }
            try cgroup.apply(limits)
        } catch {
            cgroup.removeDirectories()
            throw error
        }
        return cgroup
    }

    /// Whether a pids limit can be enforced here (the default one is applied
    /// only then; an explicit one is an error otherwise).
    public var canLimitPids: Bool {
        host.unifiedControllers.contains("pids") || host.v1["pids"] != nil
    }

    /// Removes the (empty) base cgroups; at kernel shutdown.
    public func removeBases() {
        for (_, directory) in bases { rmdir(directory) }
    }

    /// Agents' cgroups left by an earlier run of this kernel (it died and
    /// their descendants may live on): every process in them is killed and
    /// the cgroups removed, except `keeping`. Returns the agent ids cleaned.
    public func removeLeftovers(keeping: Set<String> = []) async -> [String] {
        var ids: Set<String> = []
        for (_, base) in bases {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where !keeping.contains(name) {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: base + "/" + name, isDirectory: &isDirectory), isDirectory.boolValue {
                    ids.insert(name)
                }
            }
        }
        for id in ids {
            var directories: [String: String] = [:]
            for (key, base) in bases { directories[key] = base + "/" + id }
            let cgroup = AgentCgroup(host: host, directories: directories.filter {
                FileManager.default.fileExists(atPath: $0.value)
            })
            await cgroup.killAndRemove()
        }
        return ids.sorted()
    }
}

/// One agent's cgroups: a leaf in each hierarchy used.
public final class AgentCgroup: Sendable {
    let host: CgroupHost
    /// By hierarchy key: "unified" or a v1 controller name.
    public let directories: [String: String]

    init(host: CgroupHost, directories: [String: String]) {
        self.host = host
        self.directories = directories
    }

    /// The cgroup.procs files the child joins before exec.
    public var procsFiles: [String] {
        Set(directories.values).sorted().map { $0 + "/cgroup.procs" }
    }

    /// Where each limit is enforced, for `inspect`.
    public var paths: [String] { Set(directories.values).sorted() }

    private var unifiedHasControllers: Bool { !host.unifiedControllers.isEmpty }

    /// Writes `limits` (a prepared cgroup gets them when it is taken).
    public func apply(_ limits: ResourceLimits) throws(ConfinementError) {
        if let memory = limits.memoryBytes {
            if host.unifiedControllers.contains("memory"), let directory = directories["unified"] {
                try CgroupFiles.write(directory + "/memory.max", String(memory))
                try? CgroupFiles.write(directory + "/memory.swap.max", "0")
            } else if let directory = directories["memory"] {
                try CgroupFiles.write(directory + "/memory.limit_in_bytes", String(memory))
                // No swap beyond the limit, where the host accounts swap.
                try? CgroupFiles.write(directory + "/memory.memsw.limit_in_bytes", String(memory))
            } else {
                throw ConfinementError(.unsupported, "cannot enforce --memory: no memory controller on this host (cgroup \(host.mode.rawValue))")
            }
        }
        if let pids = limits.pids {
            if host.unifiedControllers.contains("pids"), let directory = directories["unified"] {
                try CgroupFiles.write(directory + "/pids.max", String(pids))
            } else if let directory = directories["pids"] {
                try CgroupFiles.write(directory + "/pids.max", String(pids))
            } else {
                throw ConfinementError(.unsupported, "cannot enforce --pids: no pids controller on this host (cgroup \(host.mode.rawValue))")
            }
        }
        if let cpus = limits.cpus {
            let period = 100_000
            let quota = max(1_000, Int((cpus * Double(period)).rounded()))
            if host.unifiedControllers.contains("cpu"), let directory = directories["unified"] {
                try CgroupFiles.write(directory + "/cpu.max", "\(quota) \(period)")
            } else if let directory = directories["cpu"] {
                try CgroupFiles.write(directory + "/cpu.cfs_period_us", String(period))
                try CgroupFiles.write(directory + "/cpu.cfs_quota_us", String(quota))
            } else {
                throw ConfinementError(.unsupported, "cannot enforce --cpu: no cpu controller on this host (cgroup \(host.mode.rawValue))")
            }
        }
    }

    /// Opens every cgroup.procs for writing (CLOEXEC); the caller closes them.
    public func openProcsFiles() throws(ConfinementError) -> [Int32] {
        var fds: [Int32] = []
        for file in procsFiles {
            let fd = open(file, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let code = errno
                for opened in fds { close(opened) }
                throw ConfinementError.system("open \(file)", errno: code)
            }
            fds.append(fd)
        }
        return fds
    }

    // MARK: Freezer

    /// Freezes every process of the agent; returns once they are frozen.
    public func freeze() async throws(ConfinementError) {
        try await setFrozen(true)
    }

    public func thaw() async throws(ConfinementError) {
        try await setFrozen(false)
    }

    private func setFrozen(_ frozen: Bool) async throws(ConfinementError) {
        if let directory = directories["unified"], FileManager.default.fileExists(atPath: directory + "/cgroup.freeze") {
            try CgroupFiles.write(directory + "/cgroup.freeze", frozen ? "1" : "0")
            for _ in 0..<400 {
                let events = CgroupFiles.keyValues(directory + "/cgroup.events")
                if events["frozen"] == (frozen ? 1 : 0) { return }
                if Task.isCancelled { throw ConfinementError(.system, "cancelled while the freezer settled") }
                try? await Task.sleep(for: .milliseconds(5))
            }
            throw ConfinementError(.system, "the agent's cgroup did not \(frozen ? "freeze" : "thaw") within 2 s")
        } else if let directory = directories["freezer"] {
            try CgroupFiles.write(directory + "/freezer.state", frozen ? "FROZEN" : "THAWED")
            for _ in 0..<400 {
                let state = CgroupFiles.read(directory + "/freezer.state")?.trimmingCharacters(in: .whitespacesAndNewlines)
                if state == (frozen ? "FROZEN" : "THAWED") { return }
                if Task.isCancelled { throw ConfinementError(.system, "cancelled while the freezer settled") }
                try? await Task.sleep(for: .milliseconds(5))
            }
            throw ConfinementError(.system, "the agent's cgroup did not \(frozen ? "freeze" : "thaw") within 2 s")
        } else {
            throw ConfinementError(.unsupported,
                                   "cannot \(frozen ? "pause" : "resume"): no freezer on this host (cgroup \(host.mode.rawValue))")
        }
    }

    // MARK: Kill and remove

    /// SIGKILL to every process in the agent's cgroups, descendants included.
    public func killAll() {
        if let directory = directories["unified"], (try? CgroupFiles.write(directory + "/cgroup.kill", "1")) != nil {
            return
        }
        // Without cgroup.kill: freeze (no new forks), kill each, thaw so the
        // kills are delivered.
        let freezer = directories["freezer"]
        if let freezer { try? CgroupFiles.write(freezer + "/freezer.state", "FROZEN") }
        for pid in processes() { kill(pid, SIGKILL) }
        if let freezer { try? CgroupFiles.write(freezer + "/freezer.state", "THAWED") }
    }

    /// Every pid in any of the agent's cgroups.
    public func processes() -> [Int32] {
        var pids: Set<Int32> = []
        for directory in Set(directories.values) {
            for line in (CgroupFiles.read(directory + "/cgroup.procs") ?? "").split(separator: "\n") {
                if let pid = Int32(line) { pids.insert(pid) }
            }
        }
        return pids.sorted()
    }

    public var isEmpty: Bool { processes().isEmpty }

    /// Kills what is left, waits until the cgroups are empty, removes them.
    public func killAndRemove() async {
        for attempt in 0..<400 {
            if isEmpty { break }
            if attempt % 20 == 0 { killAll() }
            try? await Task.sleep(for: .milliseconds(5))
        }
        removeDirectories()
    }

    public func removeDirectories() {
        for directory in Set(directories.values) { rmdir(directory) }
    }

    // MARK: Accounting

    public func stats() -> CgroupStats {
        var stats = CgroupStats(oomKills: oomKills())
        if host.unifiedControllers.contains("memory"), let directory = directories["unified"] {
            stats.memoryBytes = CgroupFiles.int(directory + "/memory.current")
            stats.memoryPeakBytes = CgroupFiles.int(directory + "/memory.peak")
        } else if let directory = directories["memory"] {
            stats.memoryBytes = CgroupFiles.int(directory + "/memory.usage_in_bytes")
            stats.memoryPeakBytes = CgroupFiles.int(directory + "/memory.max_usage_in_bytes")
        }
        if host.unifiedControllers.contains("pids"), let directory = directories["unified"] {
            stats.pids = CgroupFiles.int(directory + "/pids.current")
        } else if let directory = directories["pids"] {
            stats.pids = CgroupFiles.int(directory + "/pids.current")
        } else {
            stats.pids = processes().count
        }
        // cpuacct is often co-mounted with cpu (one "cpu,cpuacct" hierarchy).
        if let directory = directories["cpuacct"] ?? directories["cpu"],
           let usage = CgroupFiles.int(directory + "/cpuacct.usage") {
            stats.cpuNanoseconds = usage
        } else if let directory = directories["unified"],
                  let usage = CgroupFiles.keyValues(directory + "/cpu.stat")["usage_usec"] {
            stats.cpuNanoseconds = usage * 1_000
        }
        return stats
    }

    /// Processes the OOM killer has killed in this agent's memory cgroup.
    public func oomKills() -> Int {
        if host.unifiedControllers.contains("memory"), let directory = directories["unified"] {
            return CgroupFiles.keyValues(directory + "/memory.events")["oom_kill"] ?? 0
        }
        if let directory = directories["memory"] {
            return CgroupFiles.keyValues(directory + "/memory.oom_control")["oom_kill"] ?? 0
        }
        return 0
    }
}

/// Small file helpers for cgroupfs, with errors that name the file.
enum CgroupFiles {
    static func write(_ path: String, _ text: String) throws(ConfinementError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ConfinementError.system("open \(path)", errno: errno) }
        defer { close(fd) }
        let written = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        guard written >= 0 else { throw ConfinementError.system("write '\(text)' to \(path)", errno: errno) }
    }

    /// The whole file, nil if it cannot be read. Plain open/read/close:
    /// cgroup files are small, and this runs on every agent's exit.
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                bytes += chunk[0..<n]
            } else if n == 0 {
                return String(decoding: bytes, as: UTF8.self)
            } else if errno != EINTR {
                return nil
            }
        }
    }

    static func int(_ path: String) -> Int? {
        read(path).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// "key value" lines (cgroup.events, memory.events, memory.oom_control, cpu.stat).
    static func keyValues(_ path: String) -> [String: Int] {
        var result: [String: Int] = [:]
        for line in (read(path) ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Int(parts[1]) { result[String(parts[0])] = value }
        }
        return result
    }

    static func makeDirectory(_ path: String) throws(ConfinementError) {
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw ConfinementError.system("create cgroup \(path)", errno: errno)
        }
    }
}
