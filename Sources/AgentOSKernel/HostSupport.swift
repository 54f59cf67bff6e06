import AgentOSConfinement
import CAgentOSShim
import Foundation

/// What confinement the host offers, found once at start and shown by
/// `agentctl status`.
struct HostSupport: Sendable {
    let cgroups: CgroupHost
    let landlockABI: Int
    let userNamespaces: Bool

    static func detect() -> HostSupport {
        let maximum = (try? String(contentsOfFile: "/proc/sys/user/max_user_namespaces", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        return HostSupport(cgroups: CgroupHost.detect(), landlockABI: Int(aos_landlock_abi()),
                           userNamespaces: maximum > 0)
    }
}
