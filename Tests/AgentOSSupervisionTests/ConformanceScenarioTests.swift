import Testing
@testable import AgentOSSupervision

/// The conformance scenarios of shared/conformance/supervision.md, by number,
/// against the pure state machine with instant fake processes.
@Suite("Supervision conformance scenarios")
struct ConformanceScenarioTests {
    @Test("1. one_for_one isolation")
    func oneForOneIsolation() throws {
        let world = FakeWorld(sup(.oneForOne, 2, 3_600_000, [worker("a"), worker("b")]))
        world.boot()
        let (a, b) = (world.pid("a"), world.pid("b"))
        world.clearLog()
        world.crash("a")
        #expect(world.processLog == ["start a"])
        #expect(world.pid("a") != nil && world.pid("a") != a)
        #expect(world.pid("b") == b)
        let counts = try world.tree.countChildren([])
        #expect(counts.specs == 2 && counts.active == 2)
    }

    @Test("2. intensity exceeded")
    func intensityExceeded() {
        let world = FakeWorld(sup(.oneForOne, 2, 3_600_000, [worker("a"), worker("b")]))
        world.boot()
        world.crash("a")
        world.advance(by: 300)
        world.crash("b")
        world.advance(by: 300)
        world.clearLog()
        world.crash("a")
        #expect(world.processLog == ["terminate b"])
        #expect(world.log.contains("report gave_up <root>"))
        #expect(world.tree.ended == .reachedMaxIntensity)
        #expect(world.live.isEmpty)
    }

    @Test("3. the window slides")
    func windowSlides() {
        let world = FakeWorld(sup(.oneForOne, 1, 1_000, [worker("a")]))
        world.boot()
        for _ in 0..<4 {
            world.crash("a")
            #expect(world.pid("a") != nil)
            world.advance(by: 2_100)
        }
        #expect(world.tree.ended == nil)
        #expect(world.processLog.filter { $0 == "start a" }.count == 5)
    }

    @Test("5. intensity 0")
    func intensityZero() {
        let world = FakeWorld(sup(.oneForOne, 0, 5_000, [worker("a"), worker("b")]))
        world.boot()
        world.clearLog()
        world.crash("a")
        #expect(world.processLog == ["terminate b"])
        #expect(world.tree.ended == .reachedMaxIntensity)
    }

    @Test("6. one_for_all")
    func oneForAll() {
        let world = FakeWorld(sup(.oneForAll, 2, 3_600_000, [worker("a"), worker("b"), worker("c")]))
        world.boot()
        world.clearLog()
        world.crash("b")
        #expect(world.processLog == ["terminate c", "terminate a", "start a", "start b", "start c"])
        #expect(world.tree.snapshot().restartsInWindow == 1)
    }

    @Test("7. rest_for_one")
    func restForOne() {
        let world = FakeWorld(sup(.restForOne, 3, 5_000, ["a", "b", "c", "d", "e"].map { worker($0) }))
        world.boot()
        let (a, b) = (world.pid("a"), world.pid("b"))
        world.clearLog()
        world.crash("c")
        #expect(world.processLog == ["terminate e", "terminate d", "start c", "start d", "start e"])
        #expect(world.pid("a") == a && world.pid("b") == b)
    }

    @Test("8. transient")
    func transient() throws {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a", .transient)]))
        world.boot()
        world.clearLog()
        world.exit("a", .exited(0))
        #expect(world.processLog.isEmpty)
        let listed = try world.tree.whichChildren([])
        #expect(listed.map(\.id) == ["a"] && listed[0].state == .stopped)
        #expect(world.tree.snapshot().restartsInWindow == 0)
        try world.admin { try $0.restartChild(["a"], now: $1) }
        #expect(world.pid("a") != nil)
        world.exit("a", .exited(1))
        #expect(world.pid("a") != nil)
        world.exit("a", .signaled(9))
        #expect(world.pid("a") != nil)
        #expect(world.tree.snapshot().restartsInWindow == 2)
    }

    @Test("9. temporary")
    func temporary() throws {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a", .temporary)]))
        world.boot()
        world.crash("a")
        #expect(world.pid("a") == nil)
        #expect(try world.tree.whichChildren([]).isEmpty)
        try world.admin { try $0.startChild(under: [], worker("a", .temporary), now: $1) }
        #expect(world.pid("a") != nil)
    }

    @Test("10. a permanent child's normal exit is restarted and counted")
    func permanentNormalExit() {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a")]))
        world.boot()
        world.exit("a", .exited(0))
        #expect(world.pid("a") != nil)
        #expect(world.tree.snapshot().restartsInWindow == 1)

        let strict = FakeWorld(sup(.oneForOne, 0, 5_000, [worker("a")]))
        strict.boot()
        strict.exit("a", .exited(0))
        #expect(strict.tree.ended == .reachedMaxIntensity)
    }

    @Test("11. a temporary bystander of one_for_all")
    func temporaryBystander() throws {
        let world = FakeWorld(sup(.oneForAll, 2, 300_000, [worker("a"), worker("b", .temporary)]))
        world.boot()
        world.clearLog()
        world.exit("a", .exited(0))
        #expect(world.processLog == ["terminate b", "start a"])
        #expect(try world.tree.whichChildren([]).map(\.id) == ["a"])
        #expect(world.tree.ended == nil)
    }

    @Test("12. boot failure")
    func bootFailure() {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a"), worker("b"), worker("c")]))
        world.failingStarts["b"] = Int.max
        world.boot()
        #expect(world.processLog == ["start a", "start b", "terminate a"])
        guard case .failedToStartChild(let path, let reason) = world.tree.ended else {
            Issue.record("ended: \(String(describing: world.tree.ended))")
            return
        }
        #expect(path == ["b"])
        #expect(reason.contains("cannot start"))
        #expect(world.live.isEmpty)
    }

