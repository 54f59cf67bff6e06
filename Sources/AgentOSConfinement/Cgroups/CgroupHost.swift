import Foundation

/// Which cgroup hierarchies this host has and where this process sits in
/// them. Read once at start-up from /proc/self/mountinfo and /proc/self/cgroup.
///
/// * v2: one cgroup2 hierarchy with the controllers (most current distros).
/// * v1: one hierarchy per controller under /sys/fs/cgroup/<controller>.
/// * hybrid: v1 controllers plus a cgroup2 hierarchy (usually without
///   controllers) at /sys/fs/cgroup/unified; cgroup.kill, cgroup.freeze and
///   cgroup.events work there, limits go through v1.
public struct CgroupHost: Sendable, Equatable {
    public enum Mode: String, Sendable {
        case v2, v1, hybrid, none
    }

    /// A mounted hierarchy: where, and this process's cgroup in it.
    public struct Hierarchy: Sendable, Equatable {
        public let mountPoint: String
        /// This process's cgroup, relative to the mount point ("/" = the root).
        public let ownPath: String

        public var ownDirectory: String {
            ownPath == "/" ? mountPoint : mountPoint + ownPath
        }
    }

    public let mode: Mode
    /// The cgroup2 hierarchy, if mounted.
    public let unified: Hierarchy?
    /// Controllers enabled in the cgroup2 hierarchy at this process's cgroup.
    public let unifiedControllers: Set<String>
    /// v1 hierarchies by controller name (memory, pids, cpu, cpuacct, freezer, ...).
    public let v1: [String: Hierarchy]

    public init(mode: Mode, unified: Hierarchy?, unifiedControllers: Set<String>, v1: [String: Hierarchy]) {
        self.mode = mode
        self.unified = unified
        self.unifiedControllers = unifiedControllers
        self.v1 = v1
    }

    public static func detect() -> CgroupHost {
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        let membership = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? ""
        return parse(mountinfo: mountinfo, cgroup: membership) { path in
            (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        }
    }

    /// Pure parser, for tests: `read` returns a file's contents.
    static func parse(mountinfo: String, cgroup: String, read: (String) -> String) -> CgroupHost {
        // /proc/self/cgroup: "ID:controllers:path"; "0::path" is cgroup2.
        var ownByControllers: [String: String] = [:]
        var ownUnified: String?
        for line in cgroup.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty {
                ownUnified = String(parts[2])
            } else {
                for controller in parts[1].split(separator: ",") {
                    ownByControllers[String(controller)] = String(parts[2])
                }
            }
        }

        var unified: Hierarchy?
        var v1: [String: Hierarchy] = [:]
        for line in mountinfo.split(separator: "\n") {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let left = halves[0].split(separator: " ")
            let right = halves[1].split(separator: " ")
            guard left.count >= 5, right.count >= 3 else { continue }
            let root = String(left[3])
            let mountPoint = unescape(String(left[4]))
            switch right[0] {
            case "cgroup2":
                guard unified == nil, let own = ownUnified else { continue }
                unified = Hierarchy(mountPoint: mountPoint, ownPath: relative(own, to: root))
            case "cgroup":
                for option in right[2].split(separator: ",") {
                    let controller = String(option)
                    guard let own = ownByControllers[controller], v1[controller] == nil else { continue }
                    v1[controller] = Hierarchy(mountPoint: mountPoint, ownPath: relative(own, to: root))
                }
            default:
                continue
            }
        }
        // Named hierarchies (name=systemd) carry no controller.
        v1 = v1.filter { !$0.key.hasPrefix("name=") }

        var controllers: Set<String> = []
        if let unified {
            let text = read(unified.ownDirectory + "/cgroup.controllers")
            controllers = Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        }
        let mode: Mode
        switch (unified != nil, !v1.isEmpty) {
        case (true, false): mode = .v2
        case (true, true): mode = controllers.isEmpty ? .hybrid : (v1.isEmpty ? .v2 : .hybrid)
        case (false, true): mode = .v1
        case (false, false): mode = .none
        }
        return CgroupHost(mode: mode, unified: unified, unifiedControllers: controllers, v1: v1)
    }

    private static func relative(_ path: String, to root: String) -> String {
        guard root != "/", path.hasPrefix(root) else { return path }
        let rest = String(path.dropFirst(root.count))
        return rest.isEmpty ? "/" : rest
    }

    private static func unescape(_ text: String) -> String {
        // mountinfo escapes space, tab, newline and backslash as \ooo.
        guard text.contains("\\") else { return text }
        var result = ""
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == "\\", let end = text.index(index, offsetBy: 4, limitedBy: text.endIndex),
               let code = UInt8(text[text.index(after: index)..<end], radix: 8) {
                result.append(Character(UnicodeScalar(code)))
                index = end
            } else {
                result.append(text[index])
                index = text.index(after: index)
            }
        }
        return result
    }

    /// One line for `agentctl status`: "hybrid (v1: cpu, memory, pids; v2 at /sys/fs/cgroup/unified)".
    public var summary: String {
        var parts: [String] = []
        if !v1.isEmpty { parts.append("v1: " + v1.keys.sorted().joined(separator: ", ")) }
        if let unified {
            let controllers = unifiedControllers.isEmpty ? "no controllers" : unifiedControllers.sorted().joined(separator: ", ")
            parts.append("v2 at \(unified.mountPoint) (\(controllers))")
        }
        return mode.rawValue + (parts.isEmpty ? "" : " (" + parts.joined(separator: "; ") + ")")
    }
}
