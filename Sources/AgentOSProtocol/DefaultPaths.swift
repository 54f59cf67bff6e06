#if canImport(Glibc)
import Glibc
#endif

/// Where the kernel socket and state live unless told otherwise. Both
/// binaries use this, so `agentd` and `agentctl` agree without flags.
public enum DefaultPaths {
    /// Environment variable naming the kernel socket (both binaries).
    public static let socketVariable = "AGENTOS_SOCKET"
    /// Environment variable naming the state directory (agentd).
    public static let stateDirVariable = "AGENTOS_STATE_DIR"

    /// root: /run/agentos/kernel.sock; others: $XDG_RUNTIME_DIR/agentos/kernel.sock
    /// (or /tmp/agentos-UID/kernel.sock without XDG_RUNTIME_DIR).
    public static func socketPath(environment: [String: String]) -> String {
        if let explicit = environment[socketVariable], !explicit.isEmpty { return explicit }
        if getuid() == 0 { return "/run/agentos/kernel.sock" }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            return runtime + "/agentos/kernel.sock"
        }
        return "/tmp/agentos-\(getuid())/kernel.sock"
    }

    /// root: /var/lib/agentos; others: $XDG_STATE_HOME/agentos or ~/.local/state/agentos.
    public static func stateDirectory(environment: [String: String]) -> String {
        if let explicit = environment[stateDirVariable], !explicit.isEmpty { return explicit }
        if getuid() == 0 { return "/var/lib/agentos" }
        if let state = environment["XDG_STATE_HOME"], !state.isEmpty { return state + "/agentos" }
        let home = environment["HOME"] ?? "/tmp"
        return home + "/.local/state/agentos"
    }
}