    @Test("13. start order and stop order")
    func startAndStopOrder() {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a"), worker("b"), worker("c")]))
        world.boot()
        #expect(world.log == ["start a", "report started a", "start b", "report started b", "start c",
                              "report started c", "report tree_started"])
        world.clearLog()
        world.feed { world.tree.shutdown(now: world.now) }
        #expect(world.processLog == ["terminate c", "terminate b", "terminate a"])
        #expect(world.tree.ended == .shutdown)
    }

    @Test("18. the admin state machine")
    func adminStateMachine() throws {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a")]))
        world.boot()
        try world.admin { try $0.terminateChild(["a"], now: $1) }
        #expect(try world.tree.countChildren([]).active == 0)
        try world.admin { try $0.terminateChild(["a"], now: $1) }
        #expect(throws: SupervisionError.alreadyPresent("a")) {
            try world.admin { try $0.startChild(under: [], worker("a"), now: $1) }
        }
        try world.admin { try $0.restartChild(["a"], now: $1) }
        let first = try #require(world.pid("a"))
        #expect(throws: SupervisionError.running("a")) { try world.admin { try $0.restartChild(["a"], now: $1) } }
        #expect(throws: SupervisionError.running("a")) { try world.tree.deleteChild(["a"], now: world.now) }
        try world.admin { try $0.terminateChild(["a"], now: $1) }
        try world.tree.deleteChild(["a"], now: world.now)
        #expect(throws: SupervisionError.notFound("a")) { try world.admin { try $0.restartChild(["a"], now: $1) } }
        #expect(throws: SupervisionError.notFound("zz")) { try world.admin { try $0.terminateChild(["zz"], now: $1) } }
        #expect(first > 0)
    }

    @Test("19. manual operations do not count")
    func manualOperationsAreFree() throws {
        let world = FakeWorld(sup(.oneForOne, 0, 5_000, [worker("a")]))
        world.boot()
        for _ in 0..<10 {
            try world.admin { try $0.terminateChild(["a"], now: $1) }
            try world.admin { try $0.restartChild(["a"], now: $1) }
        }
        #expect(world.tree.ended == nil)
        #expect(world.pid("a") != nil)
    }

    @Test("20. any_significant")
    func anySignificant() throws {
        func make() -> FakeWorld {
            let world = FakeWorld(sup(.oneForOne, 3, 5_000, auto: .anySignificant, [
                worker("a", .transient, significant: true), worker("b", .transient, significant: true),
                worker("c", .transient),
            ]))
            world.boot()
            world.clearLog()
            return world
        }
        let normal = make()
        normal.exit("a", .exited(0))
        #expect(normal.processLog == ["terminate c", "terminate b"])
        #expect(normal.tree.ended == .autoShutdown)

        let crashed = make()
        crashed.crash("a")
        #expect(crashed.processLog == ["start a"])
        #expect(crashed.tree.ended == nil)

        let terminated = make()
        try terminated.admin { try $0.terminateChild(["a"], now: $1) }
        #expect(terminated.processLog == ["terminate a"])
        #expect(terminated.tree.ended == nil)
    }

    @Test("21. all_significant")
    func allSignificant() {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, auto: .allSignificant, [
            worker("a", .temporary, significant: true), worker("b", .temporary, significant: true), worker("c"),
        ]))
        world.boot()
        world.clearLog()
        world.exit("a", .exited(0))
        #expect(world.processLog.isEmpty)
        #expect(world.tree.ended == nil)
        world.exit("b", .exited(0))
        #expect(world.processLog == ["terminate c"])
        #expect(world.tree.ended == .autoShutdown)
    }

    @Test("24. a dynamic pool")
    func dynamicPool() throws {
        let pool = SupervisorSpec(strategy: .dynamic, intensity: 2, periodMilliseconds: 3_600_000,
                                  template: worker("t"), maxChildren: 2)
        let world = FakeWorld(pool)
        world.boot()
        var first: [String] = []
        try world.admin { tree, now in
            let (path, actions) = try tree.startDynamicChild(under: [], arguments: ["x"], now: now)
            first = path
            return actions
        }
        let name = first.joined(separator: "/")
        #expect(world.extraArguments[name] == ["x"])
        world.crash(name)
        #expect(world.pid(name) != nil)
        #expect(world.extraArguments[name] == ["x"])
        try world.admin { try $0.startDynamicChild(under: [], arguments: ["y"], now: $1).1 }
        #expect(throws: SupervisionError.maxChildren("")) {
            try world.admin { try $0.startDynamicChild(under: [], arguments: ["z"], now: $1).1 }
        }
        #expect(throws: SupervisionError.notSupported(name)) { try world.admin { try $0.restartChild(first, now: $1) } }
        #expect(throws: SupervisionError.notSupported(name)) { try world.tree.deleteChild(first, now: world.now) }
    }

    @Test("26. the window is in milliseconds")
    func windowInMilliseconds() {
        let inside = FakeWorld(sup(.oneForOne, 1, 5_000, [worker("a")]))
        inside.boot()
        inside.crash("a")
        inside.advance(by: 4_990)
        inside.crash("a")
        #expect(inside.tree.ended == .reachedMaxIntensity)

        let outside = FakeWorld(sup(.oneForOne, 1, 5_000, [worker("a")]))
        outside.boot()
        outside.crash("a")
        outside.advance(by: 5_010)
        outside.crash("a")
        #expect(outside.tree.ended == nil)
        #expect(outside.pid("a") != nil)
    }
}

extension FakeWorld {
    /// Feeds actions from outside an event (a shutdown, say).
    func feed(_ body: () -> [SupervisionAction]) {
        let actions = body()
        try? admin { _, _ in actions }
    }
}
