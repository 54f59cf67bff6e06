import AgentOSProtocol
import AgentOSStore
import Dispatch
import NIOCore
import NIOPosix
import Foundation
import Synchronization

/// The message bus: durable, bounded mailboxes in the state store, one per
/// identity (a policy worker's path, else an agent's name), so a message to
/// a worker that is restarting waits for it, and one accepted before a
/// `kill -9` of the kernel is delivered after the restart. Delivery is at
/// least once: a message stays until its recipient acks it; its id lets
/// the recipient drop a repeat.
///
/// Sends are committed in groups: what arrives while a transaction runs
/// goes into the next one, in arrival order, and each sender is answered
/// once its message is stored. A message for a mailbox someone is reading
/// right now is handed to its readers at once and stored only if it is not
/// acked within `ackGrace`: one acked sooner is never written, and its
/// sender is answered with the ack (as a broker's publisher confirms skip
/// the disk for a message its consumer already acked). Either way a sender
/// is answered only once its message is stored or acked, so one accepted
/// before a crash is never lost. A request made with `request` is not stored:
/// it lives (and waits for a restarting recipient) as long as its requester
/// waits, and its response goes straight to that requester. A kernel crash
/// ends the requester's call with its connection, so storing either would
/// only leave messages nobody waits for.
extension AgentRecord {
    /// A policy worker's path (POLICY/CHILD/...), from the environment its supervisor gave it.
    var policyPath: String? { environment["AGENTOS_CHILD_PATH"] }
}

final class Bus: Sendable {
    private let store: StateStore
    private let events: EventHub
    /// Live mailbox streams, by the identity they receive for.
    private let arrivals = Mutex<[String: [ObjectIdentifier: MailboxFeed]]>([:])
    let topics = Topics()
    let mailboxLimit: Int
    private let state = Mutex(State())
    /// Agents' identities and names by id (fixed for an agent's life; every
    /// message an agent sends needs its own): read on every call, apart
    /// from the mailboxes' state.
    private let agents = Mutex<[String: (identity: String, name: String)]>([:])
    /// Runs the group commits, one at a time, off the concurrency pool.
    private let writer = DispatchQueue(label: "agentos.bus.writer")
    /// Fires the deadlines of requests made off the event loops (never
    /// behind a commit); a timer is cancelled in O(log n) when its request ends.
    private let deadlines: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()

    static let subscriberBuffer = 10_000
    static let maximumPayloadBytes = 1 << 20
    static let operatorIdentity = "operator"
    /// Messages in one group commit at most.
    static let groupLimit = 1_000
    /// How long a message handed to a live reader waits for its ack before
    /// it is stored (nanoseconds).
    static let ackGrace: UInt64 = 5_000_000

    typealias SendOutcome = Result<Agentos_V1_SendResponse, KernelError>

    private struct Queued {
        let message: MessageRecord
        let outcome: Handoff<SendOutcome>
        /// Handed to the recipient's live readers when it came (an
        /// `Unstored` whose grace ended).
        let delivered: Bool
    }

    /// A message handed to its recipient's live readers and not stored.
    private struct Unstored {
        let message: MessageRecord
        let outcome: Handoff<SendOutcome>
        /// When it came, or when a failed commit gave it back (uptime nanoseconds).
        var queuedAt: UInt64
        /// In a group being committed: an ack now is applied after it.
        var committing = false
        var acked = false
    }

    /// A group to commit, with what the mailboxes it touches held when it was taken.
    private struct Group {
        let queued: [Queued]
        /// Stored counts known, and each mailbox's generation then.
        let known: [String: Int]
        let generations: [String: Int]
        /// Unstored counts, and which of the group's messages were unstored.
        let unstored: [String: Int]
        let admitted: Set<String>
    }

    /// A group to commit, or when to look again.
    private enum Step {
        case commit(Group)
        case wait(until: UInt64)
        case done
    }

    /// A requester waiting for the response to its request.
    private struct Waiter {
        let requester: String
        let responder: String
        let response: Handoff<RequestOutcome>
    }

    /// How a request whose requester waits ends.
    enum RequestOutcome: Sendable {
        case answered(MessageRecord)
        case timedOut
        /// The requester gave up (cancelled, or its connection ended).
        case withdrawn
        case kernelStopping
    }

    /// A request whose requester waits; `withdraw` ends it for a requester that gives up.
    struct PendingRequest: Sendable {
        fileprivate let outcome: Handoff<RequestOutcome>

