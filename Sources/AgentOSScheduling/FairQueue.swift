/// A priority queue with aging and fair share between groups: what the
/// kernel's scheduler takes the next goal or model call from.
///
/// * Priority: a higher number goes first.
/// * Aging: each `agingMilliseconds` an entry has waited counts as one
///   more priority point, so a low-priority entry is never starved: it
///   overtakes any steady stream of higher ones after a bounded wait.
/// * Fair share: among entries of equal effective priority, the group
///   (policy) that has been served least goes first; then arrival order.
///
/// Pure and single-threaded: the caller serialises access and gives the time.
public struct FairQueue<Element> {
    public struct Entry {
        public let element: Element
        public let priority: Int
        public let group: String
        public let enqueuedAt: Int64
        let sequence: UInt64
    }

    public let agingMilliseconds: Int64
    private var entries: [Entry] = []
    private var nextSequence: UInt64 = 0
    /// How often each group was served, for fair share.
    public private(set) var served: [String: Int] = [:]

    public init(agingMilliseconds: Int64 = 10_000) {
        precondition(agingMilliseconds > 0, "aging must be positive")
        self.agingMilliseconds = agingMilliseconds
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// Waiting entries in the order they would be served now.
    public func ordered(now: Int64) -> [Entry] {
        entries.sorted { comesFirst($0, $1, now: now) }
    }

    /// Adds an element; returns its ticket for `remove`.
    @discardableResult
    public mutating func push(_ element: Element, priority: Int, group: String, now: Int64) -> UInt64 {
        let sequence = nextSequence
        nextSequence += 1
        entries.append(Entry(element: element, priority: priority, group: group, enqueuedAt: now, sequence: sequence))
        return sequence
    }

    /// The entry to serve now, removed and counted for its group.
    public mutating func pop(now: Int64) -> Entry? {
        guard var best = entries.indices.first else { return nil }
        for index in entries.indices.dropFirst() where comesFirst(entries[index], entries[best], now: now) {
            best = index
        }
        let entry = entries.remove(at: best)
        served[entry.group, default: 0] += 1
        return entry
    }

    /// Removes a waiting entry (cancelled); nil if it is not waiting.
    @discardableResult
    public mutating func remove(ticket: UInt64) -> Element? {
        guard let index = entries.firstIndex(where: { $0.sequence == ticket }) else { return nil }
        return entries.remove(at: index).element
    }

    /// Removes the entries matching `predicate` (a goal re-prioritised or cancelled).
    public mutating func removeAll(where predicate: (Element) -> Bool) -> [Entry] {
        let removed = entries.filter { predicate($0.element) }
        entries.removeAll { predicate($0.element) }
        return removed
    }

    /// Priority plus one point per `agingMilliseconds` waited.
    public func effectivePriority(_ entry: Entry, now: Int64) -> Int {
        effectivePriority(entry.priority, enqueuedAt: entry.enqueuedAt, now: now)
    }

    public func effectivePriority(_ priority: Int, enqueuedAt: Int64, now: Int64) -> Int {
        priority + Int(max(0, now - enqueuedAt) / agingMilliseconds)
    }

    private func comesFirst(_ a: Entry, _ b: Entry, now: Int64) -> Bool {
        let (pa, pb) = (effectivePriority(a, now: now), effectivePriority(b, now: now))
        if pa != pb { return pa > pb }
        let (sa, sb) = (served[a.group] ?? 0, served[b.group] ?? 0)
        if sa != sb { return sa < sb }
        return a.sequence < b.sequence
    }
}
