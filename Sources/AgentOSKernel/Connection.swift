import AgentOSModels
import AgentOSProtocol
import AgentOSStore
import CAgentOSShim
import Logging
import NIOCore
import Synchronization

/// Who is on the other end of a connection, fixed when it is accepted.
enum Peer: Sendable, CustomStringConvertible {
    /// The kernel socket; `admin` was decided from SO_PEERCRED.
    case client(pid: Int32, uid: UInt32, gid: UInt32, admin: Bool)
    /// An agent on its own socketpair: the kernel knows which end is whose.
    case agent(id: String)

    var role: PeerRole {
        switch self {
        case .client(_, _, _, let admin): return admin ? .operator : .observer
        case .agent: return .agent
        }
    }

    var description: String {
        switch self {
        case .client(let pid, let uid, _, let admin): return "client pid \(pid) uid \(uid)\(admin ? " (admin)" : "")"
        case .agent(let id): return "agent \(id)"
        }
    }
}

/// The async side of one protocol connection: the `ProtocolHandler` on the
/// event loop has done the handshake and answered `status`; every other
/// request arrives here and is handled inline (quick ones) or as its own
/// task (ones that wait on agents or stream), answers going out through one
/// back-pressured queue.
struct Connection {
    static let inflightLimit = 64
    /// Frames a connection may hold unwritten before its mailbox stream
    /// waits (in its feed, up to `Bus.subscriberBuffer` messages).
    static let feedFrames = 2_000
    static let outboundHighWater = 4 * 1024 * 1024

    let accepted: AcceptedConnection
    let services: KernelServices
    let logger: Logger

    private var channel: NIOAsyncChannel<ConnectionInput, ByteBuffer> { accepted.channel }
    private var peer: Peer { accepted.peer }

    func run() async {
        let queue = accepted.queue
        let requests = accepted.requests
        do {
            try await channel.executeThenClose { inbound, _ in
                await readLoop(inbound, queue: queue, requests: requests)
                requests.cancelAll()
                await queue.drain(milliseconds: 1_000)
                queue.finish()
            }
        } catch {
            logger.debug("connection ended: \(error)", metadata: ["peer": "\(peer)"])
        }
        requests.cancelAll()
        queue.finish()
    }

    private func readLoop(_ inbound: NIOAsyncChannelInboundStream<ConnectionInput>, queue: OutboundQueue,
                          requests: RequestRegistry) async {
        let inflight = InflightLimit(Self.inflightLimit)
        let sends = accepted.sends
        do {
            for try await input in inbound {
                let (id, call, quiet) = (input.id, input.call, input.quiet)
                // The event loop counted it (see `BusBacklog`); it is
                // ordered once handled here, or started as its own task.
                let ordered = Self.isBusOrdered(call)
                if Self.isQuick(call) && !requests.contains(id: id) {
                    await handle(id: id, call: call, quiet: quiet, queue: queue, sends: sends)
                    if ordered { accepted.busBacklog.remove() }
                    continue
                }
                await inflight.acquire()
                let started = requests.start(id: id) {
                    defer { inflight.release() }
                    await handle(id: id, call: call, quiet: quiet, queue: queue, sends: sends)
                }
                if ordered { accepted.busBacklog.remove() }
                if !started {
                    inflight.release()
                    queue.sendNow(.error(.duplicateRequestID, "request id \(id) is already in flight on this connection",
                                         correlationID: id))
                }
            }
        } catch {
            logger.debug("read failed: \(error)", metadata: ["peer": "\(peer)"])
        }
    }

    /// Calls answered without waiting on an agent or a stream: handled in
    /// the read loop itself, saving a task hop. (`run` waits only for the
    /// spawn, which the Lifecycle actor serialises anyway.)
    private static func isQuick(_ call: KernelRequest.OneOf_Call) -> Bool {
        switch call {
        case .run(let request) where request.wait: return false   // waits for the agent's end
        case .status, .list, .inspect, .run, .stats, .policies, .tree, .checkpoints, .ready, .saveCheckpoint,
             .loadCheckpoint, .capGrant, .capList, .capRevoke, .capExplain, .audit, .myCapabilities,
             .capCheck, .tools, .pending, .approve, .deny, .memPut, .memGet, .memDelete, .memSearch,
             .memList, .send, .ack, .mailbox, .publish, .memShare, .models, .goalList, .goalPrioritize, .goalGet,
             .goalFinish: return true
        // A tool call runs a child and may wait for an operator.
        case .stop, .kill, .wait, .logs, .events, .pause, .resume, .apply, .deletePolicy, .restartChild,
             .terminateChild, .startChild, .deleteChild, .spawnChild, .auditVerify, .toolCall, .receive,
             .request, .subscribe, .modelComplete, .goalSubmit, .goalCancel: return false
        }
    }