        func withdraw() {
            outcome.fulfil(.withdrawn)
        }
    }

    private struct State {
        /// Sends accepted and not yet committed, in arrival order.
        var queued: [Queued] = []
        var committing = false
        /// Stored messages per mailbox, as far as known (every mailbox
        /// write goes through the bus); unknown ones are counted in the
        /// commit. `generation` changes with each removal, so a commit that
        /// raced an ack does not write back a stale size.
        var depths: [String: Int] = [:]
        var generation: [String: Int] = [:]
        /// Messages handed to live readers and not stored, by id, and how
        /// many each mailbox has (they count toward its limit).
        var unstored: [String: Unstored] = [:]
        var unstoredCount: [String: Int] = [:]
        /// Their ids in arrival order (acked ones are skipped when met).
        var unstoredOrder = CircularBuffer<String>()
        /// Messages to store before they are delivered, by recipient: while
        /// a mailbox has any, later ones wait their turn too (one order).
        var storing: [String: Int] = [:]
        /// A commit is scheduled for when the oldest unstored one's grace ends.
        var timerArmed = false
        /// Requests whose requester waits, by id (not stored).
        var requests: [String: MessageRecord] = [:]
        var waiters: [String: Waiter] = [:]
        /// Requests answered or withdrawn lately, with who asked whom: an
        /// ack of one (a responder acks after it answers) needs no store
        /// write, and a response that comes too late is dropped, not refused.
        var finished: [String: (requester: String, responder: String)] = [:]
        var finishedOrder: [String] = []

        mutating func finish(_ id: String) {
            requests[id] = nil
            guard let waiter = waiters.removeValue(forKey: id) else { return }
            finished[id] = (waiter.requester, waiter.responder)
            finishedOrder.append(id)
            if finishedOrder.count > 4_096 {
                for old in finishedOrder.prefix(1_024) { finished[old] = nil }
                finishedOrder.removeFirst(1_024)
            }
        }

        /// Whether `message` answers a request of `requester` to `responder`
        /// whose requester waits (true), or waited and is gone (false), else nil.
        func awaited(_ correlationID: String, requester: String, responder: String) -> Bool? {
            if let waiter = waiters[correlationID] {
                return waiter.requester == requester && waiter.responder == responder ? true : nil
            }
            if let pair = finished[correlationID], pair.requester == requester, pair.responder == responder { return false }
            return nil
        }

        func pendingRequests(for recipient: String) -> [MessageRecord] {
            requests.values.filter { $0.recipient == recipient }.sorted { $0.sentAt < $1.sentAt }
        }

        /// The store's count is no longer known (a failed write).
        mutating func removed(from recipient: String) {
            depths[recipient] = nil
            generation[recipient, default: 0] += 1
        }

        /// Stored messages of `recipient` are about to be deleted: a count
        /// made meanwhile (a commit's or a reader's) may or may not see it,
        /// and is not kept.
        mutating func willRemove(from recipient: String) {
            generation[recipient, default: 0] += 1
        }

        /// `count` stored messages of `recipient` were deleted (after
        /// `willRemove`): a known count stays known.
        mutating func removed(_ count: Int, from recipient: String) {
            if let depth = depths[recipient] { depths[recipient] = max(0, depth - count) }
        }

        /// Takes an unstored message out of the count (acked, stored or failed).
        mutating func forgetUnstored(_ id: String) -> Unstored? {
            guard let entry = unstored.removeValue(forKey: id) else { return nil }
            let recipient = entry.message.recipient
            let left = unstoredCount[recipient, default: 1] - 1
            unstoredCount[recipient] = left > 0 ? left : nil
            return entry
        }

        /// Unstored messages of `recipient` not acked, oldest first.
        func unstoredMessages(for recipient: String) -> [MessageRecord] {
            guard unstoredCount[recipient] != nil else { return [] }
            return unstored.values.filter { $0.message.recipient == recipient && !$0.acked }.map(\.message)
                .sorted { $0.sentAt < $1.sentAt }
        }

        /// What `recipient`'s mailbox holds, as far as known.
        func depth(of recipient: String) -> Int {
            (depths[recipient] ?? 0) + unstoredCount[recipient, default: 0]
        }
    }

    init(store: StateStore, events: EventHub, mailboxLimit: Int) {
        self.store = store
        self.events = events
        self.mailboxLimit = mailboxLimit
    }

