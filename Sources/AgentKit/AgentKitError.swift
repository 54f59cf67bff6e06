import AgentOSClient
import AgentOSProtocol

// The protocol types AgentKit's API hands out, nameable by an agent that
// imports only AgentKit.
@_exported import enum AgentOSProtocol.Agentos_V1_ErrorCode
@_exported import struct AgentOSProtocol.Agentos_V1_ToolInfo
@_exported import struct AgentOSProtocol.Agentos_V1_CapabilityInfo
@_exported import typealias AgentOSProtocol.ErrorCode

/// The one error type of AgentKit. A refusal by the kernel carries its wire
/// code (`.kernel(.permissionDenied)`, ...) and `detail` (e.g. `reason:
/// mailbox-full`), so an agent can handle each case; the rest say what went
/// wrong on this side of the socket.
public struct AgentKitError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        /// The kernel refused the call (PROTOCOL.md §8 lists the codes).
        case kernel(ErrorCode)
        /// AGENTOS_FD is not set: the program was not started by agentd.
        case notStartedByKernel
        /// The kernel closed the socket (it stopped, or this agent is ending).
        case connectionClosed
        /// A frame that breaks the protocol, or an answer of the wrong kind.
        case protocolViolation
        /// A payload that could not be encoded or decoded as asked.
        case encoding
        /// A system call failed (errno in the message).
        case system
    }

    public let code: Code
    public let message: String
    public let detail: [String: String]

    public init(_ code: Code, _ message: String, detail: [String: String] = [:]) {
        self.code = code
        self.message = message
        self.detail = detail
    }

    /// The kernel's wire code, when the kernel refused the call.
    public var kernelCode: ErrorCode? {
        if case .kernel(let code) = code { return code }
        return nil
    }

    public var description: String {
        if case .kernel(let code) = code { return "\(code.name): \(message)" }
        return message
    }

    /// A socket failure as the agent sees it: a broken or failed socket is
    /// the connection gone; a bad frame, a protocol violation.
    init(_ error: ClientError) {
        switch error.code {
        case .protocolViolation: self.init(.protocolViolation, error.message)
        case .kernel(let code): self.init(.kernel(code), error.message)
        case .cannotConnect, .connectionClosed, .system: self.init(.connectionClosed, error.message)
        }
    }
}