    /// Calls a sender may make without waiting for their answer: with the
    /// envelope's `quiet`, only a failure is answered.
    static func mayBeQuiet(_ call: KernelRequest.OneOf_Call) -> Bool {
        switch call {
        case .send, .ack: return true
        default: return false
        }
    }

    /// Bus calls whose order the event loop keeps (see `BusFastPath`).
    static func isBusOrdered(_ call: KernelRequest.OneOf_Call) -> Bool {
        switch call {
        case .send, .request, .ack: return true
        default: return false
        }
    }

    // MARK: Requests

    private func handle(id: UInt64, call: KernelRequest.OneOf_Call, quiet: Bool, queue: OutboundQueue,
                        sends: SendWindow) async {
        do {
            try authorize(call)
            switch call {
            case .status:
                try await respond(id, .status(services.status()), queue)   // normally answered on the event loop
            case .run(let request):
                if request.hasBudget {
                    // Not over a live agent's budget: a name in use fails the run anyway.
                    if let live = try? await services.lifecycle.resolve(request.name), live.state.isLive {
                        throw KernelError(.alreadyExists, "an agent named \(request.name) is running (\(live.id))")
                    }
                    try setBudget(request)
                }
                // Not cancelled with the call (a run with `wait` may be):
                // a start, once asked for, goes through or fails on its own.
                let lifecycle = services.lifecycle
                let started = try await Task { try await lifecycle.run(request) }.value
                // Run and wait in one call: the answer comes at its end.
                if request.wait {
                    try await respondAtEnd(id, of: started.id, queue) { agent in .run(.with { $0.agent = agent }) }
                } else {
                    try await respond(id, .run(.with { $0.agent = started.wire() }), queue)
                }
            case .list(let request):
                var response = Agentos_V1_ListResponse()
                response.agents = try await services.lifecycle.list(includeEnded: request.all)
                try await respond(id, .list(response), queue)
            case .inspect(let request):
                try await respond(id, .inspect(try await services.lifecycle.inspect(request.agent)), queue)
            case .stop(let request):
                let grace = request.graceMs == 0 ? nil : Int64(request.graceMs)
                let record = try await services.lifecycle.stop(request.agent, graceMilliseconds: grace)
                try await respond(id, .stop(record.wire()), queue)
            case .kill(let request):
                try await respond(id, .kill(try await services.lifecycle.kill(request.agent).wire()), queue)
            case .wait(let request):
                try await respondAtEnd(id, of: try await services.lifecycle.resolve(request.agent).id, queue) { .wait($0) }
            case .logs(let request):
                try await streamLogs(id, request, queue)
            case .events(let request):
                try await streamEvents(id, request, queue)
            case .pause(let request):
                try await respond(id, .pause(try await services.lifecycle.pause(request.agent).wire()), queue)
            case .resume(let request):
                try await respond(id, .resume(try await services.lifecycle.resume(request.agent).wire()), queue)
            case .stats(let request):
                var response = Agentos_V1_StatsResponse()
                response.agents = try await services.lifecycle.stats(request.agent)
                for index in response.agents.indices {
                    guard let identity = try? await services.bus.agent(response.agents[index].id, lifecycle: services.lifecycle).identity
                    else { continue }
                    response.agents[index].modelAccounts = services.budgets.accounts(of: identity).map(ModelCalls.wire)
                }
                try await respond(id, .stats(response), queue)
            case .apply(let request):
                let file = request.file.isEmpty ? "<policy>" : request.file
                try await respond(id, .apply(try await services.supervisor.apply(source: request.source, file: file,
                                                                                  dryRun: request.dryRun)), queue)
            case .policies:
                var response = Agentos_V1_PolicyListResponse()
                response.policies = await services.supervisor.list()
                try await respond(id, .policies(response), queue)
            case .deletePolicy(let request):
                try await respond(id, .deletePolicy(try await services.supervisor.delete(request.name)), queue)
            case .tree(let request):
                var response = Agentos_V1_TreeResponse()
                response.trees = try await services.supervisor.tree(request.policy)
                try await respond(id, .tree(response), queue)
            case .restartChild(let request):
                try await respond(id, .restartChild(try await services.supervisor.child(.restart, path: request.path)), queue)
            case .terminateChild(let request):
                try await respond(id, .terminateChild(try await services.supervisor.child(.terminate, path: request.path)),
                                  queue)
            case .startChild(let request):
                try await respond(id, .startChild(try await services.supervisor.child(.start, path: request.path)), queue)
            case .deleteChild(let request):
                try await respond(id, .deleteChild(try await services.supervisor.child(.delete, path: request.path)), queue)
            case .spawnChild(let request):
                try await respond(id, .spawnChild(try await services.supervisor.spawn(supervisor: request.supervisor,
                                                                                       arguments: request.args)), queue)
            case .checkpoints(let request):
                var response = Agentos_V1_CheckpointList()
                response.checkpoints = try await services.supervisor.checkpoints(request.path)
                try await respond(id, .checkpoints(response), queue)
            case .ready:
                try await services.supervisor.ready(agentID: try agentID())
                try await respond(id, .ready(Agentos_V1_ReadyResponse()), queue)
            case .saveCheckpoint(let request):
                let saved = try await services.supervisor.saveCheckpoint(agentID: try agentID(), data: [UInt8](request.data))
                try await respond(id, .saveCheckpoint(saved), queue)
            case .loadCheckpoint:
                try await respond(id, .loadCheckpoint(try await services.supervisor.loadCheckpoint(agentID: try agentID())),
                                  queue)
            case .capGrant(let request):
                try await respond(id, .capGrant(try await CapabilityCalls(services: services).grant(request)), queue)
            case .capList(let request):
                try await respond(id, .capList(try await CapabilityCalls(services: services).list(request)), queue)
            case .capRevoke(let request):
                try await respond(id, .capRevoke(try CapabilityCalls(services: services).revoke(request)), queue)
            case .capExplain(let request):
                try await respond(id, .capExplain(try await CapabilityCalls(services: services).explain(request)), queue)
            case .audit(let request):
                try await respond(id, .audit(try await AuditCalls(services: services).list(request)), queue)
            case .auditVerify:
                try await respond(id, .auditVerify(try AuditCalls(services: services).verify()), queue)
            case .myCapabilities:
                try await respond(id, .myCapabilities(try await CapabilityCalls(services: services).held(by: try agentID())),
                                  queue)
            case .tools:
                try await respond(id, .tools(ToolCalls(services: services).list()), queue)
            case .toolCall(let request):
                try await respond(id, .toolCall(try await ToolCalls(services: services).call(request, agentID: try agentID())),
                                  queue)
            case .pending:
                var list = Agentos_V1_PendingList()
                list.calls = services.approvals.pending()
                try await respond(id, .pending(list), queue)
            case .approve(let request):
                try await respond(id, .approve(try services.approvals.decide(request.callID, approve: true,
                                                                              reason: request.reason)), queue)
            case .deny(let request):
                try await respond(id, .deny(try services.approvals.decide(request.callID, approve: false,
                                                                           reason: request.reason)), queue)
            case .send(let request):
                // Routed and queued here, in the order the frames came;
                // answered once its group is committed, without holding up
                // the next frame (so a sender's stream of sends is committed
                // in groups, still in order).
                let (sender, recipient) = try await route(request)
                try await queue.waitForRoom()   // a sender that does not read its answers is not read from
                let outcome = try services.bus.submit(request, from: sender, to: recipient)
                let full = sends.opened()
                BusFastPath.answer(id, outcome, quiet: quiet, queue: queue, sends: sends)
                // Too many of this connection's sends wait for their commit:
                // stop reading until this one is stored (back-pressure).
                if full { _ = await outcome.value() }
            case .request(let request):
                try await respond(id, .request(try await busRequest(request)), queue)
            case .receive:
                try await streamMailbox(id, agentID: try agentID(), queue)
            case .ack(let request):
                let me = try await services.bus.agent(try agentID(), lifecycle: services.lifecycle).identity
                var response = Agentos_V1_AckResponse()
                response.removed = UInt32(try services.bus.acknowledge(request.ids, identity: me))
                if !quiet { try await respond(id, .ack(response), queue) }
            case .mailbox(let request):
                let recipient = try await services.bus.recipient(request.to, lifecycle: services.lifecycle)
                let limit = request.limit == 0 ? 10 : min(Int(request.limit), 1_000)
                try await respond(id, .mailbox(try services.bus.mailbox(recipient, limit: limit)), queue)
            case .publish(let request):
                try await respond(id, .publish(try await publish(request)), queue)
            case .subscribe(let request):
                try await streamTopics(id, pattern: request.pattern, queue)
            case .memShare(let request):
                try await respond(id, .memShare(try await shareMemory(request, agentID: try agentID())), queue)
            case .memPut(let request):
                try await respond(id, .memPut(try await memory(.put, request)), queue)
            case .memGet(let request):
                try await respond(id, .memGet(try await memory(.get, request)), queue)
            case .memDelete(let request):
                try await respond(id, .memDelete(try await memory(.delete, request)), queue)
            case .memSearch(let request):
                try await respond(id, .memSearch(try await memory(.search, request)), queue)
            case .memList(let request):
                try await respond(id, .memList(try await memory(.list, request)), queue)
            case .modelComplete(let request):
                try await completeModel(id, request, queue)
            case .models:
                try await respond(id, .models(ModelCalls(services: services).list()), queue)
            case .goalSubmit(let request):
                try await respond(id, .goalSubmit(try await services.goals.submit(request)), queue)
            case .goalList(let request):
                var list = Agentos_V1_GoalList()
                list.goals = try await services.goals.list(includeEnded: request.all,
                                                           limit: request.limit == 0 ? 100 : min(Int(request.limit), 10_000),
                                                           id: request.id)
                try await respond(id, .goalList(list), queue)
            case .goalPrioritize(let request):
                try await respond(id, .goalPrioritize(try await services.goals.prioritize(request.id, priority: Int(request.priority))),
                                  queue)
            case .goalCancel(let request):
                try await respond(id, .goalCancel(try await services.goals.cancel(request.id, reason: request.reason)), queue)
            case .goalGet(let request):
                let me = try agentID()
                let identity = try await services.bus.agent(me, lifecycle: services.lifecycle).identity
                try await respond(id, .goalGet(try await services.goals.get(request.id, identity: identity, agentID: me)), queue)
            case .goalFinish(let request):
                let identity = try await services.bus.agent(try agentID(), lifecycle: services.lifecycle).identity
                try await respond(id, .goalFinish(try await services.goals.finish(request, identity: identity)), queue)
            case .capCheck(let request):
                try await respond(id, .capCheck(try await CapabilityCalls(services: services).check(request,
                                                                                                   agentID: try agentID())),
                                  queue)
            }
        } catch is OutboundQueue.Closed {
            return
        } catch is CancellationError {
            var end = Envelope()
            end.correlationID = id
            end.streamEnd.reason = "cancelled"
            queue.sendNow(end)
        } catch {
            let kernelError = KernelError.from(error)
            if kernelError.code == .internal {
                logger.error("request failed: \(kernelError.message)", metadata: ["call": "\(call.name)"])
            }
            queue.sendNow(.error(kernelError.code, kernelError.message, correlationID: id, detail: kernelError.detail))
        }
    }

