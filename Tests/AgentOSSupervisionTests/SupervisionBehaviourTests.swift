import Testing
@testable import AgentOSSupervision

/// Cases beyond the numbered scenarios: nesting and escalation, shutdown
/// timeouts, failed restarts, back-off, stale news (after OTP's supervisor_SUITE).
@Suite("Supervision behaviour")
struct SupervisionBehaviourTests {
    @Test func nestedSupervisorsStartInOrderAndStopInReverse() {
        let inner = sup(.oneForOne, 3, 5_000, [worker("x"), worker("y")])
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a"), .supervisor("s", inner), worker("b")]))
        world.boot()
        #expect(world.processLog == ["start a", "start s/x", "start s/y", "start b"])
        #expect(world.log.firstIndex(of: "report started s") ?? 0 > world.log.firstIndex(of: "report started s/y") ?? 99)
        world.clearLog()
        world.feed { world.tree.shutdown(now: world.now) }
        #expect(world.processLog == ["terminate b", "terminate s/y", "terminate s/x", "terminate a"])
    }

    @Test func escalationThroughTwoLevels() {
        // Innermost gives up at once (intensity 0); middle gives up at its
        // first restart (intensity 0); the root restarts the middle subtree.
        let innermost = sup(.oneForOne, 0, 5_000, [worker("w")])
        let middle = sup(.oneForOne, 0, 5_000, [.supervisor("inner", innermost), worker("m")])
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a"), .supervisor("mid", middle)]))
        world.boot()
        let a = world.pid("a")
        world.clearLog()
        world.crash("mid/inner/w")
        #expect(world.log.contains("report gave_up mid/inner"))
        #expect(world.log.contains("report exited mid/inner escalated"))
        #expect(world.log.contains("report gave_up mid"))
        #expect(world.log.contains("report exited mid escalated"))
        #expect(world.processLog == ["terminate mid/m", "start mid/inner/w", "start mid/m"])
        #expect(world.pid("a") == a)
        #expect(world.tree.snapshot().restartsInWindow == 1)
        #expect(world.tree.ended == nil)
    }

    @Test func aTransientSubtreeThatGaveUpRestartsOnlyWhenAskedTo() {
        func run(restartOnEscalation: Bool) -> FakeWorld {
            var sub = ChildSpec.supervisor("s", restart: .transient, sup(.oneForOne, 0, 5_000, [worker("w")]))
            sub.restartOnEscalation = restartOnEscalation
            let world = FakeWorld(sup(.oneForOne, 3, 5_000, [sub, worker("b")]))
            world.boot()
            world.crash("s/w")
            return world
        }
        #expect(run(restartOnEscalation: false).pid("s/w") == nil)
        #expect(run(restartOnEscalation: true).pid("s/w") != nil)
    }

    @Test func aWorkerThatIgnoresSIGTERMIsKilledWhenItsShutdownTimeoutEnds() {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a"), worker("b", shutdown: .timeout(milliseconds: 2_000))]))
        world.ignoresTerm = ["b"]
        world.boot()
        world.clearLog()
        world.feed { world.tree.shutdown(now: world.now) }
        #expect(world.processLog == ["terminate b"])
        world.advance(by: 1_999)
        #expect(world.processLog == ["terminate b"])
        world.advance(by: 1)
        #expect(world.processLog == ["terminate b", "kill b", "terminate a"])
        #expect(world.tree.ended == .shutdown)
    }

    @Test func brutalKillSendsNoSIGTERM() {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a", shutdown: .brutalKill)]))
        world.boot()
        world.clearLog()
        world.feed { world.tree.shutdown(now: world.now) }
        #expect(world.processLog == ["kill a"])
    }

    @Test func aFailedRestartCountsAndIsRetried() {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a"), worker("b")]))
        world.boot()
        world.failingStarts["a"] = 2
        world.clearLog()
        world.crash("a")
        #expect(world.processLog == ["start a", "start a", "start a"])
        #expect(world.pid("a") != nil)
        #expect(world.tree.snapshot().restartsInWindow == 3)
    }

    @Test func failedRestartsGiveUpAtTheIntensity() {
        let world = FakeWorld(sup(.oneForOne, 2, 5_000, [worker("a"), worker("b")]))
        world.boot()
        world.failingStarts["a"] = Int.max
        world.crash("a")
        #expect(world.tree.ended == .reachedMaxIntensity)
        #expect(world.live.isEmpty)
    }