    /// The mailbox `to` names: a policy path as given, or a live or ended
    /// agent's identity.
    func recipient(_ to: String, lifecycle: Lifecycle) async throws -> String {
        if let recipient = try Self.namedRecipient(to) { return recipient }
        return Self.identity(of: try await lifecycle.resolve(to))
    }

    /// The mailbox `to` names when that needs no lookup (the operators', or
    /// a policy path); nil for an agent's name or id.
    static func namedRecipient(_ to: String) throws -> String? {
        // The operators' own mailbox: where responses to their requests go.
        if to == operatorIdentity { return to }
        let bytes = to.utf8
        guard bytes.contains(UInt8(ascii: "/")) else { return nil }
        // Every segment non-empty, and neither "." nor ".." (on the bytes:
        // this runs for every message an agent sends).
        var segment = 0, dots = 0
        for byte in bytes {
            if byte == UInt8(ascii: "/") {
                guard segment > 0, dots != segment || dots > 2 else { throw Self.notAPath(to) }
                segment = 0
                dots = 0
            } else {
                segment += 1
                if byte == UInt8(ascii: ".") { dots += 1 }
            }
        }
        guard segment > 0, dots != segment || dots > 2 else { throw Self.notAPath(to) }
        return to
    }

    private static func notAPath(_ to: String) -> KernelError {
        KernelError(.invalidArgument, "'\(to)' is not an agent or a policy path POLICY/CHILD")
    }

    /// The team of an identity: its parent path (nil for a plain agent).
    static func team(of identity: String) -> Substring.UTF8View? {
        let bytes = identity.utf8
        return bytes.lastIndex(of: UInt8(ascii: "/")).map { bytes[..<$0] }
    }

    /// An agent's identity: its policy path, else its name (its mailbox's
    /// name, and its long-term memory's).
    static func identity(of agent: AgentRecord) -> String {
        agent.policyPath ?? agent.name
    }

    /// The identity and name of the agent with id `id`, looked up once.
    func agent(_ id: String, lifecycle: Lifecycle) async throws -> (identity: String, name: String) {
        if let known = agents.withLock({ $0[id] }) { return known }
        return remember(try await lifecycle.resolve(id))
    }

    /// Notes an agent's identity and name (when its connection opens, so
    /// its bus calls can be answered without a lookup).
    @discardableResult
    func remember(_ agent: AgentRecord) -> (identity: String, name: String) {
        let entry = (identity: Self.identity(of: agent), name: agent.name)
        agents.withLock { agents in
            if agents.count >= 4_096 { agents.removeAll() }
            agents[agent.id] = entry
        }
        return entry
    }

    /// Whether two identities are of one team (children of one supervisor).
    static func sameTeam(_ one: String, _ other: String) -> Bool {
        guard let mine = team(of: one), let theirs = team(of: other) else { return false }
        return mine.elementsEqual(theirs)
    }

    /// How long a request waits for its response: `timeoutMs` as asked
    /// (0: the default of 30 s), at most 10 minutes.
    static func requestTimeout(_ request: Agentos_V1_BusRequest) -> Duration {
        .milliseconds(Int64(request.timeoutMs == 0 ? 30_000 : min(request.timeoutMs, 600_000)))
    }

    /// The identity and name of agent `id`, if known without a lookup.
    func knownAgent(_ id: String) -> (identity: String, name: String)? {
        agents.withLock { $0[id] }
    }

    /// Whether `correlationID` names a request of `requester` to
    /// `responder` whose requester still waits.
    func isAwaited(_ correlationID: String, requester: String, responder: String) -> Bool {
        state.withLock { $0.awaited(correlationID, requester: requester, responder: responder) == true }
    }

    // MARK: Sending