    /// A plain agent's model budget, by its name, before it starts.
    private func setBudget(_ request: Agentos_V1_RunRequest) throws {
        guard !request.name.isEmpty else {
            throw KernelError(.invalidArgument, "a model budget is kept by the agent's name: give the agent a --name")
        }
        let wire = request.budget
        let budget = ModelBudget(tokens: wire.hasTokens ? Int(clamping: wire.tokens) : nil,
                                 costMicrodollars: wire.hasCostMicrodollars ? Int64(clamping: wire.costMicrodollars) : nil,
                                 requestsPerMinute: wire.hasRequestsPerMinute ? Int(wire.requestsPerMinute) : nil)
        if let problem = budget.problem() { throw KernelError(.invalidArgument, "budget: \(problem)") }
        do {
            try services.budgets.setAgent(request.name, budget)
        } catch {
            throw KernelError.from(error)
        }
    }

    /// A model call: answered whole, or streamed as deltas, then the whole
    /// completion as the last chunk.
    private func completeModel(_ id: UInt64, _ request: Agentos_V1_ModelCompleteRequest, _ queue: OutboundQueue) async throws {
        let caller: ModelCalls.Caller = if case .agent(let agentID) = peer { .agent(id: agentID) } else { .operator }
        let calls = ModelCalls(services: services)
        guard request.stream else {
            try await respond(id, .modelComplete(try await calls.complete(request, caller: caller, onDelta: { _ in })), queue)
            return
        }
        let completion = try await calls.complete(request, caller: caller) { delta in
            try await queue.send(chunk(id, .modelDelta(delta)))
        }
        try await queue.send(chunk(id, .modelCompletion(completion)))
        try await end(id, "eof", queue)
    }

