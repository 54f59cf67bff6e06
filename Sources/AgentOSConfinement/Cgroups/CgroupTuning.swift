import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The cgroup2 mount option `favordynmods` (Linux 6.0+). Moving a task into
/// a cgroup normally waits for an RCU grace period once the cgroup locks
/// have been idle: about 10 ms per agent start on the build host, on v1
/// hierarchies too (the lock is global). With the option, moves are cheap
/// and every fork and exit on the host pays a little instead. Host-wide and
/// lasting, so agentd sets it only when the operator asks
/// (`agentd --cgroup-favordynmods`).
public enum CgroupTuning {
    public static let favorDynamicModifications = "favordynmods"

    /// The super options of the filesystem mounted at `mountPoint`, from
    /// /proc/self/mountinfo ("rw,nsdelegate,...").
    public static func superOptions(of mountPoint: String,
                                    mountinfo: String? = nil) -> [String]? {
        let text = mountinfo ?? ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 4, fields[4] == mountPoint,
                  let separator = fields.firstIndex(of: "-"), fields.count > separator + 3 else { continue }
            return fields[separator + 3].split(separator: ",").map(String.init)
        }
        return nil
    }

    /// Whether the cgroup2 mount at `mountPoint` has favordynmods.
    public static func favorsDynamicModifications(_ mountPoint: String) -> Bool {
        superOptions(of: mountPoint)?.contains(favorDynamicModifications) ?? false
    }

    /// Remounts the cgroup2 hierarchy at `mountPoint` with favordynmods,
    /// keeping its other options. Returns false if it had it already.
    @discardableResult
    public static func enableFavorDynamicModifications(_ mountPoint: String) throws(ConfinementError) -> Bool {
        guard let options = superOptions(of: mountPoint) else {
            throw ConfinementError(.unsupported, "no cgroup2 mount at \(mountPoint)")
        }
        if options.contains(favorDynamicModifications) { return false }
        try remount(mountPoint, options: options + [favorDynamicModifications])
        return true
    }

    /// Remounts the cgroup2 hierarchy at `mountPoint` with exactly these
    /// super options (as `superOptions` lists them; rw/ro are the mount's own).
    public static func remount(_ mountPoint: String, options: [String]) throws(ConfinementError) {
        let data = options.filter { $0 != "rw" && $0 != "ro" }.joined(separator: ",")
        let rc = data.withCString { mount(nil, mountPoint, nil, UInt(MS_REMOUNT), $0) }
        guard rc == 0 else {
            throw ConfinementError.system("remount \(mountPoint) with '\(data)'", errno: errno)
        }
    }
}