    /// Takes a message for `recipient`'s mailbox: its place in the order is
    /// fixed now; the outcome comes once its group is committed (or at once,
    /// for a response a requester is waiting for). Bad input throws here.
    func submit(_ request: Agentos_V1_SendRequest, from sender: String, to recipient: String) throws -> Handoff<SendOutcome> {
        let message = try Self.record(request, from: sender, to: recipient)
        let outcome = Handoff<SendOutcome>()
        if message.type == "response" {
            let waiter = state.withLock { state -> Waiter? in
                guard let waiter = state.waiters[message.correlationID], waiter.requester == recipient,
                      waiter.responder == sender else { return nil }
                return waiter
            }
            let late = waiter == nil
                && state.withLock { $0.awaited(message.correlationID, requester: recipient, responder: sender) } == false
            // Handed to the requester that waits, or dropped: its requester gave up.
            if late || waiter?.response.fulfil(.answered(message)) == true {
                outcome.fulfil(.success(Self.sent(message, depth: 0)))
                return outcome
            }
        }
        // A request sent this way is stored (it is acked by its response).
        let hasReaders = message.type != "request" && arrivals.withLock { $0[recipient]?.isEmpty == false }
        // When its grace starts (read only for a message it may apply to).
        let now = hasReaders ? DispatchTime.now().uptimeNanoseconds : 0
        enum Next { case commit, armTimer, nothing }
        let (next, early) = state.withLock { state -> (Next, Bool) in
            if hasReaders, state.storing[recipient] == nil, let stored = state.depths[recipient],
               stored + state.unstoredCount[recipient, default: 0] < mailboxLimit {
                state.unstored[message.id] = Unstored(message: message, outcome: outcome, queuedAt: now)
                state.unstoredCount[recipient, default: 0] += 1
                state.unstoredOrder.append(message.id)
                // Stored only if its grace ends first: no commit now.
                guard !state.timerArmed, !state.committing else { return (.nothing, true) }
                state.timerArmed = true
                return (.armTimer, true)
            }
            state.storing[recipient, default: 0] += 1
            state.queued.append(Queued(message: message, outcome: outcome, delivered: false))
            defer { state.committing = true }
            return (state.committing ? .nothing : .commit, false)
        }
        if early { deliver(message) }
        switch next {
        case .commit: writer.async { self.commitQueued() }
        case .armTimer: armGraceTimer(at: now + Self.ackGrace)
        case .nothing: break
        }
        return outcome
    }

    private func armGraceTimer(at deadline: UInt64) {
        writer.asyncAfter(deadline: DispatchTime(uptimeNanoseconds: deadline)) { self.graceEnded() }
    }

    /// Stores every message not acked yet, whatever its grace (at shutdown).
    func flush() {
        writer.sync {
            state.withLock { $0.committing = true }
            commitQueued(flush: true)
        }
    }

    /// The grace of the oldest unstored message ended: commit it, unless a
    /// commit runs (it looks again when it is done).
    private func graceEnded() {
        let start = state.withLock { state -> Bool in
            state.timerArmed = false
            defer { state.committing = true }
            return !state.committing
        }
        if start { commitQueued() }
    }

    /// The next group: the unstored messages whose grace ended (all of
    /// them with `flush`), then the messages to store first. A mailbox's
    /// unstored ones go before its messages to store (they came first):
    /// one order in the store.
    private func nextStep(flush: Bool) -> Step {
        let now = DispatchTime.now().uptimeNanoseconds
        return state.withLock { state -> Step in
            var group: [Queued] = []
            var admitted: Set<String> = []
            func admit(_ id: String, _ entry: inout Unstored) {
                entry.committing = true
                admitted.insert(id)
                group.append(Queued(message: entry.message, outcome: entry.outcome, delivered: true))
            }
            var wake: UInt64?
            while group.count < Self.groupLimit, let id = state.unstoredOrder.first {
                // Acked meanwhile, or taken already: nothing to do here.
                guard var entry = state.unstored[id], !entry.committing else {
                    state.unstoredOrder.removeFirst()
                    continue
                }
                guard flush || now >= entry.queuedAt + Self.ackGrace else {
                    wake = entry.queuedAt + Self.ackGrace
                    break
                }
                state.unstoredOrder.removeFirst()
                admit(id, &entry)
                state.unstored[id] = entry
            }
            let taken = min(state.queued.count, max(0, Self.groupLimit - group.count))
            let toStore = state.queued.prefix(taken)
            state.queued.removeFirst(taken)
            let waitingFirst = Set(toStore.map(\.message.recipient)).filter { state.unstoredCount[$0] != nil }
            if !waitingFirst.isEmpty {
                for id in state.unstoredOrder {
                    guard var entry = state.unstored[id], !entry.committing,
                          waitingFirst.contains(entry.message.recipient) else { continue }
                    admit(id, &entry)
                    state.unstored[id] = entry
                }
            }
            group.append(contentsOf: toStore)
            guard !group.isEmpty else {
                state.committing = false
                guard let wake, !state.timerArmed else { return .done }
                state.timerArmed = true
                return .wait(until: wake)
            }
            var known: [String: Int] = [:], generations: [String: Int] = [:], unstored: [String: Int] = [:]
            for recipient in Set(group.map(\.message.recipient)) {
                known[recipient] = state.depths[recipient]
                generations[recipient] = state.generation[recipient, default: 0]
                unstored[recipient] = state.unstoredCount[recipient]
            }
            return .commit(Group(queued: group, known: known, generations: generations, unstored: unstored,
                                 admitted: admitted))
        }
    }

