#if canImport(Glibc)
import Glibc
#endif

/// The one error type of the confinement module; `code` is stable, the
/// message is one line for people.
public struct ConfinementError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case programNotFound
        case programNotExecutable
        case spawnFailed
        case invalidSpec
        case reactorStopped
        /// The host cannot enforce what was asked (never silently weakened).
        case unsupported
        case system
    }

    public let code: Code
    public let message: String
    public let errno: Int32?

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String { message }

    static func system(_ what: String, errno: Int32) -> ConfinementError {
        ConfinementError(.system, "\(what): \(errnoDescription(errno))", errno: errno)
    }
}

/// "No such file or directory (ENOENT)" style text for an errno.
public func errnoDescription(_ code: Int32) -> String {
    let text = strerror(code).map { String(cString: $0) } ?? "error \(code)"
    return text
}
