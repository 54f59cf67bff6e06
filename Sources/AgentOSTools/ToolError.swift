/// Why a tool call was refused before anything ran.
public struct ToolError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        case unknownTool
        case invalidArguments
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