    @Test func oneForAllRetriesTheWholeGroupAfterAFailedStart() {
        let world = FakeWorld(sup(.oneForAll, 5, 5_000, [worker("a"), worker("b"), worker("c")]))
        world.boot()
        world.failingStarts["b"] = 1
        world.clearLog()
        world.crash("a")
        #expect(world.processLog == ["terminate c", "terminate b", "start a", "start b",
                                     "terminate a", "start a", "start b", "start c"])
        #expect(world.live.count == 3)
    }

    @Test func backoffDelaysRestartsAndGrowsWithinTheWindow() throws {
        let backoff = Backoff(initialMilliseconds: 100, maximumMilliseconds: 400, steps: 2)
        let world = FakeWorld(sup(.oneForOne, 10, 60_000, [worker("a", backoff: backoff), worker("b")]))
        world.boot()
        world.crash("a")
        #expect(world.pid("a") == nil)
        #expect(try world.tree.whichChildren([]).first { $0.id == "a" }?.state == .restarting)
        world.advance(by: 99)
        #expect(world.pid("a") == nil)
        world.advance(by: 1)
        #expect(world.pid("a") != nil)
        world.crash("a")
        world.advance(by: 199)
        #expect(world.pid("a") == nil)
        // Meanwhile b's crash is handled at once: back-off does not block the supervisor.
        world.crash("b")
        #expect(world.pid("b") != nil)
        world.advance(by: 1)
        #expect(world.pid("a") != nil)
        #expect(world.log.contains("report restarting a 200ms"))
    }

    @Test func terminatingAChildInBackoffCancelsItsRestart() throws {
        let world = FakeWorld(sup(.oneForOne, 10, 60_000, [worker("a", backoff: Backoff(initialMilliseconds: 500,
                                                                                       maximumMilliseconds: 500, steps: 0))]))
        world.boot()
        world.crash("a")
        #expect(world.timerCount == 1)
        try world.admin { try $0.terminateChild(["a"], now: $1) }
        #expect(world.timerCount == 0)
        world.advance(by: 1_000)
        #expect(world.pid("a") == nil)
        #expect(try world.tree.whichChildren([]).first?.state == .stopped)
    }

    @Test func newsAboutAnEarlierStartIsIgnored() {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a")]))
        world.boot()
        let stale = ChildRef(path: ["a"], incarnation: 0)
        world.feed { world.tree.exited(stale, status: .exited(1), now: world.now) }
        world.feed { world.tree.started(stale, pid: 1, now: world.now) }
        #expect(world.tree.snapshot().restartsInWindow == 0)
        #expect(world.pid("a") != nil)
    }

    @Test func successAndNoRestartExitCodes() {
        var a = worker("a", .transient)
        a.successExitCodes = [3]
        var b = worker("b")
        b.noRestartExitCodes = [78]
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [a, b]))
        world.boot()
        world.exit("a", .exited(3))
        #expect(world.pid("a") == nil)
        world.exit("b", .exited(78))
        #expect(world.pid("b") == nil)
        #expect(world.log.contains("report exited b no_restart"))
        #expect(world.tree.snapshot().restartsInWindow == 0)
        #expect(SupervisionTree.classify(.oomKilled, spec: a) == .abnormal)
        #expect(SupervisionTree.classify(.timedOut, spec: a) == .abnormal)
    }

    @Test func aDynamicSupervisorStopsItsChildrenAtOnceUnderOneTimer() throws {
        let pool = SupervisorSpec(strategy: .dynamic, intensity: 3, periodMilliseconds: 5_000,
                                  template: worker("t", shutdown: .timeout(milliseconds: 1_000)))
        let world = FakeWorld(pool)
        world.ignoresTerm = ["t-1", "t-2"]
        world.boot()
        for argument in ["1", "2"] {
            try world.admin { try $0.startDynamicChild(under: [], arguments: [argument], now: $1).1 }
        }
        world.clearLog()
        world.feed { world.tree.shutdown(now: world.now) }
        #expect(world.processLog == ["terminate t-2", "terminate t-1"])
        world.advance(by: 1_000)
        #expect(Set(world.processLog.suffix(2)) == ["kill t-1", "kill t-2"])
        #expect(world.tree.ended == .shutdown)
    }

    @Test func aBootFailureInASubtreeFailsTheWholeBoot() {
        let inner = sup(.oneForOne, 3, 5_000, [worker("x"), worker("y")])
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a"), .supervisor("s", inner), worker("b")]))
        world.failingStarts["s/y"] = Int.max
        world.boot()
        #expect(world.processLog == ["start a", "start s/x", "start s/y", "terminate s/x", "terminate a"])
        guard case .failedToStartChild(let path, _) = world.tree.ended else {
            Issue.record("ended: \(String(describing: world.tree.ended))")
            return
        }
        #expect(path == ["s"])
    }

    @Test func startChildAddsLastAndValidates() throws {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a")]))
        world.boot()
        try world.admin { try $0.startChild(under: [], worker("b"), now: $1) }
        #expect(try world.tree.whichChildren([]).map(\.id) == ["b", "a"])
        #expect(throws: SupervisionError.alreadyStarted("b")) {
            try world.admin { try $0.startChild(under: [], worker("b"), now: $1) }
        }
        #expect(throws: SupervisionError.self) {
            try world.admin { try $0.startChild(under: [], worker("c", .permanent, significant: true), now: $1) }
        }
    }
}

