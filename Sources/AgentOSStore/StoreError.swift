/// The one error type of the store module.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case cannotOpen
        case notFound
        case ambiguous
        case nameInUse
        case corrupt
        /// A write would take a namespace past its quota.
        case quotaExceeded
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