    /// Commits what is queued, a group at a time, until nothing is due.
    private func commitQueued(flush: Bool = false) {
        while true {
            let taken: Group
            switch nextStep(flush: flush) {
            case .done:
                return
            case .wait(let until):
                armGraceTimer(at: until)
                return
            case .commit(let next):
                taken = next
            }
            let (group, known, admitted) = (taken.queued, taken.known, taken.admitted)
            do {
                let (stored, depths) = try store.enqueueMessages(group.map(\.message), limit: mailboxLimit, depths: known,
                                                                 unstored: taken.unstored, admitted: admitted)
                // Unstored ones acked while their group was written: removed now.
                let ackedMeanwhile = state.withLock { state -> [String: [String]] in
                    for (recipient, depth) in depths {
                        if let before = known[recipient] {
                            // Acks meanwhile took theirs off the count: add ours.
                            if let now = state.depths[recipient] { state.depths[recipient] = now + depth - before }
                        } else if state.generation[recipient, default: 0] == taken.generations[recipient] {
                            state.depths[recipient] = depth
                        } else {
                            // Counted here, and changed meanwhile: counted again when needed.
                            state.depths[recipient] = nil
                        }
                    }
                    var acked: [String: [String]] = [:]
                    for id in admitted {
                        if let entry = state.forgetUnstored(id), entry.acked {
                            acked[entry.message.recipient, default: []].append(id)
                        }
                    }
                    return acked
                }
                for (queued, message) in zip(group, stored) {
                    guard let message else {
                        queued.outcome.fulfil(.failure(refusal(queued.message)))
                        continue
                    }
                    if !queued.delivered { deliver(message) }
                    queued.outcome.fulfil(.success(Self.sent(message, depth: depths[message.recipient] ?? 0)))
                }
                finishStoring(group)
                for (recipient, ids) in ackedMeanwhile {
                    state.withLock { $0.willRemove(from: recipient) }
                    let removed = (try? store.acknowledgeMessages(ids, recipient: recipient)) ?? 0
                    state.withLock { $0.removed(removed, from: recipient) }
                }
            } catch {
                // What its reader acked is done; what it did not gets another
                // grace (it was delivered: its sender is not told it failed).
                let (acked, retry) = state.withLock { state -> ([(Unstored, Int)], Bool) in
                    for recipient in known.keys { state.removed(from: recipient) }
                    var acked: [(Unstored, Int)] = []
                    for id in admitted {
                        guard let entry = state.unstored[id] else { continue }
                        if entry.acked {
                            if let entry = state.forgetUnstored(id) { acked.append((entry, state.depth(of: entry.message.recipient))) }
                        } else {
                            state.unstored[id]?.committing = false
                            state.unstored[id]?.queuedAt = DispatchTime.now().uptimeNanoseconds
                            state.unstoredOrder.append(id)
                        }
                    }
                    let retry = acked.count < admitted.count && !state.timerArmed
                    if retry { state.timerArmed = true }
                    return (acked, retry)
                }
                Self.confirm(acked)
                let failure = KernelError.from(error)
                for queued in group where !queued.delivered { queued.outcome.fulfil(.failure(failure)) }
                finishStoring(group)
                if retry { armGraceTimer(at: DispatchTime.now().uptimeNanoseconds + Self.ackGrace) }
            }
        }
    }

    /// The messages of `group` that were stored first are delivered: later
    /// ones to their mailboxes may go straight to readers again.
    private func finishStoring(_ group: [Queued]) {
        state.withLock { state in
            for queued in group where !queued.delivered {
                let recipient = queued.message.recipient
                let left = state.storing[recipient, default: 1] - 1
                state.storing[recipient] = left > 0 ? left : nil
            }
        }
    }

    private func refusal(_ message: MessageRecord) -> KernelError {
        // Recorded by the commit thread: a refusal may be decided on an
        // event loop, which must not wait for the store.
        let events = events
        writer.async {
            _ = try? events.record("bus.refused", "a message from \(message.sender) to \(message.recipient) was refused: its mailbox is full",
                                   data: ["from": message.sender, "to": message.recipient])
        }
        return KernelError(.conflict, "the mailbox of \(message.recipient) is full (\(mailboxLimit) messages wait): try later",
                           detail: ["reason": "mailbox-full"])
    }