    /// A request: sent, and its response waited for.
    private func busRequest(_ request: Agentos_V1_BusRequest) async throws -> Agentos_V1_BusMessage {
        // Checked as what it is, whatever type it names: a request is not
        // a response, whichever request's id it carries.
        var message = request.message
        message.type = "request"
        let (sender, recipient) = try await route(message)
        return try await services.bus.request(message, from: sender, to: recipient, timeout: Bus.requestTimeout(request))
    }

    /// Who sends (`operator`, or the agent's identity) to which mailbox,
    /// once an agent's right to message it is checked: an agent may message
    /// its team (its supervisor's other children) and whom a capability
    /// names (`capability://agent/NAME-OR-PATH?action=message`).
    private func route(_ request: Agentos_V1_SendRequest) async throws -> (sender: String, recipient: String) {
        let recipient = try await services.bus.recipient(request.to, lifecycle: services.lifecycle)
        guard case .agent(let senderID) = peer else { return (Bus.operatorIdentity, recipient) }
        let sender = try await services.bus.agent(senderID, lifecycle: services.lifecycle)
        let identity = sender.identity
        let team = Bus.sameTeam(identity, recipient)
        if !team, !services.bus.isResponse(request, from: identity, to: recipient), case .denied(let reasons) = services.capabilities.check(
            agentID: senderID, agentName: sender.name, kind: .agent, action: "message", resource: recipient) {
            throw KernelError(.permissionDenied, "\(identity) may message its team only, or whom capability://agent/NAME?action=message names: "
                                  + reasons.joined(separator: "; "))
        }
        return (identity, recipient)
    }

