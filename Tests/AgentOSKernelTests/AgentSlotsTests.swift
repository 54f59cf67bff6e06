@testable import AgentOSKernel
import Foundation
import Logging
import Testing

@Suite("Agent slots")
struct AgentSlotsTests {
    let root: String
    let agents: String
    let logs: String

    init() throws {
        root = NSTemporaryDirectory() + "agentos-slots-" + UUID().uuidString
        agents = root + "/agents"
        logs = root + "/logs"
        try FileManager.default.createDirectory(atPath: agents, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
    }

    func makeSlots(capacity: Int = 3, quiet: Duration = .zero) -> AgentSlots {
        AgentSlots(agentsDirectory: agents, logsDirectory: logs, logMaximumBytes: 1 << 20, capacity: capacity,
                   quiet: quiet, logger: Logger(label: "test"))
    }

    func entries(_ path: String) -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
    }

    @Test func aTakenSlotHasItsDirectoryAndLogAndTheRestAreRemovedOnClose() async throws {
        let slots = makeSlots()
        slots.refill()
        #expect(await eventually { entries(agents).count == 3 })
        let slot = try slots.take { _ in false }
        #expect(entries(agents).contains(slot.id))
        #expect(entries(logs).contains(slot.id + ".log"))
        #expect(await eventually { entries(agents).count == 4 })   // refilled behind the take
        await slots.close()
        #expect(entries(agents) == [slot.id])
        #expect(entries(logs) == [slot.id + ".log"])
    }

    /// While slots are left, a refill waits until none has been taken for
    /// the quiet period; when one or none is left, it starts at once. (The
    /// quiet period is far longer than any wait here, so a loaded machine
    /// cannot blur the two.)
    @Test func aRefillWaitsForAQuietMomentUnlessThePoolRunsLow() async throws {
        let slots = makeSlots(capacity: 3, quiet: .seconds(60))
        slots.refill()
        #expect(await eventually { entries(agents).count == 3 })
        _ = try slots.take { _ in false }   // two left: the refill waits
        try await Task.sleep(for: .milliseconds(300))
        #expect(entries(agents).count == 3, "refilled within the quiet period")
        _ = try slots.take { _ in false }   // one left: refilled now
        #expect(await eventually { entries(agents).count == 5 }, "waited for a quiet moment with one slot left")
        await slots.close()
    }

    /// Once no slot has been taken for the quiet period, the pool is full again.
    @Test func aDeferredRefillComesAfterTheQuietPeriod() async throws {
        let slots = makeSlots(capacity: 3, quiet: .milliseconds(200))
        slots.refill()
        #expect(await eventually { entries(agents).count == 3 })
        _ = try slots.take { _ in false }
        #expect(await eventually { entries(agents).count == 4 })
        await slots.close()
    }

    @Test func takeSkipsIdsInUseAndWorksWithAnEmptyPool() throws {
        let slots = makeSlots(capacity: 0)
        let slot = try slots.take { _ in false }
        #expect(slot.id.count == 12)
        var rejected: Set<String> = []
        let other = try slots.take { id in
            if rejected.count < 2 {
                rejected.insert(id)
                return true
            }
            return false
        }
        #expect(!rejected.contains(other.id))
    }

    @Test func removesWhatNoRecordedAgentOwns() throws {
        for id in ["aaaaaaaaaaaa", "bbbbbbbbbbbb"] {
            try FileManager.default.createDirectory(atPath: agents + "/" + id, withIntermediateDirectories: false)
            #expect(FileManager.default.createFile(atPath: logs + "/" + id + ".log", contents: Data()))
        }
        #expect(FileManager.default.createFile(atPath: logs + "/bbbbbbbbbbbb.log.1", contents: Data()))
        let removed = AgentSlots.removeUnrecorded(agentsDirectory: agents, logsDirectory: logs,
                                                  recorded: ["aaaaaaaaaaaa"])
        #expect(removed == 3)
        #expect(entries(agents) == ["aaaaaaaaaaaa"])
        #expect(entries(logs) == ["aaaaaaaaaaaa.log"])
    }

    func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }
}