    /// A message as the bus keeps it, once its fields are checked.
    private static func record(_ request: Agentos_V1_SendRequest, from sender: String, to recipient: String) throws -> MessageRecord {
        guard request.payload.count <= maximumPayloadBytes else {
            throw KernelError(.invalidArgument, "a payload of \(request.payload.count) bytes: at most \(maximumPayloadBytes)")
        }
        let type = request.type.isEmpty ? "message" : request.type
        guard ["message", "request", "response", "event", "stream"].contains(type) else {
            throw KernelError(.invalidArgument, "message type '\(type)': use message, request, response, event or stream")
        }
        guard type != "stream" || !request.correlationID.isEmpty else {
            throw KernelError(.invalidArgument, "a stream chunk names its stream in correlation_id (the same id for every chunk)")
        }
        guard !request.end || type == "stream" else {
            throw KernelError(.invalidArgument, "end marks a stream's last chunk: send it with type stream")
        }
        guard request.correlationID.utf8.count <= 128 else {
            throw KernelError(.invalidArgument, "a correlation id is at most 128 bytes")
        }
        return MessageRecord(id: MessageIDs.next(), recipient: recipient, sender: sender, type: type,
                             contentType: request.contentType.isEmpty ? "application/json" : request.contentType,
                             payload: [UInt8](request.payload), correlationID: request.correlationID,
                             sentAt: unixNanoseconds(), streamEnd: type == "stream" && request.end)
    }

    private static func sent(_ message: MessageRecord, depth: Int) -> Agentos_V1_SendResponse {
        var response = Agentos_V1_SendResponse()
        response.id = message.id
        response.to = message.recipient
        response.depth = UInt32(depth)
        return response
    }

    // MARK: Receiving

    /// What waits for `identity` (stored messages, then requests whose
    /// requesters wait), then what arrives for it: a stream that ends only
    /// when the caller goes (or falls too far behind).
    func receive(_ identity: String) throws -> (waiting: [MessageRecord], live: MailboxFeed) {
        // Subscribed first: nothing sent between the read and the
        // subscription is missed (a repeat is dropped by its id).
        let live = MailboxFeed(identity: identity, buffer: Self.subscriberBuffer)
        arrivals.withLock { $0[identity, default: [:]][ObjectIdentifier(live)] = live }
        do {
            // The mailbox's count, once: with it known (and a reader
            // here), messages for it can go to the reader at once.
            let generation = state.withLock { $0.depths[identity] == nil ? $0.generation[identity, default: 0] : nil }
            if let generation {
                let count = try store.mailboxDepth(identity).count
                state.withLock { state in
                    if state.depths[identity] == nil, state.generation[identity, default: 0] == generation {
                        state.depths[identity] = count
                    }
                }
            }
            // In memory first: one stored meanwhile is then in the store's
            // answer (and kept once, as stored).
            let inMemory = state.withLock { $0.unstoredMessages(for: identity) + $0.pendingRequests(for: identity) }
            let stored = try store.messages(for: identity)
            let storedIDs = Set(stored.map(\.id))
            return (stored + inMemory.filter { !storedIDs.contains($0.id) }, live)
        } catch {
            close(live)
            throw error
        }
    }

    /// Ends a mailbox stream and forgets it.
    func close(_ feed: MailboxFeed) {
        feed.finish()
        arrivals.withLock { feeds in
            feeds[feed.identity]?[ObjectIdentifier(feed)] = nil
            if feeds[feed.identity]?.isEmpty == true { feeds[feed.identity] = nil }
        }
    }

    /// Stored messages for `identity` after `seq` (the next page of what waits).
    func stored(for identity: String, after seq: Int64) throws -> [MessageRecord] {
        try store.messages(for: identity, after: seq)
    }

    /// Sends `message` as a request and waits for its response (a message
    /// of type response to `sender` naming it as its correlation id). The
    /// request waits for its recipient (a restarting worker gets it when it
    /// receives again) as long as the requester waits, and no longer:
    /// unanswered within `timeout`, it is withdrawn and the call fails.
    func request(_ message: Agentos_V1_SendRequest, from sender: String, to recipient: String,
                 timeout: Duration) async throws -> Agentos_V1_BusMessage {
        let outcome = Handoff<RequestOutcome>()
        let pending = try request(message, from: sender, to: recipient, timeout: timeout) { outcome.fulfil($0) }
        let answer = await withTaskCancellationHandler {
            await outcome.value()
        } onCancel: {
            pending.withdraw()
        }
        switch answer {
        case .answered(let response):
            return Self.wire(response)
        case .withdrawn:
            throw CancellationError()
        case .timedOut, .kernelStopping:
            throw Self.failure(answer, recipient: recipient, timeout: timeout) ?? CancellationError()
        }
    }

