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

    /// `spec(at:)`: a static child at any depth, a dynamic supervisor's
    /// template for any id below it; `child(at:)`: static children only.
    @Test func aPathFindsAStaticChildOrADynamicSupervisorsTemplate() {
        let pool = SupervisorSpec(strategy: .dynamic, template: worker("job", .temporary))
        let team = SupervisorSpec(children: [worker("planner", .transient), .supervisor("pool", pool)])
        let root = SupervisorSpec(children: [worker("db"), .supervisor("team", team)])
        #expect(root.spec(at: ["db"])?.id == "db")
        #expect(root.spec(at: ["team", "planner"])?.restart == .transient)
        #expect(root.spec(at: ["team", "pool", "job-7"])?.id == "job")
        #expect(root.spec(at: ["team", "pool"])?.isSupervisor == true)
        #expect(root.spec(at: ["team", "nobody"]) == nil)
        #expect(root.spec(at: ["db", "below"]) == nil, "a worker has no children")
        #expect(root.spec(at: []) == nil)
        #expect(root.child(at: ["team", "pool", "job-7"]) == nil)
        #expect(root.child(at: ["team", "planner"])?.id == "planner")
    }
}
