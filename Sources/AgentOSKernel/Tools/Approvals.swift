import AgentOSProtocol
import Synchronization

/// Tool calls waiting for an operator (grants with `approve=operator`).
/// A call waits here until `agentctl approve` or `agentctl deny` decides
/// it, its deadline passes (denied), or its agent goes away (the call's
/// task is cancelled: denied). Each step is an event, so in the audit chain.
final class Approvals: Sendable {
    enum Decision: Sendable, Equatable {
        case approved(reason: String)
        case denied(reason: String)
    }

    private struct Waiting {
        var call: Agentos_V1_PendingCall
        var continuation: CheckedContinuation<Decision, Never>?
        var decided: Decision?
    }

    private let events: EventHub
    private let waiting = Mutex<[String: Waiting]>([:])

    init(events: EventHub) {
        self.events = events
    }

    /// Waits for a decision on `call` (its deadline set by the caller).
    func decision(for call: Agentos_V1_PendingCall) async -> Decision {
        let id = call.callID
        waiting.withLock { $0[id] = Waiting(call: call) }
        _ = try? events.record("approval.requested", agentID: call.agent,
                               "\(call.agentName) waits for approval of \(call.tool) (call \(id)): agentctl approve \(id)",
                               data: ["call": id, "tool": call.tool, "resource": call.resource, "grant": call.grantID])
        let wait = max(0, call.deadlineNs - unixNanoseconds())
        let timer = Task {
            try await Task.sleep(for: .nanoseconds(wait))
            self.decide(id, .denied(reason: "no operator decided within the approval timeout"), kind: "approval.expired")
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let decided = waiting.withLock { waiting -> Decision? in
                    if let decided = waiting[id]?.decided {
                        waiting[id] = nil
                        return decided
                    }
                    waiting[id]?.continuation = continuation
                    return nil
                }
                if let decided { continuation.resume(returning: decided) }
            }
        } onCancel: {
            self.decide(id, .denied(reason: "the calling agent went away"), kind: "approval.abandoned")
        }
    }

    /// The calls waiting now, oldest first.
    func pending() -> [Agentos_V1_PendingCall] {
        waiting.withLock { waiting in
            waiting.values.filter { $0.decided == nil }.map(\.call).sorted { $0.requestedAtNs < $1.requestedAtNs }
        }
    }

    /// An operator's decision on the call `reference` names (its id or a
    /// unique prefix of it).
    func decide(_ reference: String, approve: Bool, reason: String) throws -> Agentos_V1_PendingCall {
        guard !reference.isEmpty else { throw KernelError(.invalidArgument, "no call id: see agentctl pending") }
        let matches = waiting.withLock { waiting in
            waiting.values.filter { $0.decided == nil && $0.call.callID.hasPrefix(reference) }.map(\.call)
        }
        guard let call = matches.first else {
            _ = try? events.record("approval.unknown", "an operator tried to \(approve ? "approve" : "deny") \(reference), which no call waits under",
                                   data: ["call": reference])
            throw KernelError(.notFound, "no tool call \(reference) waits for approval (agentctl pending lists them)")
        }
        guard matches.count == 1 else {
            throw KernelError(.ambiguous, "\(reference) names \(matches.count) waiting calls: give more of the id")
        }
        let note = reason.isEmpty ? "" : ": \(reason)"
        let decision: Decision = approve ? .approved(reason: "approved by the operator\(note)")
            : .denied(reason: "denied by the operator\(note)")
        guard decide(call.callID, decision, kind: approve ? "approval.approved" : "approval.denied") else {
            throw KernelError(.notFound, "tool call \(call.callID) was decided meanwhile")
        }
        var answered = call
        answered.decision = approve ? "approved" : "denied"
        return answered
    }

    /// Decides a waiting call once; false if it was decided already.
    @discardableResult
    private func decide(_ id: String, _ decision: Decision, kind: String) -> Bool {
        let (call, continuation) = waiting.withLock { waiting -> (Agentos_V1_PendingCall?, CheckedContinuation<Decision, Never>?) in
            guard var entry = waiting[id], entry.decided == nil else { return (nil, nil) }
            if let continuation = entry.continuation {
                waiting[id] = nil
                return (entry.call, continuation)
            }
            // Not waiting yet (decided between its record and its wait).
            entry.decided = decision
            waiting[id] = entry
            return (entry.call, nil)
        }
        guard let call else { return false }
        let reason: String
        switch decision {
        case .approved(let text), .denied(let text): reason = text
        }
        _ = try? events.record(kind, agentID: call.agent, "\(call.tool) call \(id) of \(call.agentName): \(reason)",
                               data: ["call": id, "tool": call.tool, "reason": reason])
        continuation?.resume(returning: decision)
        return true
    }
}