    /// An agent's mailbox: what waits, then what arrives, until it goes.
    private func streamMailbox(_ id: UInt64, agentID: String, _ queue: OutboundQueue) async throws {
        let identity = try await services.bus.agent(agentID, lifecycle: services.lifecycle).identity
        let (waiting, live) = try services.bus.receive(identity)
        defer { services.bus.close(live) }
        // What arrives while the waiting ones are read is in both: sent once.
        // Stored messages go by their seq (they arrive in its order);
        // requests whose requesters wait (not stored, seq 0) by their id.
        var lastSeq: Int64 = 0
        var handed: Set<String> = []
        var page = waiting
        while !page.isEmpty {
            for message in page {
                try await queue.send(chunk(id, .message(Bus.wire(message))))
                if message.seq > 0 { lastSeq = message.seq } else { handed.insert(message.id) }
            }
            page = try services.bus.stored(for: identity, after: lastSeq)
        }
        // Caught up: from here on each arrival is written from the thread
        // that delivers it (the sender's event loop, or the commit).
        let seen = Mutex((lastSeq: lastSeq, handed: handed))
        live.redirect(to: { message in
            // Called under the feed's lock, one message at a time: what is
            // seen is marked only once it is written (a message the queue
            // has no room for comes again when it has).
            seen.withLock { seen -> Bool in
                if message.seq > 0 {
                    guard message.seq > seen.lastSeq else { return true }
                } else if seen.handed.remove(message.id) != nil {
                    return true
                }
                guard queue.offerMessage(correlationID: id, message, maximumFrames: Self.feedFrames) else {
                    return false
                }
                if message.seq > 0 { seen.lastSeq = message.seq }
                return true
            }
        }, stalled: { again in queue.whenRoom(again) })
        let end = await withTaskCancellationHandler {
            await live.end.value()
        } onCancel: {
            live.finish()
        }
        try Task.checkCancellation()
        if case .overflowed = end {
            throw KernelError(.slowConsumer, "the mailbox stream fell more than \(Bus.subscriberBuffer) messages behind; "
                                  + "receive again (what was not acked waits)")
        }
        try await self.end(id, "kernel-shutdown", queue)
    }

