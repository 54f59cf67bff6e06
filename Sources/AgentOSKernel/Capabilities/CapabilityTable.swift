import AgentOSCapabilities
import AgentOSStore
import Foundation
import Logging
import Synchronization

/// The kernel's capability table: which agent holds which grant, what each
/// grant has left, and the check every ask of an agent goes through.
///
/// Grants live in the store (they survive a kernel restart, with their use
/// counts); the table keeps the live ones in memory for checks, plus each
/// grant's recent uses for `rate`. An agent names a grant by its id, a
/// handle the kernel looks up for that agent only: holding an id grants
/// nothing to anyone else.
final class CapabilityTable: Sendable {
    /// A grant and what it has used.
    struct Grant: Sendable {
        var record: CapabilityRecord
        let capability: Capability
        /// Times (unix ms) of the uses inside its rate window (with `rate`).
        var recentUses: [Int64] = []
    }

    /// The answer to one ask.
    enum Decision: Sendable, Equatable {
        /// Allowed by this grant (its use is counted); `approval`: an
        /// operator must approve it first.
        case allowed(grantID: String, approval: Bool)
        /// Why nothing allows it, one reason per grant of that kind (or why
        /// the ask itself is unusable).
        case denied([String])
    }

    /// The live grants, indexed so that a check looks only at the asking
    /// agent's grants and a revocation only at what was delegated.
    struct Index: Sendable {
        private(set) var byID: [String: Grant] = [:]
        /// Each agent's grant ids in the order granted (oldest first).
        private var byAgent: [String: [String]] = [:]
        private var delegated: [String: Set<String>] = [:]

        subscript(id: String) -> Grant? {
            get { byID[id] }
            set {
                let old = byID[id]
                byID[id] = newValue
                if let old, newValue?.record.agentID != old.record.agentID {
                    byAgent[old.record.agentID]?.removeAll { $0 == id }
                    if byAgent[old.record.agentID]?.isEmpty == true { byAgent[old.record.agentID] = nil }
                    if let parent = old.record.parentID { delegated[parent]?.remove(id) }
                }
                if let grant = newValue, old?.record.agentID != grant.record.agentID {
                    byAgent[grant.record.agentID, default: []].append(id)
                    if let parent = grant.record.parentID { delegated[parent, default: []].insert(id) }
                }
            }
        }

        /// An agent's grants, oldest first (grants arrive in time order).
        func held(by agentID: String) -> [Grant] {
            (byAgent[agentID] ?? []).compactMap { byID[$0] }
        }

        /// Ids of the grants delegated from `id`.
        func delegated(from id: String) -> [String] { (delegated[id] ?? []).sorted() }
    }

    private let store: StateStore
    private let events: EventHub
    private let logger: Logger
    private let grants: Mutex<Index>

    init(store: StateStore, events: EventHub, logger: Logger) throws(KernelError) {
        self.store = store
        self.events = events
        self.logger = logger
        var live = Index()
        do {
            for record in try store.capabilities() {
                // Stored in canonical form by this kernel: one that no longer
                // parses (a newer kernel's) is skipped, not widened.
                guard let capability = try? Capability(parsing: record.uri) else {
                    logger.warning("capability \(record.id) (\(record.uri)) no longer parses: not loaded")
                    continue
                }
                live[record.id] = Grant(record: record, capability: capability)
            }
        } catch {
            throw KernelError.from(error)
        }
        grants = Mutex(live)
    }

    // MARK: Grant, delegate, revoke

