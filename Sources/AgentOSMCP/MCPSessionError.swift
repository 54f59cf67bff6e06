/// What can go wrong talking to an MCP server.
public enum MCPSessionError: Error, Sendable, CustomStringConvertible {
    case closed
    case messageTooLong(Int)
    case timedOut(milliseconds: Int64)
    case invalidArguments(String)

    public var description: String {
        switch self {
        case .closed: "the MCP server's connection is closed"
        case .messageTooLong(let limit): "the MCP server sent a message longer than \(limit) bytes"
        case .timedOut(let milliseconds): "the MCP server did not answer within \(milliseconds) ms"
        case .invalidArguments(let why): why
        }
    }
}