@Suite("Re-applying a changed spec")
struct ReconcileTests {
    @Test func onlyWhatChangedStopsOrStarts() throws {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a"), worker("b"), worker("c")]))
        world.boot()
        let (a, b) = (world.pid("a"), world.pid("b"))
        world.clearLog()
        let updated = sup(.oneForOne, 3, 5_000, [worker("a"), worker("d"), worker("b", .transient)])
        world.feed { world.tree.reconcile(updated, changed: [["b"]], now: world.now) }
        #expect(world.processLog == ["terminate c", "start d", "terminate b", "start b"])
        #expect(world.pid("a") == a)
        #expect(world.pid("b") != b && world.pid("b") != nil)
        #expect(try world.tree.whichChildren([]).map(\.id) == ["b", "d", "a"])
        // The new spec rules from now on: b is transient now.
        world.exit("b", .exited(0))
        #expect(world.pid("b") == nil)
        #expect(world.tree.snapshot().restartsInWindow == 0)
    }

    @Test func subtreesAreReconciledInPlace() throws {
        let inner = sup(.oneForAll, 3, 5_000, [worker("x"), worker("y")])
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("a"), .supervisor("s", inner)]))
        world.boot()
        let x = world.pid("s/x")
        world.clearLog()
        let newInner = sup(.oneForAll, 3, 5_000, [worker("x"), worker("y"), worker("z")])
        world.feed {
            world.tree.reconcile(sup(.oneForOne, 3, 5_000, [worker("a"), .supervisor("s", newInner)]), changed: [["s", "y"]],
                                 now: world.now)
        }
        #expect(world.processLog == ["terminate s/y", "start s/y", "start s/z"])
        #expect(world.pid("s/x") == x)
        // The subtree's strategy still applies to the new member.
        world.clearLog()
        world.crash("s/z")
        #expect(world.processLog == ["terminate s/y", "terminate s/x", "start s/x", "start s/y", "start s/z"])
    }
}

@Suite("Supervision edge cases from review")
struct SupervisionEdgeCaseTests {
    private func emptyPool() -> ChildSpec {
        .supervisor("pool", SupervisorSpec(strategy: .dynamic, template: worker("t")))
    }

    @Test func droppingAnEmptyNestedSupervisorEndsItAtOnce() throws {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("w"), emptyPool()]))
        world.boot()
        world.clearLog()
        world.feed { world.tree.reconcile(sup(.oneForOne, 3, 5_000, [worker("w")]), changed: [], now: world.now) }
        #expect(try world.tree.whichChildren([]).map(\.id) == ["w"])
        #expect(world.processLog.isEmpty)
        // Still working afterwards.
        world.crash("w")
        #expect(world.pid("w") != nil)
    }

    @Test func terminatingATemporaryEmptySupervisorThatIsLastDoesNotTrip() throws {
        var pool = emptyPool()
        pool.restart = .temporary
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("w"), pool]))
        world.boot()
        try world.admin { try $0.terminateChild(["pool"], now: $1) }
        #expect(try world.tree.whichChildren([]).map(\.id) == ["w"])
        world.feed { world.tree.shutdown(now: world.now) }
        #expect(world.tree.ended == .shutdown)
    }

    @Test func aChildThatChangesKindIsStoppedAsItWasAndStartedAsItIs() throws {
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [worker("x")]))
        world.boot()
        world.clearLog()
        let nested = ChildSpec.supervisor("x", sup(.oneForOne, 3, 5_000, [worker("inner")]))
        world.feed { world.tree.reconcile(sup(.oneForOne, 3, 5_000, [nested]), changed: [["x"]], now: world.now) }
        #expect(world.processLog == ["terminate x", "start x/inner"])
        #expect(try world.tree.whichChildren([]).first?.isSupervisor == true)
        world.clearLog()
        world.feed { world.tree.reconcile(sup(.oneForOne, 3, 5_000, [worker("x")]), changed: [["x"]], now: world.now) }
        #expect(world.processLog == ["terminate x/inner", "start x"])
    }

    @Test func aBrutalKillSupervisorChildKillsItsSubtree() {
        var sub = ChildSpec.supervisor("s", sup(.oneForOne, 3, 5_000, [worker("a"), worker("b")]))
        sub.shutdown = .brutalKill
        let world = FakeWorld(sup(.oneForOne, 3, 5_000, [sub]))
        world.ignoresTerm = ["s/a", "s/b"]
        world.boot()
        world.clearLog()
        world.feed { world.tree.shutdown(now: world.now) }
        #expect(world.processLog.contains("kill s/a") && world.processLog.contains("kill s/b"))
        #expect(world.tree.ended == .shutdown)
    }
}