    /// Gives `agentID` the capability `uri`; `source` says who gave it.
    @discardableResult
    func grant(_ uri: String, to agentID: String, agentName: String, source: String,
               parentID: String? = nil) throws(KernelError) -> CapabilityRecord {
        let capability: Capability
        do {
            // Held in memory exactly as a restarted kernel reads it back.
            capability = try Capability(parsing: try Capability(parsing: uri).description)
        } catch {
            throw KernelError(.invalidArgument, "\(uri): \(error.message)")
        }
        let record = CapabilityRecord(id: randomHexID(), agentID: agentID, uri: capability.description,
                                      parentID: parentID, source: source, grantedAt: unixNanoseconds())
        do {
            let event = try store.insertCapability(record, event: EventRecord(
                time: record.grantedAt, kind: "capability.granted", agentID: agentID,
                message: "\(agentName) was granted \(record.uri) (\(record.id), \(source))",
                data: ["capability": record.id, "uri": record.uri, "source": source, "parent": parentID ?? ""]))
            let orphaned = grants.withLock { grants -> Bool in
                grants[record.id] = Grant(record: record, capability: capability)
                return parentID.map { grants[$0] == nil } ?? false
            }
            events.publish(event)
            // Its parent went between the delegation's check and now: it
            // was never usable (a check walks the chain); it goes too.
            if orphaned {
                _ = try? revoke(record.id, reason: "the grant it was delegated from was revoked")
                throw KernelError(.notFound, "capability \(parentID ?? "") was revoked while it was being delegated")
            }
        } catch let error as KernelError {
            throw error
        } catch {
            throw KernelError.from(error)
        }
        return record
    }

    /// Hands `childID` a capability within grant `parentID`, which
    /// `holderID` must hold: never more than it (see Capability.problem(delegating:)).
    @discardableResult
    func delegate(_ uri: String, from parentID: String, holder holderID: String, to childID: String,
                  childName: String) throws(KernelError) -> CapabilityRecord {
        guard let parent = grants.withLock({ $0[parentID] }), parent.record.agentID == holderID,
              parent.record.revokedAt == nil else {
            throw KernelError(.notFound, "no capability \(parentID) held by this agent")
        }
        let child: Capability
        do {
            child = try Capability(parsing: uri)
        } catch {
            throw KernelError(.invalidArgument, "\(uri): \(error.message)")
        }
        if let problem = parent.capability.problem(delegating: child) {
            throw KernelError(.permissionDenied, "cannot delegate \(uri) from \(parentID): \(problem)")
        }
        return try grant(uri, to: childID, agentName: childName, source: "delegated", parentID: parentID)
    }

    /// Revokes a grant and everything delegated from it, at once: the next
    /// check no longer finds them. Returns the ids revoked, the grant first.
    @discardableResult
    func revoke(_ id: String, reason: String) throws(KernelError) -> [String] {
        let ids = grants.withLock { grants -> [String] in
            guard grants[id] != nil else { return [] }
            var revoked = [id]
            var index = 0
            while index < revoked.count {
                revoked += grants.delegated(from: revoked[index])
                index += 1
            }
            return revoked
        }
        guard let first = ids.first else { throw KernelError(.notFound, "no live capability \(id)") }
        // Unusable at once: a delegated grant is only usable while every
        // grant it came from is in the table (see `budget`).
        grants.withLock { grants in for id in ids { grants[id] = nil } }
        do {
            let event = try store.revokeCapabilities(ids, at: unixNanoseconds(), reason: reason, event: EventRecord(
                time: unixNanoseconds(), kind: "capability.revoked", agentID: "",
                message: "capability \(first) revoked (\(reason))"
                    + (ids.count > 1 ? ", and \(ids.count - 1) delegated from it" : ""),
                data: ["capability": first, "revoked": ids.joined(separator: ","), "reason": reason]))
            events.publish(event)
        } catch {
            // Out of the table already: the revocation holds until a restart;
            // the operator is told it was not recorded (and should revoke again).
            logger.error("cannot record the revocation of \(ids): \(error)")
            throw KernelError(.internal, "revoked until agentd restarts, but not recorded: \(error); revoke again")
        }
        return ids
    }

    /// Revokes what an agent holds once it has ended (and what it delegated
    /// from it): an ended agent holds nothing. Nothing written when it held
    /// nothing.
    func revokeAll(of agentID: String, reason: String) {
        for grant in grants(of: agentID) where grant.record.parentID == nil || !isHeld(grant.record.parentID, by: agentID) {
            do {
                try revoke(grant.record.id, reason: reason)
            } catch {
                // Already gone with a grant revoked before it in this loop.
                if error.code != .notFound { logger.error("cannot revoke \(grant.record.id): \(error)") }
            }
        }
    }

    private func isHeld(_ id: String?, by agentID: String) -> Bool {
        guard let id else { return false }
        return grants.withLock { $0[id]?.record.agentID == agentID }
    }

