import Foundation

/// The limits a capability carries. Each is optional; a grant without one
/// is unlimited in that respect. The kernel enforces them per grant: a
/// delegated grant is also counted against the grant it came from.
public struct Constraints: Sendable, Hashable {
    /// `timeout=30s`: how long one use (a tool run, a request) may take.
    public var timeoutMilliseconds: Int64?
    /// `rate=10/min`: uses per window (sec, min or hour).
    public var rate: Rate?
    /// `max=100`: uses in the grant's life.
    public var max: Int?
    /// `allowlist=/usr/bin/git,/usr/bin/ls`: for shell, the only programs
    /// that may be exec'd (checked on what is exec'd, not on the command line).
    public var allowlist: [String]?
    /// `expires=2026-12-31T00:00:00Z` (or unix seconds): unusable after, in
    /// unix milliseconds.
    public var expiresAtMilliseconds: Int64?
    /// `approve=operator`: every use waits for `agentctl approve`.
    public var approval: Approval?
    /// `tokens=100000`: model tokens in the grant's life.
    public var tokens: Int?

    public init() {}

    public enum Approval: String, Sendable, Hashable {
        case `operator`
    }

    public struct Rate: Sendable, Hashable, CustomStringConvertible {
        public let count: Int
        public let windowSeconds: Int

        public init(count: Int, windowSeconds: Int) {
            self.count = count
            self.windowSeconds = windowSeconds
        }

        static let windows: [(String, Int)] = [("sec", 1), ("min", 60), ("hour", 3_600)]

        public var description: String {
            "\(count)/" + (Self.windows.first { $0.1 == windowSeconds }?.0 ?? "\(windowSeconds)s")
        }

        /// Whether this rate never allows more than `other` does: over any
        /// span, count per window no higher, measured per second.
        func isAtMost(_ other: Rate) -> Bool {
            count * other.windowSeconds <= other.count * windowSeconds
        }
    }

    /// The names of the constraints, for errors and documentation.
    public static let names = ["timeout", "rate", "max", "allowlist", "expires", "approve", "tokens"]

    /// Whether the grant can no longer be used at `milliseconds` (unix).
    public func hasExpired(atMilliseconds milliseconds: Int64) -> Bool {
        expiresAtMilliseconds.map { milliseconds >= $0 } ?? false
    }

    /// Why `child` is not at least as tight as these, or nil.
    func problem(narrowing child: Constraints) -> String? {
        func missing(_ name: String, _ value: String) -> String {
            "the capability it comes from has \(name)=\(value): the delegated one must have it too, as tight or tighter"
        }
        if let limit = timeoutMilliseconds {
            guard let asked = child.timeoutMilliseconds else { return missing("timeout", "\(limit)ms") }
            if asked > limit { return "timeout \(asked)ms is longer than \(limit)ms" }
        }
        if let limit = rate {
            guard let asked = child.rate else { return missing("rate", limit.description) }
            if !asked.isAtMost(limit) { return "rate \(asked) is more than \(limit)" }
        }
        if let limit = max {
            guard let asked = child.max else { return missing("max", String(limit)) }
            if asked > limit { return "max \(asked) is more than \(limit)" }
        }
        if let limit = tokens {
            guard let asked = child.tokens else { return missing("tokens", String(limit)) }
            if asked > limit { return "tokens \(asked) is more than \(limit)" }
        }
        if let limit = allowlist {
            guard let asked = child.allowlist else { return missing("allowlist", limit.joined(separator: ",")) }
            if let extra = asked.first(where: { !limit.contains($0) }) { return "allowlist entry \(extra) is not allowed" }
        }
        if let limit = expiresAtMilliseconds {
            guard let asked = child.expiresAtMilliseconds else { return missing("expires", Self.timestamp(limit)) }
            if asked > limit { return "it expires after the capability it comes from (\(Self.timestamp(limit)))" }
        }
        if approval == .operator && child.approval != .operator {
            return "the capability it comes from needs operator approval: the delegated one must keep approve=operator"
        }
        return nil
    }

    /// Name and value of each constraint set, in `names` order.
    var parameters: [(String, String)] {
        var list: [(String, String)] = []
        if let timeoutMilliseconds { list.append(("timeout", "\(timeoutMilliseconds)ms")) }
        if let rate { list.append(("rate", rate.description)) }
        if let max { list.append(("max", String(max))) }
        if let allowlist { list.append(("allowlist", allowlist.joined(separator: ","))) }
        if let expiresAtMilliseconds { list.append(("expires", Self.timestamp(expiresAtMilliseconds))) }
        if let approval { list.append(("approve", approval.rawValue)) }
        if let tokens { list.append(("tokens", String(tokens))) }
        return list
    }

    static func timestamp(_ milliseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1_000))
    }
}
