import Testing
@testable import AgentOSSupervision

@Suite("Supervision specs")
struct SpecTests {
    @Test func backoffGrowsGeometricallyToItsMaximum() {
        let backoff = Backoff(initialMilliseconds: 100, maximumMilliseconds: 10_000, steps: 2)
        #expect(backoff.delay(restart: 0) == 100)
        #expect(backoff.delay(restart: 1) == 1_000)
        #expect(backoff.delay(restart: 2) == 10_000)
        #expect(backoff.delay(restart: 9) == 10_000)
        #expect(Backoff(initialMilliseconds: 250, maximumMilliseconds: 0, steps: 0).delay(restart: 5) == 250)
    }
}
