import AgentOSCapabilities
import AgentOSProtocol
import Foundation
import Synchronization

/// Topics: events published to whoever subscribes now. Unlike a mailbox a
/// topic stores nothing: an event reaches the subscriptions live when it is
/// published and no others (what must not be missed goes to a mailbox).
///
/// A subscriber that does not read must not stall the bus or grow the
/// kernel: each subscription buffers at most `subscriberBuffer` events and
/// is ended (`SLOW_CONSUMER`) when it falls further behind; publishers never
/// wait for a subscriber.
final class Topics: Sendable {
    /// One subscription: its pattern, and (for an agent) the check each event's
    /// topic must pass, so a grant revoked while it listens stops the flow.
    private struct Subscription: Sendable {
        let pattern: Glob
        let feed: BoundedSubscription<Agentos_V1_BusMessage>
        let admits: @Sendable (String) -> Bool
    }

    private let subscriptions = Mutex<[ObjectIdentifier: Subscription]>([:])

    static let subscriberBuffer = 1_000
    static let maximumTopicBytes = 255

    /// Hands `event` (its `to` is the topic) to every subscription whose
    /// pattern matches; returns how many took it.
    func publish(_ event: Agentos_V1_BusMessage) -> Int {
        let name = Glob.Name(event.to, separator: ".")
        let matching = subscriptions.withLock { $0.values.filter { $0.pattern.matches(name) } }
        var delivered = 0
        for subscription in matching where subscription.admits(event.to) {
            subscription.feed.deliver(event)
            delivered += 1
        }
        return delivered
    }

    /// A live subscription to the topics `pattern` matches (and `admits` lets through).
    func subscribe(_ pattern: String, admits: @escaping @Sendable (String) -> Bool) -> BoundedSubscription<Agentos_V1_BusMessage> {
        let feed = BoundedSubscription<Agentos_V1_BusMessage>(buffer: Self.subscriberBuffer)
        let key = ObjectIdentifier(feed)
        subscriptions.withLock {
            $0[key] = Subscription(pattern: Glob(pattern, separator: "."), feed: feed, admits: admits)
        }
        feed.onTermination { [weak self] in
            self?.subscriptions.withLock { _ = $0.removeValue(forKey: key) }
        }
        return feed
    }

    func finishAll() {
        for subscription in subscriptions.withLock({ Array($0.values) }) { subscription.feed.finish() }
    }

    /// Why `text` is not a topic (or, with `pattern`, a subscription
    /// pattern), or nil: segments joined by '.', each of letters, digits,
    /// '_' and '-' (a pattern may also use '*' in a segment and '**' as one).
    static func problem(_ text: String, pattern: Bool) -> String? {
        let what = pattern ? "topic pattern" : "topic"
        guard !text.isEmpty, text.utf8.count <= maximumTopicBytes else {
            return "a \(what) is 1-\(maximumTopicBytes) bytes"
        }
        for segment in text.split(separator: ".", omittingEmptySubsequences: false) {
            guard !segment.isEmpty else { return "\(what) '\(text)' has an empty segment" }
            let valid = segment.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
                    || (pattern && $0 == "*")
            }
            guard valid else {
                return "\(what) '\(text)': segments of letters, digits, '_' and '-' joined by '.'"
                    + (pattern ? ", '*' within a segment or '**' for any segments" : "")
            }
            if pattern, segment.contains("**"), segment != "**" {
                return "topic pattern '\(text)': '**' stands alone as a segment"
            }
        }
        return nil
    }
}