    /// Every live grant, oldest first.
    func allGrants() -> [Grant] {
        grants.withLock { Array($0.byID.values) }
            .sorted { ($0.record.grantedAt, $0.record.id) < ($1.record.grantedAt, $1.record.id) }
    }

    /// Whether a live grant (and each it came from) could allow a use now.
    func isUsable(_ grant: Grant, now: Int64 = unixMilliseconds()) -> Bool {
        grants.withLock { grants in
            if case .usable = Self.budget(of: grant, in: grants, now: now) { return true }
            return false
        }
    }

    /// A live grant.
    func grant(id: String) -> Grant? {
        grants.withLock { $0[id] }
    }

    /// Live grants of an agent, oldest first.
    func grants(of agentID: String) -> [Grant] {
        grants.withLock { $0.held(by: agentID) }
    }

    // MARK: Checks

    /// Checks and, when allowed, counts one use: `action` on `resource` of
    /// `kind` by `agentID`. Every denial is an event.
    func check(agentID: String, agentName: String, kind: Capability.Kind, action: String, resource: String,
               now: Int64 = unixMilliseconds()) -> Decision {
        var (decision, chain) = decide(agentID: agentID, kind: kind, action: action, resource: resource, now: now,
                                       use: true)
        switch decision {
        case .allowed(let id, _):
            // The use counts for the grant and every grant it came from; the
            // audit chain gets the check with the grant that decided it. A
            // use that cannot be recorded is not allowed (its budget stays spent).
            do {
                try store.recordCapabilityUse(chain, time: unixNanoseconds(), agentID: agentID,
                                              message: "\(agentName) was allowed \(action) on \(CapabilityCalls.text(kind, resource)) by \(id)",
                                              data: ["action": action, "kind": kind.rawValue, "resource": resource,
                                                     "capability": id])
            } catch {
                logger.error("cannot record a use of capability \(id): \(error)")
                decision = .denied(["the kernel could not record this use of \(id): \(error)"])
            }
        case .denied(let reasons):
            _ = try? events.record("capability.denied", agentID: agentID,
                                   "\(agentName) was denied \(action) on \(CapabilityCalls.text(kind, resource))",
                                   data: ["action": action, "kind": kind.rawValue, "resource": resource,
                                          "reasons": reasons.joined(separator: "; ")])
        }
        return decision
    }

    /// What `check` would answer, without counting a use or recording.
    func explain(agentID: String, kind: Capability.Kind, action: String, resource: String,
                 now: Int64 = unixMilliseconds()) -> Decision {
        decide(agentID: agentID, kind: kind, action: action, resource: resource, now: now, use: false).0
    }

    /// The decision, and for an allowed ask the grant's id and those it was
    /// delegated from (each counts the use).
    private func decide(agentID: String, kind: Capability.Kind, action: String, resource: String, now: Int64,
                        use: Bool) -> (Decision, [String]) {
        var target = resource
        if kind == .file || kind == .shell {
            do {
                target = try FilePaths.canonical(resource)
            } catch {
                return (.denied([error.message]), [])
            }
        }
        let ask = Capability.Ask(kind: kind, action: action, resource: target)
        return grants.withLock { grants -> (Decision, [String]) in
            let held = grants.held(by: agentID).filter { $0.capability.kind == kind }
            guard !held.isEmpty else { return (.denied(["\(agentID) holds no \(kind) capability"]), []) }
            // The oldest grant that covers the ask and has budget left, in
            // it and in every grant it was delegated from, decides.
            for grant in held where grant.capability.covers(ask) {
                guard case .usable(let chain) = Self.budget(of: grant, in: grants, now: now) else { continue }
                if use {
                    for id in chain {
                        guard var link = grants[id] else { continue }
                        link.record.uses += 1
                        if let rate = link.capability.constraints.rate {
                            let windowStart = now - Int64(rate.windowSeconds) * 1_000
                            link.recentUses.removeAll { $0 <= windowStart }
                            link.recentUses.append(now)
                        }
                        grants[id] = link
                    }
                }
                return (.allowed(grantID: grant.record.id, approval: grant.capability.constraints.approval == .operator), chain)
            }
            // Denied: only now the reasons, one per grant (words cost more than the check).
            return (.denied(held.map { grant in
                guard grant.capability.covers(ask) else {
                    return "\(grant.record.id) (\(grant.record.uri)) does not cover \(action) on \(target)"
                }
                if case .exhausted(let reason) = Self.budget(of: grant, in: grants, now: now) {
                    return "\(grant.record.id) (\(grant.record.uri)): \(reason)"
                }
                return "\(grant.record.id) (\(grant.record.uri)): unusable"
            }), [])
        }
    }

