import AgentOSConfinement
import AgentOSProtocol
import AgentOSStore

/// The one error type of the kernel module. `code` is the wire error code
/// the client sees; `message` is one line for people.
public struct KernelError: Error, CustomStringConvertible, Sendable {
    public let code: ErrorCode
    public let message: String
    public let detail: [String: String]

    public init(_ code: ErrorCode, _ message: String, detail: [String: String] = [:]) {
        self.code = code
        self.message = message
        self.detail = detail
    }

    public var description: String { message }

    /// Any error as the client should see it.
    static func from(_ error: any Error) -> KernelError {
        switch error {
        case let error as KernelError:
            return error
        case let error as StoreError:
            switch error.code {
            case .notFound: return KernelError(.notFound, error.message)
            case .ambiguous: return KernelError(.ambiguous, error.message)
            case .nameInUse: return KernelError(.alreadyExists, error.message)
            case .cannotOpen, .corrupt: return KernelError(.internal, error.message)
            case .quotaExceeded: return KernelError(.resourceExhausted, error.message, detail: ["reason": "memory-quota"])
            }
        case let error as ConfinementError:
            switch error.code {
            case .programNotFound: return KernelError(.programNotFound, error.message)
            case .programNotExecutable: return KernelError(.programNotExecutable, error.message)
            case .invalidSpec: return KernelError(.invalidArgument, error.message)
            case .spawnFailed, .system: return KernelError(.spawnFailed, error.message)
            case .reactorStopped: return KernelError(.shuttingDown, error.message)
            case .unsupported: return KernelError(.unsupported, error.message)
            }
        default:
            return KernelError(.internal, "internal error: \(error)")
        }
    }
}
