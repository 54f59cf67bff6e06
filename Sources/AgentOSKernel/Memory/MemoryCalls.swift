import AgentOSCapabilities
import AgentOSProtocol
import AgentOSStore
import Foundation

/// Agents' memory (ARCHITECTURE §7), kept in the state store with an FTS5
/// index. Scopes:
/// * `context`: this run of the agent; gone when it ends.
/// * `working`: its session: a policy worker's survives its restarts
///   (keyed by its path) until the policy is deleted; a plain agent's is its run.
/// * `long-term` (the default): its identity's (policy path, else its name),
///   across runs and kernel restarts.
/// * `shared/NAME`: a namespace agents share, each use checked against
///   `capability://memory/shared/NAME?action=read|write|search|delete`.
/// Agents reach their own memory on their socket; operators name the agent.
struct MemoryCalls {
    let services: KernelServices

    enum Call: String {
        case put, get, delete, search, list

        /// The action a shared scope's capability must allow.
        var action: String {
            switch self {
            case .put: "write"
            case .get, .list: "read"
            case .delete: "delete"
            case .search: "search"
            }
        }
    }

    static let maximumValueBytes = 64 << 10
    static let maximumKeyBytes = 256
    static let maximumTags = 16
    static let maximumTagBytes = 64
    static let defaultLimit = 20
    static let maximumLimit = 1_000

