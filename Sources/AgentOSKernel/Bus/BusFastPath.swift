import AgentOSProtocol
import Synchronization

/// An agent's bus calls answered on its connection's event loop, where
/// nothing needs a lookup or a wait: a send or request to its team (or the
/// response to a request whose requester waits), and acks of requests it
/// was handed. A request's response and a mailbox's arrivals are written
/// from the thread that produces them, so a round trip between two agents
/// costs no task at all in the kernel. Anything else (a name to resolve, a
/// capability to check and audit, a full window, a stored message to
/// remove) goes to the connection's async side, as before.
struct BusFastPath {
    let agentID: String
    let services: KernelServices
    let queue: OutboundQueue
    let sends: SendWindow
    let requests: RequestRegistry

    /// Handles `call` (true), or leaves it to the async side (false).
    /// `quiet`: a success is not answered.
    func handle(id: UInt64, call: KernelRequest.OneOf_Call, quiet: Bool) -> Bool {
        // An id still in flight: the async side says so.
        guard !requests.contains(id: id) else { return false }
        do {
            switch call {
            case .send(let request):
                guard queue.hasRoom, !sends.isFull, let (sender, recipient) = try route(request) else { return false }
                let outcome = try services.bus.submit(request, from: sender, to: recipient)
                _ = sends.opened()
                Self.answer(id, outcome, quiet: quiet, queue: queue, sends: sends)
                return true
            case .request(var request):
                // Checked as what it is, whatever type it names.
                request.message.type = "request"
                guard requests.count < Connection.inflightLimit, let (sender, recipient) = try route(request.message) else {
                    return false
                }
                try ask(id, request, from: sender, to: recipient)
                return true
            case .ack(let request):
                guard let me = services.bus.knownAgent(agentID),
                      let removed = services.bus.acknowledgeHanded(request.ids, identity: me.identity) else { return false }
                if quiet { return true }
                var envelope = Envelope()
                envelope.correlationID = id
                envelope.response.result = .ack(.with { $0.removed = UInt32(removed) })
                queue.sendNow(envelope)
                return true
            default:
                return false
            }
        } catch {
            let failure = KernelError.from(error)
            queue.sendNow(.error(failure.code, failure.message, correlationID: id, detail: failure.detail))
            return true
        }
    }

    /// A send's answer, once its group is committed (on the committing
    /// thread); none for a quiet send that succeeded.
    static func answer(_ id: UInt64, _ outcome: Handoff<Bus.SendOutcome>, quiet: Bool, queue: OutboundQueue,
                       sends: SendWindow) {
        outcome.whenFulfilled { result in
            sends.closed()
            switch result {
            case .success(let sent):
                if !quiet { queue.sendAnswerLater(correlationID: id, sent) }
            case .failure(let error):
                queue.sendNow(.error(error.code, error.message, correlationID: id, detail: error.detail))
            }
        }
    }

    /// A request, answered from whichever thread ends it.
    private func ask(_ id: UInt64, _ request: Agentos_V1_BusRequest, from sender: String, to recipient: String) throws {
        guard requests.reserve(id: id) else {
            queue.sendNow(.error(.duplicateRequestID, "request id \(id) is already in flight on this connection",
                                 correlationID: id))
            return
        }
        let timeout = Bus.requestTimeout(request)
        let (queue, requests) = (queue, requests)
        let pending: Bus.PendingRequest
        do {
            pending = try services.bus.request(request.message, from: sender, to: recipient, timeout: timeout,
                                               timers: queue.eventLoop) { outcome in
                requests.finished(id: id)
                if case .answered(let response) = outcome {
                    queue.sendRequestAnswerLater(correlationID: id, response)
                    return
                }
                var envelope = Envelope()
                envelope.correlationID = id
                if let failure = Bus.failure(outcome, recipient: recipient, timeout: timeout) {
                    envelope = .error(failure.code, failure.message, correlationID: id, detail: failure.detail)
                } else {
                    envelope.streamEnd.reason = "cancelled"
                }
                queue.sendLater(envelope)
            }
        } catch {
            requests.finished(id: id)
            throw error
        }
        requests.attach(id: id, cancel: pending.withdraw)
    }

    /// Who sends to which mailbox, when that is known without a lookup and
    /// allowed without a capability check: the team, or the answer to a
    /// request whose requester waits. Nil: the async side decides.
    private func route(_ request: Agentos_V1_SendRequest) throws -> (sender: String, recipient: String)? {
        guard let me = services.bus.knownAgent(agentID) else { return nil }
        let answers = (request.type == "response" || request.type == "stream") && !request.correlationID.isEmpty
        let recipient: String
        if let named = try Bus.namedRecipient(request.to) {
            recipient = named
        } else if answers, services.bus.isAwaited(request.correlationID, requester: request.to, responder: me.identity) {
            // A requester's identity names its mailbox as it is.
            return (me.identity, request.to)
        } else {
            return nil
        }
        if Bus.sameTeam(me.identity, recipient) { return (me.identity, recipient) }
        if answers, services.bus.isAwaited(request.correlationID, requester: recipient, responder: me.identity) {
            return (me.identity, recipient)
        }
        return nil
    }
}

/// Bus calls of one connection handed to its async side and not yet
/// ordered there. While any are, later bus calls follow them there too:
/// one sender's sends and acks keep the order it sent them in. (A request
/// runs as its own task there, as it always did: a later send may pass it.)
final class BusBacklog: Sendable {
    private let count = Atomic<Int>(0)

    var isEmpty: Bool { count.load(ordering: .acquiring) == 0 }

    func add() {
        count.add(1, ordering: .releasing)
    }

    func remove() {
        count.subtract(1, ordering: .releasing)
    }
}
