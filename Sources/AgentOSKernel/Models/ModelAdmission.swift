import AgentOSScheduling
import Foundation
import Synchronization

/// Who may call a provider now: at most `concurrency` calls in flight and
/// `requestsPerMinute` started per minute for each provider; the rest wait
/// in a `FairQueue` (priority with aging, fair share between policies).
final class ModelAdmission: Sendable {
    private struct Waiter: Sendable {
        let id: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct Provider {
        var inFlight = 0
        var queue = FairQueue<Waiter>(agingMilliseconds: 5_000)
        var tickets: [UInt64: UInt64] = [:]   // waiter id → queue ticket
        var starts: [Int64] = []              // ms of the calls started in the last minute
        var wakeScheduled = false
    }

    private struct State {
        var providers: [String: Provider] = [:]
        var nextID: UInt64 = 0
        var cancelledEarly: Set<UInt64> = []
    }

    private let state = Mutex(State())
    private let clock: @Sendable () -> Int64

    init(clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1_000) }) {
        self.clock = clock
    }

    /// Waits for a slot of `provider`; the caller must `release` it.
    func acquire(_ provider: String, concurrency: Int, requestsPerMinute: Int?, priority: Int, group: String) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { state -> Bool in
                    if state.cancelledEarly.remove(id) != nil { return true }
                    var entry = state.providers[provider, default: Provider()]
                    let ticket = entry.queue.push(Waiter(id: id, continuation: continuation), priority: priority, group: group,
                                                  now: clock())
                    entry.tickets[id] = ticket
                    state.providers[provider] = entry
                    return false
                }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    pump(provider, concurrency: concurrency, requestsPerMinute: requestsPerMinute)
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard var entry = state.providers[provider], let ticket = entry.tickets.removeValue(forKey: id) else {
                    state.cancelledEarly.insert(id)
                    return nil
                }
                let waiter = entry.queue.remove(ticket: ticket)
                state.providers[provider] = entry
                return waiter
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
        // A waiter resumed just as it was cancelled keeps its slot: the caller releases it.
        state.withLock { _ = $0.cancelledEarly.remove(id) }
    }

    func release(_ provider: String, concurrency: Int, requestsPerMinute: Int?) {
        state.withLock { state in state.providers[provider]?.inFlight -= 1 }
        pump(provider, concurrency: concurrency, requestsPerMinute: requestsPerMinute)
    }

    /// Calls waiting and in flight, per provider (status, tests).
    func load(_ provider: String) -> (waiting: Int, inFlight: Int) {
        state.withLock { state in
            (state.providers[provider]?.queue.count ?? 0, state.providers[provider]?.inFlight ?? 0)
        }
    }

    /// Lets in whoever may go now; arranges a wake-up when only the per-minute limit holds them.
    private func pump(_ provider: String, concurrency: Int, requestsPerMinute: Int?) {
        let now = clock()
        var ready: [Waiter] = []
        var wakeIn: Int64?
        state.withLock { state in
            guard var entry = state.providers[provider] else { return }
            entry.starts.removeAll { $0 <= now - 60_000 }
            while entry.inFlight < concurrency, !entry.queue.isEmpty {
                if let limit = requestsPerMinute, entry.starts.count >= limit {
                    if !entry.wakeScheduled, let oldest = entry.starts.first {
                        entry.wakeScheduled = true
                        wakeIn = oldest + 60_000 - now + 1
                    }
                    break
                }
                guard let next = entry.queue.pop(now: now) else { break }
                entry.tickets[next.element.id] = nil
                entry.inFlight += 1
                entry.starts.append(now)
                ready.append(next.element)
            }
            state.providers[provider] = entry
        }
        for waiter in ready { waiter.continuation.resume() }
        if let wakeIn {
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(max(1, wakeIn)))
                self?.state.withLock { $0.providers[provider]?.wakeScheduled = false }
                self?.pump(provider, concurrency: concurrency, requestsPerMinute: requestsPerMinute)
            }
        }
    }
}