    /// `agentID`: the calling agent, nil for an operator.
    func handle(_ call: Call, _ request: Agentos_V1_MemoryRequest, agentID: String?) async throws -> Agentos_V1_MemoryList {
        let (namespace, scope) = try await namespace(request, agentID: agentID, call: call)
        let now = unixNanoseconds()
        var list = Agentos_V1_MemoryList()
        let limit = request.limit == 0 ? Self.defaultLimit : min(Int(request.limit), Self.maximumLimit)
        switch call {
        case .put:
            try Self.checkKey(request.key)
            guard request.value.utf8.count <= Self.maximumValueBytes else {
                throw KernelError(.invalidArgument, "a value of \(request.value.utf8.count) bytes: at most \(Self.maximumValueBytes)")
            }
            guard request.tags.count <= Self.maximumTags,
                  request.tags.allSatisfy({ !$0.isEmpty && $0.utf8.count <= Self.maximumTagBytes && !$0.contains(where: \.isWhitespace) }) else {
                throw KernelError(.invalidArgument,
                                  "tags: at most \(Self.maximumTags) words of 1-\(Self.maximumTagBytes) bytes, without spaces")
            }
            let expires = request.ttlMs == 0 ? nil : now + Int64(clamping: request.ttlMs) * 1_000_000
            // Context memory lives only as long as the run: no quota needed.
            let quota = namespace.hasPrefix("context:") ? nil : services.configuration.memoryQuotaBytes
            let entry: MemoryEntry
            do {
                entry = try services.store.putMemory(namespace: namespace, key: request.key, value: request.value,
                                                     tags: request.tags, expiresAt: expires, now: now, quota: quota)
            } catch let error as StoreError where error.code == .quotaExceeded {
                throw Self.quotaError(error, scope: scope)
            }
            list.entries = [Self.item(entry, scope: scope)]
        case .get:
            try Self.checkKey(request.key)
            guard let entry = try services.store.memory(namespace: namespace, key: request.key, now: now) else {
                throw KernelError(.notFound, "no '\(request.key)' in \(scope) memory")
            }
            list.entries = [Self.item(entry, scope: scope)]
        case .delete:
            try Self.checkKey(request.key)
            guard let entry = try services.store.memory(namespace: namespace, key: request.key, now: now),
                  try services.store.deleteMemory(namespace: namespace, key: request.key) else {
                throw KernelError(.notFound, "no '\(request.key)' in \(scope) memory")
            }
            list.entries = [Self.item(entry, scope: scope)]
        case .search:
            guard !request.query.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw KernelError(.invalidArgument, "search needs words to look for")
            }
            list.entries = try services.store.searchMemory(namespace: namespace, query: request.query, now: now, limit: limit)
                .map { Self.item($0, scope: scope) }
        case .list:
            list.entries = try services.store.memories(namespace: namespace, now: now, limit: limit)
                .map { Self.item($0, scope: scope) }
        }
        return list
    }

    /// `share(key, to)`: a copy of the caller's entry (scope and key of the
    /// request) in the long-term memory of `recipient`, under
    /// `from/SENDER/KEY` so it never overwrites the recipient's own keys,
    /// tagged `shared-by:SENDER`. The recipient's quota applies.
    func share(_ request: Agentos_V1_MemoryRequest, agentID: String, from sender: String,
               to recipient: String) async throws -> Agentos_V1_MemoryList {
        var get = request
        get.agent = ""
        let original = try await handle(.get, get, agentID: agentID)
        guard let entry = original.entries.first else { throw KernelError(.notFound, "no '\(request.key)' to share") }
        let key = "from/\(sender)/\(entry.key)"
        guard key.utf8.count <= Self.maximumKeyBytes else {
            throw KernelError(.invalidArgument, "the shared key \(key) is longer than \(Self.maximumKeyBytes) bytes: use a shorter key")
        }
        let now = unixNanoseconds()
        let tag = "shared-by:" + sender
        let tags = entry.tags.filter { $0 != tag } + (tag.utf8.count <= Self.maximumTagBytes ? [tag] : [])
        let expires = entry.expiresAtNs == 0 ? nil : entry.expiresAtNs
        let namespace = "long-term:" + recipient
        let copy: MemoryEntry
        do {
            copy = try services.store.putMemory(namespace: namespace, key: key, value: entry.value,
                                                tags: Array(tags.prefix(Self.maximumTags)), expiresAt: expires, now: now,
                                                quota: services.configuration.memoryQuotaBytes)
        } catch let error as StoreError where error.code == .quotaExceeded {
            throw Self.quotaError(error, scope: "\(recipient)'s long-term")
        }
        _ = try? services.events.record("memory.shared", agentID: agentID, "\(sender) shared '\(entry.key)' with \(recipient)",
                                        data: ["from": sender, "to": recipient, "key": key])
        var list = Agentos_V1_MemoryList()
        list.entries = [Self.item(copy, scope: "long-term")]
        return list
    }

    /// The store's namespace for the request's scope, and the scope's name.
    private func namespace(_ request: Agentos_V1_MemoryRequest, agentID: String?,
                           call: Call) async throws -> (String, String) {
        let scope = request.scope.isEmpty ? "long-term" : request.scope
        if scope.hasPrefix("shared/") {
            let name = String(scope.dropFirst("shared/".count))
            guard Self.isSharedName(name) else {
                throw KernelError(.invalidArgument, "shared memory '\(name)': use 1-63 letters, digits, '.', '_' or '-'")
            }
            if let agentID {
                let agent = try await services.lifecycle.resolve(agentID)
                if case .denied(let reasons) = services.capabilities.check(
                    agentID: agentID, agentName: agent.name, kind: .memory, action: call.action, resource: "shared/" + name) {
                    throw KernelError(.permissionDenied,
                                      "\(call.action) on shared memory \(name) needs capability://memory/shared/\(name)?action=\(call.action): "
                                          + reasons.joined(separator: "; "))
                }
            }
            return ("shared:" + name, scope)
        }
        let reference = agentID ?? request.agent
        guard !reference.isEmpty else {
            throw KernelError(.invalidArgument, "whose memory? name the agent (or use --scope shared/NAME)")
        }
        let agent = try await services.lifecycle.resolve(reference)
        switch scope {
        case "context":
            services.contextUsers.note(agent.id)
            return (Self.contextNamespace(agent.id), scope)
        case "working": return ("working:" + (agent.policyPath ?? agent.id), scope)
        case "long-term": return ("long-term:" + Bus.identity(of: agent), scope)
        default:
            throw KernelError(.invalidArgument, "unknown memory scope '\(scope)': use context, working, long-term or shared/NAME")
        }
    }

    static func contextNamespace(_ agentID: String) -> String { "context:" + agentID }

    static func quotaError(_ error: StoreError, scope: String) -> KernelError {
        KernelError(.resourceExhausted, "\(scope) memory is at its quota (agentd --memory-quota): \(error.message); "
                        + "delete entries or store less", detail: ["reason": "memory-quota"])
    }

    static func isSharedName(_ name: String) -> Bool {
        (1...63).contains(name.unicodeScalars.count) && !name.hasPrefix(".") && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)
        }
    }

    private static func checkKey(_ key: String) throws {
        guard !key.isEmpty, key.utf8.count <= maximumKeyBytes, !key.utf8.contains(0) else {
            throw KernelError(.invalidArgument, "a memory key is 1-\(maximumKeyBytes) bytes")
        }
    }

    private static func item(_ entry: MemoryEntry, scope: String) -> Agentos_V1_MemoryItem {
        var item = Agentos_V1_MemoryItem()
        item.key = entry.key
        item.value = entry.value
        item.tags = entry.tags
        item.scope = scope
        item.createdAtNs = entry.createdAt
        item.updatedAtNs = entry.updatedAt
        item.expiresAtNs = entry.expiresAt ?? 0
        item.score = entry.score ?? 0
        return item
    }
}
