import Synchronization
import Testing
@testable import AgentOSKernel

@Suite struct ModelAdmissionTests {
    /// One slot: waiters are let in by priority, not arrival; a cancelled
    /// waiter leaves the queue and takes no slot.
    @Test func priorityOrderAndCancellation() async throws {
        let admission = ModelAdmission()
        try await admission.acquire("p", concurrency: 1, requestsPerMinute: nil, priority: 0, group: "a")
        let order = Locked<[String]>([])
        let low = Task {
            try await admission.acquire("p", concurrency: 1, requestsPerMinute: nil, priority: 0, group: "a")
            order.withLock { $0.append("low") }
            admission.release("p", concurrency: 1, requestsPerMinute: nil)
        }
        let cancelled = Task {
            try await admission.acquire("p", concurrency: 1, requestsPerMinute: nil, priority: 50, group: "b")
            order.withLock { $0.append("cancelled") }
        }
        let high = Task {
            try await admission.acquire("p", concurrency: 1, requestsPerMinute: nil, priority: 10, group: "c")
            order.withLock { $0.append("high") }
            admission.release("p", concurrency: 1, requestsPerMinute: nil)
        }
        while admission.load("p").waiting < 3 { try await Task.sleep(for: .milliseconds(5)) }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(admission.load("p").waiting == 2)
        admission.release("p", concurrency: 1, requestsPerMinute: nil)
        try await high.value
        try await low.value
        #expect(order.withLock { $0 } == ["high", "low"])
        #expect(admission.load("p").inFlight == 0)
    }

    /// requests_per_minute: the next call waits for the window.
    @Test func requestsPerMinute() async throws {
        let clock = Locked<Int64>(0)
        let admission = ModelAdmission(clock: { clock.withLock { $0 } })
        try await admission.acquire("p", concurrency: 10, requestsPerMinute: 1, priority: 0, group: "a")
        admission.release("p", concurrency: 10, requestsPerMinute: 1)
        let second = Task { try await admission.acquire("p", concurrency: 10, requestsPerMinute: 1, priority: 0, group: "a") }
        try await Task.sleep(for: .milliseconds(50))
        #expect(admission.load("p").waiting == 1)
        second.cancel()
        _ = try? await second.value
        #expect(admission.load("p").waiting == 0)
    }
}

final class Locked<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    init(_ value: Value) { self.value = Mutex(value) }

    func withLock<T>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
}
