import AgentOSProtocol
#if canImport(Glibc)
import Glibc
#endif

/// The one error type of the client module.
public struct ClientError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        /// The socket could not be reached.
        case cannotConnect
        /// The kernel answered with an error frame.
        case kernel(ErrorCode)
        /// The bytes from the kernel did not follow the protocol.
        case protocolViolation
        /// The kernel closed the connection.
        case connectionClosed
        case system
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The kernel's error code, when the kernel sent one.
    public var kernelCode: ErrorCode? {
        if case .kernel(let code) = code { return code }
        return nil
    }

    static func cannotConnect(_ path: String, errno code: Int32) -> ClientError {
        let reason = String(cString: strerror(code))
        switch code {
        case ENOENT, ECONNREFUSED:
            return ClientError(.cannotConnect,
                               "cannot connect to the kernel at \(path): \(reason): is agentd running? start it with: agentd --socket \(path)")
        case EACCES, EPERM:
            return ClientError(.cannotConnect,
                               "cannot connect to the kernel at \(path): \(reason): the socket is open to root, agentd's user and its admin group")
        default:
            return ClientError(.cannotConnect, "cannot connect to the kernel at \(path): \(reason)")
        }
    }
}
