import Testing
@testable import AgentOSScheduling

@Suite struct FairQueueTests {
    @Test func higherPriorityFirstThenArrivalOrder() {
        var queue = FairQueue<String>(agingMilliseconds: 1_000)
        queue.push("low", priority: 0, group: "a", now: 0)
        queue.push("high", priority: 5, group: "a", now: 0)
        queue.push("low2", priority: 0, group: "a", now: 0)
        #expect(queue.pop(now: 0)?.element == "high")
        #expect(queue.pop(now: 0)?.element == "low")
        #expect(queue.pop(now: 0)?.element == "low2")
        #expect(queue.pop(now: 0) == nil)
    }

    /// A low-priority entry overtakes a steady stream of higher ones once
    /// it has waited long enough: no starvation.
    @Test func agingEndsStarvation() {
        var queue = FairQueue<String>(agingMilliseconds: 1_000)
        queue.push("old-low", priority: 0, group: "a", now: 0)
        var served: [String] = []
        for second in 0..<20 {
            let now = Int64(second) * 1_000
            queue.push("new-high-\(second)", priority: 10, group: "b", now: now)
            if let next = queue.pop(now: now) { served.append(next.element) }
        }
        let position = served.firstIndex(of: "old-low")
        #expect(position != nil)
        // It waited 10-11 s (priority 10 at 1 point per second).
        #expect((10...12).contains(position ?? -1), "\(served)")
    }

    @Test func fairShareBetweenGroupsAtEqualPriority() {
        var queue = FairQueue<String>(agingMilliseconds: 60_000)
        for index in 0..<4 { queue.push("a\(index)", priority: 1, group: "a", now: 0) }
        for index in 0..<2 { queue.push("b\(index)", priority: 1, group: "b", now: 0) }
        let order = (0..<6).compactMap { _ in queue.pop(now: 0)?.element }
        // Groups alternate while both wait; then a's remainder.
        #expect(order == ["a0", "b0", "a1", "b1", "a2", "a3"])
    }

    @Test func removeAndReprioritise() {
        var queue = FairQueue<String>(agingMilliseconds: 1_000)
        let ticket = queue.push("x", priority: 0, group: "a", now: 0)
        queue.push("y", priority: 0, group: "a", now: 0)
        #expect(queue.remove(ticket: ticket) == "x")
        #expect(queue.remove(ticket: ticket) == nil)
        let removed = queue.removeAll { $0 == "y" }
        #expect(removed.map(\.element) == ["y"])
        #expect(queue.isEmpty)
        queue.push("z", priority: 3, group: "a", now: 0)
        #expect(queue.effectivePriority(queue.ordered(now: 2_500)[0], now: 2_500) == 5)
    }
}
