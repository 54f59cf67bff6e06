import SwiftProtobuf

/// Short names for the generated types, so call sites read as the domain.
public typealias Envelope = Agentos_V1_Envelope
public typealias Hello = Agentos_V1_Hello
public typealias Welcome = Agentos_V1_Welcome
public typealias KernelRequest = Agentos_V1_Request
public typealias KernelResponse = Agentos_V1_Response
public typealias WireError = Agentos_V1_Error
public typealias ErrorCode = Agentos_V1_ErrorCode
public typealias AgentInfo = Agentos_V1_AgentInfo
public typealias AgentState = Agentos_V1_AgentState
public typealias ExitStatus = Agentos_V1_ExitStatus
public typealias KernelEvent = Agentos_V1_Event
public typealias LogChunk = Agentos_V1_LogChunk
public typealias LogStream = Agentos_V1_LogStream
public typealias StreamChunk = Agentos_V1_StreamChunk
public typealias PeerRole = Agentos_V1_PeerRole

extension Envelope {
    public static func hello(client: String) -> Envelope {
        var hello = Hello()
        hello.minVersion = AgentOSVersion.minimumProtocolVersion
        hello.maxVersion = AgentOSVersion.protocolVersion
        hello.client = client
        var envelope = Envelope()
        envelope.hello = hello
        return envelope
    }

    public static func request(id: UInt64, _ call: KernelRequest.OneOf_Call, quiet: Bool = false) -> Envelope {
        var request = KernelRequest()
        request.call = call
        var envelope = Envelope()
        envelope.requestID = id
        envelope.quiet = quiet
        envelope.request = request
        return envelope
    }

    public static func error(_ code: ErrorCode, _ message: String, correlationID: UInt64 = 0,
                             detail: [String: String] = [:]) -> Envelope {
        var error = WireError()
        error.code = code
        error.message = message
        error.detail = detail
        var envelope = Envelope()
        envelope.correlationID = correlationID
        envelope.error = error
        return envelope
    }

    /// The serialized envelope inside a frame.
    public func framed() throws -> [UInt8] {
        let payload: [UInt8] = try serializedBytes()
        return Frame.encode(payload)
    }
}

extension KernelRequest.OneOf_Call {
    /// The call's name as the protocol document and error messages spell it.
    public var name: String {
        switch self {
        case .status: return "status"
        case .run: return "run"
        case .list: return "list"
        case .inspect: return "inspect"
        case .stop: return "stop"
        case .kill: return "kill"
        case .wait: return "wait"
        case .logs: return "logs"
        case .events: return "events"
        case .pause: return "pause"
        case .resume: return "resume"
        case .stats: return "stats"
        case .apply: return "apply"
        case .policies: return "policies"
        case .deletePolicy: return "delete_policy"
        case .tree: return "tree"
        case .restartChild: return "restart_child"
        case .terminateChild: return "terminate_child"
        case .startChild: return "start_child"
        case .deleteChild: return "delete_child"
        case .spawnChild: return "spawn_child"
        case .checkpoints: return "checkpoints"
        case .ready: return "ready"
        case .saveCheckpoint: return "save_checkpoint"
        case .loadCheckpoint: return "load_checkpoint"
        case .capGrant: return "cap_grant"
        case .capList: return "cap_list"
        case .capRevoke: return "cap_revoke"
        case .capExplain: return "cap_explain"
        case .audit: return "audit"
        case .auditVerify: return "audit_verify"
        case .myCapabilities: return "my_capabilities"
        case .capCheck: return "cap_check"
        case .tools: return "tools"
        case .toolCall: return "tool_call"
        case .pending: return "pending"
        case .approve: return "approve"
        case .deny: return "deny"
        case .memPut: return "mem_put"
        case .memGet: return "mem_get"
        case .memDelete: return "mem_delete"
        case .memSearch: return "mem_search"
        case .memList: return "mem_list"
        case .send: return "send"
        case .receive: return "receive"
        case .ack: return "ack"
        case .mailbox: return "mailbox"
        case .request: return "request"
        case .publish: return "publish"
        case .subscribe: return "subscribe"
        case .memShare: return "mem_share"
        case .modelComplete: return "model_complete"
        case .models: return "models"
        case .goalSubmit: return "goal_submit"
        case .goalList: return "goal_list"
        case .goalPrioritize: return "goal_prioritize"
        case .goalCancel: return "goal_cancel"
        case .goalGet: return "goal_get"
        case .goalFinish: return "goal_finish"
        }
    }

    /// Calls only an agent makes, on its own socket, about itself.
    public var isAgentCall: Bool {
        switch self {
        case .ready, .saveCheckpoint, .loadCheckpoint, .myCapabilities, .capCheck, .toolCall, .receive, .ack, .memShare,
             .goalGet, .goalFinish:
            return true
        default: return false
        }
    }
}

extension ErrorCode {
    /// Stable lower-case name, used in `--json` output and messages.
    public var name: String {
        switch self {
        case .unspecified: return "unspecified"
        case .frameTooLarge: return "frame_too_large"
        case .malformedFrame: return "malformed_frame"
        case .handshakeRequired: return "handshake_required"
        case .versionMismatch: return "version_mismatch"
        case .handshakeTimeout: return "handshake_timeout"
        case .slowConsumer: return "slow_consumer"
        case .unknownMessage: return "unknown_message"
        case .invalidArgument: return "invalid_argument"
        case .permissionDenied: return "permission_denied"
        case .notFound: return "not_found"
        case .ambiguous: return "ambiguous"
        case .alreadyExists: return "already_exists"
        case .programNotFound: return "program_not_found"
        case .programNotExecutable: return "program_not_executable"
        case .spawnFailed: return "spawn_failed"
        case .notRunning: return "not_running"
        case .shuttingDown: return "shutting_down"
        case .internal: return "internal"
        case .duplicateRequestID: return "duplicate_request_id"
        case .unsupported: return "unsupported"
        case .invalidPolicy: return "invalid_policy"
        case .conflict: return "conflict"
        case .resourceExhausted: return "resource_exhausted"
        case .modelFailed: return "model_failed"
        case .UNRECOGNIZED(let value): return "code_\(value)"
        }
    }
}

extension AgentState {
    public var name: String {
        switch self {
        case .unspecified: return "unknown"
        case .pending: return "pending"
        case .running: return "running"
        case .paused: return "paused"
        case .completed: return "completed"
        case .failed: return "failed"
        case .lost: return "lost"
        case .UNRECOGNIZED(let value): return "state_\(value)"
        }
    }

    public var isLive: Bool { self == .pending || self == .running || self == .paused }
}
