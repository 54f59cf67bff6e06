import AgentOSProtocol
import Foundation

/// An agent's memory in the kernel's store. Scopes: `context` (this run),
/// `working` (a worker's session, across its restarts), `longTerm` (across
/// sessions and kernel restarts), `shared(NAME)` (a namespace agents share,
/// each use checked against capability://memory/shared/NAME).
public struct AgentMemory: Sendable {
    public enum Scope: Sendable, Equatable {
        case context, working, longTerm
        case shared(String)

        var wire: String {
            switch self {
            case .context: "context"
            case .working: "working"
            case .longTerm: "long-term"
            case .shared(let name): "shared/" + name
            }
        }
    }

    /// One stored entry.
    public struct Entry: Sendable {
        public let key: String
        public let value: String
        public let tags: [String]
        public let updatedAt: Date
        public let expiresAt: Date?
        /// Search: BM25 relevance, higher is better.
        public let score: Double

        init(_ wire: Agentos_V1_MemoryItem) {
            key = wire.key
            value = wire.value
            tags = wire.tags
            updatedAt = Date(timeIntervalSince1970: Double(wire.updatedAtNs) / 1e9)
            expiresAt = wire.expiresAtNs == 0 ? nil : Date(timeIntervalSince1970: Double(wire.expiresAtNs) / 1e9)
            score = wire.score
        }
    }

    let link: KernelLink

    /// Stores `value` (UTF-8, at most 64 KiB) under `key`, replacing it.
    @discardableResult
    public func put(_ key: String, _ value: String, scope: Scope = .longTerm, tags: [String] = [],
                    ttl: Duration? = nil) async throws -> Entry {
        var request = request(scope, key)
        request.value = value
        request.tags = tags
        if let ttl {
            let (seconds, attoseconds) = ttl.components
            request.ttlMs = UInt64(max(1, seconds * 1_000 + attoseconds / 1_000_000_000_000_000))
        }
        return try await one(.memPut(request))
    }

    /// The entry under `key`, nil when there is none.
    public func get(_ key: String, scope: Scope = .longTerm) async throws -> Entry? {
        do {
            return try await one(.memGet(request(scope, key)))
        } catch let error as AgentKitError where error.kernelCode == .notFound {
            return nil
        }
    }

    /// Removes `key`; false when there was none.
    @discardableResult
    public func delete(_ key: String, scope: Scope = .longTerm) async throws -> Bool {
        do {
            _ = try await one(.memDelete(request(scope, key)))
            return true
        } catch let error as AgentKitError where error.kernelCode == .notFound {
            return false
        }
    }

    /// Entries whose value or tags hold any of the words, best first.
    public func search(_ query: String, scope: Scope = .longTerm, limit: Int = 20) async throws -> [Entry] {
        var request = request(scope, "")
        request.query = query
        request.limit = UInt32(clamping: limit)
        return try await all(.memSearch(request))
    }

    /// Entries by key.
    public func list(scope: Scope = .longTerm, limit: Int = 20) async throws -> [Entry] {
        var request = request(scope, "")
        request.limit = UInt32(clamping: limit)
        return try await all(.memList(request))
    }

    /// A copy of `key` in `target`'s long-term memory, as `from/ME/KEY`
    /// (allowed where a message to `target` would be).
    @discardableResult
    public func share(_ key: String, with target: String, scope: Scope = .longTerm) async throws -> Entry {
        var request = request(scope, key)
        request.to = target
        return try await one(.memShare(request))
    }

    private func request(_ scope: Scope, _ key: String) -> Agentos_V1_MemoryRequest {
        var request = Agentos_V1_MemoryRequest()
        request.scope = scope.wire
        request.key = key
        return request
    }

    private func all(_ call: KernelRequest.OneOf_Call) async throws -> [Entry] {
        switch try await link.call(call) {
        case .memPut(let list), .memGet(let list), .memDelete(let list), .memSearch(let list), .memList(let list),
             .memShare(let list):
            return list.entries.map(Entry.init)
        default:
            throw Agent.unexpected(call.name)
        }
    }

    private func one(_ call: KernelRequest.OneOf_Call) async throws -> Entry {
        guard let entry = try await all(call).first else {
            throw AgentKitError(.protocolViolation, "the kernel answered \(call.name) without the entry")
        }
        return entry
    }
}
