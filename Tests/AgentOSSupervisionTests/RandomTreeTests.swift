import Testing
@testable import AgentOSSupervision

/// Random trees under random crash, time and admin sequences (a seeded
/// generator, so a failure names a seed that reproduces it), checking the
/// invariants of supervision.md after every input.
@Suite("Supervision invariants on random trees")
struct RandomTreeTests {
    @Test(arguments: 0..<500)
    func invariantsHold(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let root = randomSupervisor(&random, depth: 0, prefix: "n")
        let world = FakeWorld(root)
        // Half the seeds add admin calls and failing starts; those queue
        // operations behind others, so order is checked on the rest.
        let failStarts = seed % 4 == 3
        let adminCalls = seed % 4 >= 2
        let orderMatters = !adminCalls
        world.boot()
        check(world, root: root, seed: seed, orderMatters: orderMatters)
        for _ in 0..<80 {
            let live = world.live.keys.sorted()
            switch random.next(below: 10) {
            case 0...4 where !live.isEmpty:
                let path = live[random.next(below: live.count)]
                let statuses: [AgentOSSupervision.ExitStatus] = [.exited(0), .exited(1), .signaled(9), .oomKilled, .timedOut]
                if failStarts, random.next(below: 3) == 0 { world.failingStarts[path] = 1 + random.next(below: 2) }
                world.exit(path, statuses[random.next(below: statuses.count)])
            case 5, 6:
                world.advance(by: Int64(random.next(below: 3_000)))
            case 7 where adminCalls:
                if let path = randomChildPath(world.tree.snapshot(), &random) {
                    _ = try? world.admin { try $0.terminateChild(path, now: $1) }
                }
            case 8 where adminCalls:
                if let path = randomChildPath(world.tree.snapshot(), &random) {
                    _ = try? world.admin { try $0.restartChild(path, now: $1) }
                }
            default:
                world.advance(by: 10)
            }
            check(world, root: root, seed: seed, orderMatters: orderMatters)
            if world.tree.ended != nil { break }
        }
        if world.tree.ended == nil {
            world.feed { world.tree.shutdown(now: world.now) }
            world.advance(by: 60_000)
        }
        #expect(world.tree.ended != nil, "seed \(seed): the tree did not stop")
        #expect(world.live.isEmpty, "seed \(seed): \(world.live.keys.sorted()) outlived the tree")
    }

    /// 1. No child of a stopped supervisor runs; 2. every process the world
    /// runs is one the tree knows as running or stopping; 3. within one
    /// input, a supervisor stops its children newest first and starts them
    /// in spec order; 4. no supervisor instance restarts more than
    /// `intensity` times within any window of `period`.
    private let checkedBatch = Box(-1)