    private enum Budget {
        /// Usable: the grant's id, then those it was delegated from.
        case usable([String])
        case exhausted(String)
    }

    /// Whether a grant and every grant it was delegated from have budget left.
    private static func budget(of grant: Grant, in grants: Index, now: Int64) -> Budget {
        var chain: [String] = []
        var cursor: String? = grant.record.id
        while let id = cursor {
            // A grant it was delegated from that is gone (revoked) takes it along.
            guard let link = grants[id] else { return .exhausted("the grant it came from, \(id), is revoked") }
            if let reason = exhausted(link, now: now) {
                return .exhausted(link.record.id == grant.record.id ? reason : "\(reason) (the grant it came from, \(id))")
            }
            chain.append(id)
            cursor = link.record.parentID
        }
        return .usable(chain)
    }

    /// Why a grant cannot be used now, or nil.
    private static func exhausted(_ grant: Grant, now: Int64) -> String? {
        let constraints = grant.capability.constraints
        if constraints.hasExpired(atMilliseconds: now) { return "expired" }
        if let max = constraints.max, grant.record.uses >= max { return "used all \(max) of its uses" }
        if let tokens = constraints.tokens, grant.record.tokensUsed >= tokens { return "spent all \(tokens) of its model tokens" }
        if let rate = constraints.rate {
            let windowStart = now - Int64(rate.windowSeconds) * 1_000
            let inWindow = grant.recentUses.filter { $0 > windowStart }
            if inWindow.count >= rate.count {
                let wait = (inWindow.min() ?? now) - windowStart
                return "rate \(rate) reached (the next use in \(max(1, wait / 1_000)) s)"
            }
        }
        return nil
    }

    /// Adds model tokens spent under `grantID` to it and to every grant it
    /// was delegated from (what `tokens=` limits), in memory and the store.
    /// A call already allowed is charged in full even past the limit: the
    /// next one is refused.
    func charge(tokens: Int, to grantID: String) {
        guard tokens > 0 else { return }
        let chain = grants.withLock { grants -> [String] in
            var chain: [String] = []
            var cursor: String? = grantID
            while let id = cursor, var link = grants[id] {
                link.record.tokensUsed += tokens
                grants[id] = link
                chain.append(id)
                cursor = link.record.parentID
            }
            return chain
        }
        do {
            try store.recordCapabilityTokens(chain, tokens: tokens)
        } catch {
            logger.error("cannot record \(tokens) model tokens under capability \(grantID): \(error)")
        }
    }

    /// Model tokens a grant may still spend (with `tokens`), the least left
    /// along the chain it was delegated through.
    func remainingTokens(_ grant: Grant) -> Int? {
        grants.withLock { grants in
            var least: Int?
            var cursor: String? = grant.record.id
            while let id = cursor, let link = grants[id] {
                if let tokens = link.capability.constraints.tokens {
                    least = Swift.min(least ?? Int.max, Swift.max(0, tokens - link.record.tokensUsed))
                }
                cursor = link.record.parentID
            }
            return least
        }
    }

    /// What a grant has left now: uses (with `max`), uses in the current
    /// rate window (with `rate`).
    func remaining(_ grant: Grant, now: Int64 = unixMilliseconds()) -> (uses: Int?, rate: Int?) {
        let constraints = grant.capability.constraints
        let uses = constraints.max.map { Swift.max(0, $0 - grant.record.uses) }
        let rate = constraints.rate.map { rate -> Int in
            let windowStart = now - Int64(rate.windowSeconds) * 1_000
            return Swift.max(0, rate.count - grant.recentUses.filter { $0 > windowStart }.count)
        }
        return (uses, rate)
    }
}

/// Unix time in milliseconds (capability expiry and rate windows).
func unixMilliseconds() -> Int64 {
    unixNanoseconds() / 1_000_000
}