    /// An event to a topic: operators may publish anywhere, an agent where
    /// `capability://topic/PATTERN?action=publish` allows.
    private func publish(_ request: Agentos_V1_PublishRequest) async throws -> Agentos_V1_PublishResponse {
        guard case .agent(let agentID) = peer else {
            return try services.bus.publish(request, from: Bus.operatorIdentity)
        }
        if let problem = Topics.problem(request.topic, pattern: false) { throw KernelError(.invalidArgument, problem) }
        let agent = try await services.lifecycle.resolve(agentID)
        if case .denied(let reasons) = services.capabilities.check(agentID: agentID, agentName: agent.name, kind: .topic,
                                                                   action: "publish", resource: request.topic) {
            throw KernelError(.permissionDenied, "publishing to \(request.topic) needs capability://topic/\(request.topic)?action=publish: "
                                  + reasons.joined(separator: "; "))
        }
        return try services.bus.publish(request, from: Bus.identity(of: agent))
    }

    /// Events of the topics `pattern` matches, as they are published, until
    /// the caller cancels. An agent needs a subscribe grant covering the
    /// pattern, and each event's topic is checked again (without counting a
    /// use) before it is handed over: a revoked grant stops the flow, and a
    /// grant `news.*` does not open `news.**` wider than it says.
    private func streamTopics(_ id: UInt64, pattern: String, _ queue: OutboundQueue) async throws {
        if let problem = Topics.problem(pattern, pattern: true) { throw KernelError(.invalidArgument, problem) }
        var admits: @Sendable (String) -> Bool = { _ in true }
        if case .agent(let agentID) = peer {
            let agent = try await services.lifecycle.resolve(agentID)
            if case .denied(let reasons) = services.capabilities.check(agentID: agentID, agentName: agent.name, kind: .topic,
                                                                       action: "subscribe", resource: pattern) {
                throw KernelError(.permissionDenied, "subscribing to \(pattern) needs capability://topic/\(pattern)?action=subscribe: "
                                      + reasons.joined(separator: "; "))
            }
            let capabilities = services.capabilities
            admits = { topic in
                if case .allowed = capabilities.explain(agentID: agentID, kind: .topic, action: "subscribe", resource: topic) {
                    return true
                }
                return false
            }
        }
        let live = services.bus.topics.subscribe(pattern, admits: admits)
        defer { live.finish() }
        for await event in live.stream {
            try Task.checkCancellation()
            try await queue.send(chunk(id, .message(event)))
        }
        try Task.checkCancellation()
        if live.overflowed {
            throw KernelError(.slowConsumer, "the subscription to \(pattern) fell more than \(Topics.subscriberBuffer) events behind "
                                  + "and was ended; subscribe again (what was published meanwhile is not kept)")
        }
        try await end(id, "kernel-shutdown", queue)
    }

    /// Copies one entry of the calling agent's memory into the long-term
    /// memory of `request.to` as `from/SENDER/KEY`: allowed where a message
    /// would be (its team, or whom an agent message grant names).
    private func shareMemory(_ request: Agentos_V1_MemoryRequest, agentID: String) async throws -> Agentos_V1_MemoryList {
        var probe = Agentos_V1_SendRequest()
        probe.to = request.to
        let (sender, recipient) = try await route(probe)
        guard recipient != Bus.operatorIdentity else {
            throw KernelError(.invalidArgument, "share with an agent (name, id or policy path), not the operators")
        }
        return try await MemoryCalls(services: services).share(request, agentID: agentID, from: sender, to: recipient)
    }

    /// A memory call: an agent's about itself, an operator's about the agent it names.
    private func memory(_ call: MemoryCalls.Call, _ request: Agentos_V1_MemoryRequest) async throws -> Agentos_V1_MemoryList {
        if case .agent(let id) = peer {
            guard request.agent.isEmpty || request.agent == id else {
                throw KernelError(.permissionDenied, "an agent reaches its own memory (and shared memory it is granted), not another's")
            }
            return try await MemoryCalls(services: services).handle(call, request, agentID: id)
        }
        return try await MemoryCalls(services: services).handle(call, request, agentID: nil)
    }

