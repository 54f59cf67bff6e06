/// Versions of the wire contract and of the software.
public enum AgentOSVersion {
    /// The software release, shown by `agentctl status` and `--version`.
    public static let release = "0.1.0"
    /// The wire protocol version this build speaks. Bump it when a change
    /// would be misread by a peer of the previous version.
    public static let protocolVersion: UInt32 = 1
    /// The oldest protocol version this build still accepts.
    public static let minimumProtocolVersion: UInt32 = 1
}

/// The name of the environment variable that tells an agent which inherited
/// file descriptor is its end of the kernel socketpair.
public enum AgentEnvironment {
    public static let socketFD = "AGENTOS_FD"
    public static let agentID = "AGENTOS_AGENT_ID"
    public static let agentName = "AGENTOS_AGENT_NAME"
    /// The fd number the socketpair end is placed at in every agent.
    public static let socketFDNumber: Int32 = 3
}