    private func check(_ world: FakeWorld, root: SupervisorSpec, seed: UInt64, orderMatters: Bool) {
        var known: [String: ChildInfo] = [:]
        func collect(_ info: ChildInfo) {
            for child in info.children {
                known[child.path.joined(separator: "/")] = child
                collect(child)
            }
        }
        collect(world.tree.snapshot())
        for path in world.live.keys {
            let info = known[path]
            #expect(info?.state == .running || info?.state == .stopping,
                    "seed \(seed): \(path) runs but the tree says \(String(describing: info?.state))")
            var ancestor = path.split(separator: "/").map(String.init).dropLast()
            while !ancestor.isEmpty {
                let state = known[ancestor.joined(separator: "/")]?.state
                #expect(state == .running || state == .stopping || state == .starting,
                        "seed \(seed): \(path) runs under \(ancestor.joined(separator: "/")) in state \(String(describing: state))")
                ancestor = ancestor.dropLast()
            }
        }
        if world.tree.ended != nil {
            #expect(world.live.isEmpty, "seed \(seed): processes outlive the stopped tree")
        }
        if orderMatters, let last = world.timedReports.last?.batch, last != checkedBatch.value {
            checkedBatch.value = last
            let reports = world.timedReports.filter { $0.batch == last }.map(\.report)
            checkOrder(reports, spec: root, path: [], seed: seed, context: world.log.suffix(40).joined(separator: "; "))
        }
        checkIntensity(world, root: root, seed: seed)
    }

    /// Within one input, the children a supervisor stops end newest first
    /// and the ones it starts come up in spec order (the first time each is
    /// met: a failed start's retry may repeat a group).
    private func checkOrder(_ reports: [SupervisionReport], spec: SupervisorSpec, path: [String], seed: UInt64,
                            context: String) {
        guard spec.strategy != .dynamic else { return }
        let ids = spec.children.map(\.id)
        func direct(_ target: [String]) -> Int? {
            guard target.count == path.count + 1, Array(target.prefix(path.count)) == path else { return nil }
            return ids.firstIndex(of: target[path.count])
        }
        // A restart decision begins a new operation (a queued one may
        // follow an earlier one within the same input).
        var segments: [([Int], [Int])] = [([], [])]
        for report in reports {
            switch report {
            case .restarting(let target, _) where direct(target) != nil:
                segments.append(([], []))
            case .started(let target, _):
                if let index = direct(target), !segments[segments.count - 1].0.contains(index) {
                    segments[segments.count - 1].0.append(index)
                }
            case .exited(let target, _, .stopped):
                if let index = direct(target), !segments[segments.count - 1].1.contains(index) {
                    segments[segments.count - 1].1.append(index)
                }
            default:
                break
            }
        }
        for (starts, stops) in segments {
            #expect(starts == starts.sorted(), "seed \(seed): starts under /\(path.joined(separator: "/")) out of order: \(context)")
            #expect(stops == stops.sorted(by: >), "seed \(seed): stops under /\(path.joined(separator: "/")) out of order: \(context)")
        }
        for child in spec.children {
            if case .supervisor(let sub) = child.kind { checkOrder(reports, spec: sub, path: path + [child.id], seed: seed, context: context) }
        }
    }

    private func checkIntensity(_ world: FakeWorld, root: SupervisorSpec, seed: UInt64) {
        // Each supervisor instance's restarts, from its (re)start on.
        var specs: [String: SupervisorSpec] = ["": root]
        func index(_ spec: SupervisorSpec, _ path: [String]) {
            for child in spec.children {
                if case .supervisor(let sub) = child.kind {
                    specs[(path + [child.id]).joined(separator: "/")] = sub
                    index(sub, path + [child.id])
                }
            }
        }
        index(root, [])
        var history: [String: [Int64]] = [:]
        for (time, _, report) in world.timedReports {
            switch report {
            case .started(let path, nil):
                history[path.joined(separator: "/")] = []
            case .restarting(let path, _):
                let owner = path.dropLast().joined(separator: "/")
                guard let spec = specs[owner] else { continue }
                var times = history[owner, default: []]
                times.append(time)
                history[owner] = times
                let inWindow = times.filter { time - $0 <= spec.periodMilliseconds }.count
                #expect(inWindow <= spec.intensity,
                        "seed \(seed): /\(owner) restarted \(inWindow) times within \(spec.periodMilliseconds) ms (intensity \(spec.intensity))")
            default:
                break
            }
        }
    }

    private func randomChildPath(_ info: ChildInfo, _ random: inout SplitMix64) -> [String]? {
        var all: [[String]] = []
        func walk(_ node: ChildInfo) {
            for child in node.children {
                all.append(child.path)
                walk(child)
            }
        }
        walk(info)
        return all.isEmpty ? nil : all[random.next(below: all.count)]
    }

    private func randomSupervisor(_ random: inout SplitMix64, depth: Int, prefix: String) -> SupervisorSpec {
        let strategies: [Strategy] = [.oneForOne, .oneForAll, .restForOne]
        let restarts: [RestartType] = [.permanent, .permanent, .transient, .temporary]
        var children: [ChildSpec] = []
        for index in 0..<(1 + random.next(below: 4)) {
            let id = "\(prefix)\(index)"
            if depth < 2, random.next(below: 4) == 0 {
                var child = ChildSpec.supervisor(id, restart: restarts[random.next(below: 3)],
                                                 randomSupervisor(&random, depth: depth + 1, prefix: id + "."))
                child.restartOnEscalation = random.next(below: 2) == 0
                children.append(child)
            } else {
                var child = ChildSpec(id: id, restart: restarts[random.next(below: restarts.count)])
                if random.next(below: 5) == 0 {
                    child.backoff = Backoff(initialMilliseconds: 50, maximumMilliseconds: 800, steps: 3)
                }
                if random.next(below: 6) == 0 { child.shutdown = .brutalKill }
                children.append(child)
            }
        }
        return SupervisorSpec(strategy: strategies[random.next(below: strategies.count)],
                              intensity: random.next(below: 4),
                              periodMilliseconds: Int64(500 + random.next(below: 5_000)), children: children)
    }
}

final class Box<Value> {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// A small seeded generator (SplitMix64): the same seed, the same tree.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