    /// The calling agent's id (agent calls only).
    private func agentID() throws -> String {
        guard case .agent(let id) = peer else {
            throw KernelError(.permissionDenied, "permission denied: only an agent may make this call, on its own socket")
        }
        return id
    }

    private func authorize(_ call: KernelRequest.OneOf_Call) throws {
        if case .status = call { return }
        // The registry is what a model is shown: agents read it too; and
        // memory calls are an agent's about itself (checked in the call).
        if case .agent = peer {
            switch call {
            case .tools, .memPut, .memGet, .memDelete, .memSearch, .memList, .send, .request, .publish, .subscribe,
                 .modelComplete, .models: return
            default: break
            }
        }
        if call.isAgentCall {
            guard case .agent = peer else {
                throw KernelError(.permissionDenied,
                                  "permission denied: '\(call.name)' is an agent call, made on an agent's own socket")
            }
            return
        }
        switch peer {
        case .client(_, let uid, _, let admin):
            guard admin else {
                let group = services.configuration.adminGroup.map { " or a member of group '\($0)'" } ?? ""
                throw KernelError(.permissionDenied,
                                  "permission denied: '\(call.name)' is an admin call and uid \(uid) is not root, "
                                      + "the kernel's uid (\(services.uid))\(group)")
            }
        case .agent:
            throw KernelError(.permissionDenied,
                              "permission denied: agents cannot call '\(call.name)' on their socket")
        }
    }

    /// Answers `id` at the agent's end, from the thread that ends it (no
    /// task to wake on the way). The call's task waits too, so that a
    /// cancel ends the wait ("cancelled"), and an error is answered as any.
    private func respondAtEnd(_ id: UInt64, of agentID: String, _ queue: OutboundQueue,
                              _ result: @escaping @Sendable (Agentos_V1_AgentInfo) -> KernelResponse.OneOf_Result)
        async throws {
        let lifecycle = services.lifecycle
        let end = await lifecycle.exitWaiter(agentID)
        end.whenFulfilled { outcome in
            guard case .success(let record) = outcome else { return }
            var envelope = Envelope()
            envelope.correlationID = id
            envelope.response.result = result(record.wire())
            queue.sendNow(envelope)
        }
        _ = try await lifecycle.awaitEnd(end, of: agentID)
    }

    private func respond(_ id: UInt64, _ result: KernelResponse.OneOf_Result, _ queue: OutboundQueue) async throws {
        var envelope = Envelope()
        envelope.correlationID = id
        envelope.response.result = result
        try await queue.send(envelope)
    }

    private func chunk(_ id: UInt64, _ item: StreamChunk.OneOf_Item) -> Envelope {
        var envelope = Envelope()
        envelope.correlationID = id
        envelope.chunk.item = item
        return envelope
    }

    private func end(_ id: UInt64, _ reason: String, _ queue: OutboundQueue) async throws {
        var envelope = Envelope()
        envelope.correlationID = id
        envelope.streamEnd.reason = reason
        try await queue.send(envelope)
    }

    private func streamLogs(_ id: UInt64, _ request: Agentos_V1_LogsRequest, _ queue: OutboundQueue) async throws {
        let record = try await services.lifecycle.resolve(request.agent)
        var existing: [LogRecord]
        var live: BoundedSubscription<LogRecord>?
        if request.follow, let log = await services.lifecycle.liveLog(record.id) {
            (existing, live) = log.follow()
        } else {
            existing = AgentLog.read(path: record.logPath)
        }
        if request.tail > 0 { existing = Array(existing.suffix(Int(request.tail))) }
        for item in existing { try await queue.send(chunk(id, .log(item.wire))) }
        guard let live else {
            try await end(id, request.follow ? "output-ended" : "eof", queue)
            return
        }
        defer { live.finish() }
        for await item in live.stream {
            try Task.checkCancellation()
            try await queue.send(chunk(id, .log(item.wire)))
        }
        try Task.checkCancellation()
        if live.overflowed {
            throw KernelError(.slowConsumer, "log follower fell more than \(AgentLog.followerBuffer) chunks behind; stopped")
        }
        // Both of the agent's output pipes are closed: it (and everything
        // that held them) is gone.
        try await end(id, "output-ended", queue)
    }

