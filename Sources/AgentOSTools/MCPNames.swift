/// How tools of MCP servers are named in the registry: `mcp.SERVER.TOOL`.
public enum MCPNames {
    public static let prefix = "mcp."

    /// A server's name: one segment of a tool name, 1-63 letters, digits, '_' or '-'.
    public static func isServerName(_ name: String) -> Bool {
        (1...63).contains(name.unicodeScalars.count) && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
        }
    }

    /// The registry name of a server's tool.
    public static func toolName(server: String, tool: String) -> String {
        prefix + server + "." + tool
    }

    public static let serverNameRule = "1-63 letters, digits, '_' or '-' (its tools are mcp.NAME.TOOL)"
}