    /// The same, for a caller that cannot wait (the event loop):
    /// `onOutcome` is called once, on the thread that ends the request
    /// (the responder's, the deadline's or the withdrawer's). The deadline
    /// is kept by `timers` (the caller's own loop: no other thread to wake).
    func request(_ message: Agentos_V1_SendRequest, from sender: String, to recipient: String, timeout: Duration,
                 timers: (any EventLoop)? = nil,
                 onOutcome: @escaping @Sendable (RequestOutcome) -> Void) throws -> PendingRequest {
        var request = message
        request.type = "request"
        let record = try Self.record(request, from: sender, to: recipient)
        let response = Handoff<RequestOutcome>()
        let accepted = state.withLock { state -> Bool in
            let waiting = state.depth(of: recipient) + state.requests.values.count { $0.recipient == recipient }
            guard waiting < mailboxLimit else { return false }
            state.requests[record.id] = record
            state.waiters[record.id] = Waiter(requester: sender, responder: recipient, response: response)
            return true
        }
        guard accepted else { throw refusal(record) }
        // The deadline is a timer, not a task: a request costs no task of its own.
        let nanoseconds = Int64(clamping: timeout.components.seconds * 1_000_000_000
                                    + timeout.components.attoseconds / 1_000_000_000)
        let deadline = (timers ?? deadlines).scheduleTask(in: .nanoseconds(nanoseconds)) { [weak response] in
            response?.fulfil(.timedOut)
        }
        response.whenFulfilled { [self] outcome in
            deadline.cancel()
            state.withLock { $0.finish(record.id) }
            onOutcome(outcome)
        }
        deliver(record)
        return PendingRequest(outcome: response)
    }

    /// The error a request ended with (nil: answered or withdrawn).
    static func failure(_ outcome: RequestOutcome, recipient: String, timeout: Duration) -> KernelError? {
        switch outcome {
        case .answered, .withdrawn:
            return nil
        case .timedOut:
            return KernelError(.conflict, "no response from \(recipient) within \(timeout) (the request is withdrawn)",
                               detail: ["reason": "timeout"])
        case .kernelStopping:
            return KernelError(.shuttingDown, "the kernel is stopping: the request to \(recipient) is withdrawn")
        }
    }

    /// Removes handled messages from `identity`'s mailbox (and requests it
    /// was handed); returns how many.
    func acknowledge(_ ids: [String], identity: String) throws -> Int {
        let (handed, confirmed) = state.withLock { state -> (Set<String>, [(Unstored, Int)]) in
            var found: Set<String> = []
            var confirmed: [(Unstored, Int)] = []
            for id in ids {
                if state.requests[id]?.recipient == identity {
                    state.requests[id] = nil
                    found.insert(id)
                } else if state.finished[id]?.responder == identity {
                    found.insert(id)
                } else if let entry = state.unstored[id], entry.message.recipient == identity, !entry.acked {
                    found.insert(id)
                    if entry.committing {
                        // Its group is being written: removed once it is.
                        state.unstored[id]?.acked = true
                    } else if let entry = state.forgetUnstored(id) {
                        confirmed.append((entry, state.depth(of: identity)))
                    }
                }
            }
            return (found, confirmed)
        }
        Self.confirm(confirmed)
        let stored = ids.filter { !handed.contains($0) }
        guard !stored.isEmpty else { return handed.count }
        state.withLock { $0.willRemove(from: identity) }
        let removed = try store.acknowledgeMessages(stored, recipient: identity)
        state.withLock { $0.removed(removed, from: identity) }
        return handed.count + removed
    }

    /// Acks of requests `identity` was handed and that live only in
    /// memory: answered without the store, or nil (nothing changed) when
    /// any of `ids` is a stored message.
    func acknowledgeHanded(_ ids: [String], identity: String) -> Int? {
        let confirmed = state.withLock { state -> [(Unstored, Int)]? in
            var requests: [String] = []
            var unstored: [String] = []
            for id in ids {
                if state.requests[id]?.recipient == identity {
                    requests.append(id)
                } else if let entry = state.unstored[id], entry.message.recipient == identity,
                          !entry.committing, !entry.acked {
                    unstored.append(id)
                } else if state.finished[id]?.responder != identity {
                    return nil
                }
            }
            for id in requests { state.requests[id] = nil }
            return unstored.compactMap { id in state.forgetUnstored(id).map { ($0, state.depth(of: identity)) } }
        }
        guard let confirmed else { return nil }
        Self.confirm(confirmed)
        return Set(ids).count
    }