    private func streamEvents(_ id: UInt64, _ request: Agentos_V1_EventsRequest, _ queue: OutboundQueue) async throws {
        var agentID: String?
        if !request.agent.isEmpty { agentID = try await services.lifecycle.resolve(request.agent).id }
        let since = Int64(request.sinceSeq)
        guard request.follow else {
            let limit = request.limit == 0 ? 100 : Int(request.limit)
            for event in try services.store.events(since: since, limit: limit, agentID: agentID) {
                try await queue.send(chunk(id, .event(event.wire)))
            }
            try await end(id, "eof", queue)
            return
        }
        // Subscribe before reading history: nothing falls between the two.
        let subscription = services.events.subscribe()
        defer { subscription.finish() }
        var last: Int64
        if since > 0 || request.fromStart {
            last = since
            for event in try services.store.events(since: since, agentID: agentID) {
                try await queue.send(chunk(id, .event(event.wire)))
                last = event.seq
            }
        } else {
            last = try services.store.lastEventSeq()
        }
        for await event in subscription.stream {
            try Task.checkCancellation()
            guard event.seq > last else { continue }
            last = event.seq
            if let agentID, event.agentID != agentID { continue }
            try await queue.send(chunk(id, .event(event.wire)))
        }
        try Task.checkCancellation()
        if subscription.overflowed {
            throw KernelError(.slowConsumer, "event follower fell more than \(EventHub.subscriberBuffer) events behind; stopped")
        }
        try await end(id, "kernel-shutdown", queue)
    }
}

/// The requests in flight on one connection, so `Cancel` and the end of the
/// connection can stop them: tasks of the async side, and requests the
/// event loop answers from a callback (which are withdrawn instead).
final class RequestRegistry: Sendable {
    private enum Entry {
        case task(Task<Void, Never>)
        /// Reserved by the event loop; `withdraw` once it is known, and
        /// whether a cancel came before it was.
        case callback(withdraw: (@Sendable () -> Void)?, cancelled: Bool)
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    /// Starts `body` as request `id`; false if that id is already in flight.
    func start(id: UInt64, _ body: @escaping @Sendable () async -> Void) -> Bool {
        state.withLock { state in
            guard !state.closed, state.entries[id] == nil else { return false }
            state.entries[id] = .task(Task {
                await body()
                self.finished(id: id)
            })
            return true
        }
    }

    /// Reserves `id` for a request answered by a callback; false if that
    /// id is already in flight (or the connection is ending).
    func reserve(id: UInt64) -> Bool {
        state.withLock { state in
            guard !state.closed, state.entries[id] == nil else { return false }
            state.entries[id] = .callback(withdraw: nil, cancelled: false)
            return true
        }
    }

    /// How a reserved request is withdrawn; at once if it was cancelled
    /// meanwhile (nothing, if it has ended).
    func attach(id: UInt64, cancel withdraw: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            guard case .callback(_, let cancelled)? = state.entries[id] else { return false }
            if cancelled || state.closed { return true }
            state.entries[id] = .callback(withdraw: withdraw, cancelled: false)
            return false
        }
        if now { withdraw() }
    }

    var count: Int { state.withLock { $0.entries.count } }

    func contains(id: UInt64) -> Bool {
        state.withLock { $0.entries[id] != nil }
    }

    func cancel(id: UInt64) {
        let entry = state.withLock { state -> Entry? in
            guard let entry = state.entries[id] else { return nil }
            if case .callback(nil, _) = entry { state.entries[id] = .callback(withdraw: nil, cancelled: true) }
            return entry
        }
        Self.stop(entry)
    }

    func cancelAll() {
        let entries = state.withLock { state -> [Entry] in
            state.closed = true
            return Array(state.entries.values)
        }
        for entry in entries { Self.stop(entry) }
    }

    func finished(id: UInt64) {
        state.withLock { _ = $0.entries.removeValue(forKey: id) }
    }

    private static func stop(_ entry: Entry?) {
        switch entry {
        case .task(let task)?: task.cancel()
        case .callback(let withdraw?, _)?: withdraw()
        case .callback(nil, _)?, nil: break
        }
    }
}