    /// Answers the senders of unstored messages their recipient acked.
    private static func confirm(_ acked: [(Unstored, Int)]) {
        for (entry, depth) in acked { entry.outcome.fulfil(.success(sent(entry.message, depth: depth))) }
    }

    func mailbox(_ identity: String, limit: Int) throws -> Agentos_V1_MailboxInfo {
        var info = Agentos_V1_MailboxInfo()
        info.identity = identity
        let (count, oldest) = try store.mailboxDepth(identity)
        let requests = state.withLock { $0.unstoredMessages(for: identity) + $0.pendingRequests(for: identity) }
        info.depth = UInt32(count + requests.count)
        info.oldestNs = [oldest, requests.first?.sentAt].compactMap { $0 }.min() ?? 0
        info.messages = Array((try store.messages(for: identity, limit: limit) + requests).prefix(limit)).map(Self.wire)
        return info
    }

    /// Hands a message to the live streams of its recipient's mailbox.
    private func deliver(_ message: MessageRecord) {
        // The dictionary is copied on write: taking it costs no allocation.
        guard let feeds = arrivals.withLock({ $0[message.recipient] }) else { return }
        for feed in feeds.values { feed.deliver(message) }
    }

    func finishAll() {
        flush()
        for feed in arrivals.withLock({ $0.values.flatMap(\.values) }) { feed.finish() }
        topics.finishAll()
        let waiters = state.withLock { Array($0.waiters.values) }
        for waiter in waiters { waiter.response.fulfil(.kernelStopping) }
    }

    /// An event to the live subscribers of `request.topic` (not stored).
    func publish(_ request: Agentos_V1_PublishRequest, from sender: String) throws -> Agentos_V1_PublishResponse {
        if let problem = Topics.problem(request.topic, pattern: false) {
            throw KernelError(.invalidArgument, problem)
        }
        guard request.payload.count <= Self.maximumPayloadBytes else {
            throw KernelError(.invalidArgument, "a payload of \(request.payload.count) bytes: at most \(Self.maximumPayloadBytes)")
        }
        var event = Agentos_V1_BusMessage()
        event.id = MessageIDs.next()
        event.from = sender
        event.to = request.topic
        event.type = "event"
        event.contentType = request.contentType.isEmpty ? "application/json" : request.contentType
        event.payload = request.payload
        event.sentAtNs = unixNanoseconds()
        var response = Agentos_V1_PublishResponse()
        response.id = event.id
        response.subscribers = UInt32(topics.publish(event))
        return response
    }

    /// Whether `message` answers a request `sender` holds from `recipient`
    /// (a response, or a stream of chunks, goes back to whoever asked,
    /// whatever its grants): one whose requester waits, or a stored one.
    func isResponse(_ message: Agentos_V1_SendRequest, from sender: String, to recipient: String) -> Bool {
        guard message.type == "response" || message.type == "stream", !message.correlationID.isEmpty else { return false }
        if state.withLock({ $0.awaited(message.correlationID, requester: recipient, responder: sender) }) != nil {
            return true
        }
        guard let request = try? store.message(id: message.correlationID, recipient: sender) else { return false }
        return request.type == "request" && request.sender == recipient
    }

    /// A message's fields as its reader gets them (`wire`, for `HotFrames`).
    static func hotFields(_ message: MessageRecord) -> HotFrames.BusMessageFields {
        HotFrames.BusMessageFields(id: message.id, from: message.sender, to: message.recipient, type: message.type,
                                   contentType: message.contentType, payload: message.payload,
                                   correlationID: message.correlationID, sentAtNs: message.sentAt,
                                   end: message.streamEnd, ackedByResponse: ackedByResponse(message))
    }

    /// A request whose requester waits: not stored (seq 0), removed by its response.
    private static func ackedByResponse(_ message: MessageRecord) -> Bool {
        message.type == "request" && message.seq == 0
    }

    static func wire(_ message: MessageRecord) -> Agentos_V1_BusMessage {
        hotFields(message).message
    }
}
