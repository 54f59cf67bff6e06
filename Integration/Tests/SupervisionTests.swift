import Foundation
import Testing

/// Supervision trees from policy files, with real confined processes
/// through agentd and agentctl (shared/conformance/supervision.md).
@Suite("Supervision trees", .serialized)
struct SupervisionTests {
    @Test func crashesByExitCodeSignalAndOOMAreRestartedAndOnlyThatChild() throws {
        let kernel = try KernelProcess(label: "svcrash")
        defer { kernel.stop() }
        try kernel.apply("""
            version: 1
            name: crash
            supervisor:
              strategy: one_for_one
              intensity: 10
              period: 60s
              children:
                - id: steady
                  program: /bin/sleep
                  args: ["300"]
                - id: victim
                  program: /bin/sleep
                  args: ["300"]
                - id: coder
                  program: /bin/sh
                  args: [-c, 'sleep 0.3; exit 3']
                - id: hog
                  program: /bin/sh
                  args: [-c, 'sleep 0.3; a=$(head -c 200000000 /dev/zero | tr "\\000" x); echo survived']
                  sandbox: {memory: 16M}
            """)
        let before = try kernel.treeNodes("crash")
        let steadyPID = try #require(before["crash/steady"]?["pid"] as? Int)
        let victimPID = try #require(before["crash/victim"]?["pid"] as? Int)
        kill(Int32(victimPID), SIGKILL)
        #expect(eventually { (try? kernel.treeNodes("crash")["crash/victim"]?["pid"] as? Int).flatMap { $0 != victimPID } ?? false })
        #expect(eventually {
            let events = (try? kernel.eventList()) ?? []
            return events.contains { $0.kind == "supervision.exited" && $0.path == "crash/coder" && $0.message.contains("exit 3") }
                && events.contains { $0.kind == "supervision.exited" && $0.path == "crash/hog" && $0.message.contains("out of memory") }
                && events.contains { $0.kind == "supervision.exited" && $0.path == "crash/victim" && $0.message.contains("signal 9") }
        })
        let events = try kernel.eventList()
        for path in ["crash/coder", "crash/hog", "crash/victim"] {
            #expect(events.contains { $0.kind == "supervision.restarting" && $0.path == path }, "\(path) was not restarted")
        }
        #expect(try kernel.treeNodes("crash")["crash/steady"]?["pid"] as? Int == steadyPID)
        try kernel.ctl(["delete", "crash"])
    }

    @Test func oneForAllAndRestForOneRestartInOrder() throws {
        let kernel = try KernelProcess(label: "svorder")
        defer { kernel.stop() }
        try kernel.apply("""
            version: 1
            name: order
            supervisor:
              children:
                - id: all
                  supervisor:
                    strategy: one_for_all
                    children:
                      - id: a
                        program: /bin/sleep
                        args: ["300"]
                      - id: b
                        program: /bin/sleep
                        args: ["300"]
                      - id: c
                        program: /bin/sleep
                        args: ["300"]
                - id: rest
                  supervisor:
                    strategy: rest_for_one
                    children:
                      - id: d
                        program: /bin/sleep
                        args: ["300"]
                      - id: e
                        program: /bin/sleep
                        args: ["300"]
                      - id: f
                        program: /bin/sleep
                        args: ["300"]
            """)
        let nodes = try kernel.treeNodes("order")
        let mark = try kernel.eventList().last?.seq ?? 0
        kill(Int32(try #require(nodes["order/all/b"]?["pid"] as? Int)), SIGKILL)
        #expect(eventually { (try? kernel.treeNodes("order")["order/all/c"]?["pid"] as? Int) != nodes["order/all/c"]?["pid"] as? Int })
        #expect(eventually { (try? kernel.treeNodes("order")["order/all/c"]?["state"] as? String) == "running" })
        let all = try kernel.eventList().filter { $0.seq > mark && $0.path.hasPrefix("order/all/") }
            .filter { $0.kind == "supervision.started" || ($0.kind == "supervision.exited" && $0.message.hasSuffix("stopped")) }
            .map { "\($0.kind == "supervision.started" ? "start" : "stop") \($0.path.dropFirst("order/all/".count))" }
        #expect(all == ["stop c", "stop a", "start a", "start b", "start c"])

        let mark2 = try kernel.eventList().last?.seq ?? 0
        let dPID = nodes["order/rest/d"]?["pid"] as? Int
        kill(Int32(try #require(nodes["order/rest/e"]?["pid"] as? Int)), SIGKILL)
        #expect(eventually { (try? kernel.treeNodes("order")["order/rest/f"]?["pid"] as? Int) != nodes["order/rest/f"]?["pid"] as? Int })
        #expect(eventually { (try? kernel.treeNodes("order")["order/rest/f"]?["state"] as? String) == "running" })
        let rest = try kernel.eventList().filter { $0.seq > mark2 && $0.path.hasPrefix("order/rest/") }
            .filter { $0.kind == "supervision.started" || ($0.kind == "supervision.exited" && $0.message.hasSuffix("stopped")) }
            .map { "\($0.kind == "supervision.started" ? "start" : "stop") \($0.path.dropFirst("order/rest/".count))" }
        #expect(rest == ["stop f", "start e", "start f"])
        #expect(try kernel.treeNodes("order")["order/rest/d"]?["pid"] as? Int == dPID)
    }

    @Test func intensityExceededStopsTheTreeAndTheKernelStaysUp() throws {
        let kernel = try KernelProcess(label: "svgive")
        defer { kernel.stop() }
        try kernel.apply("""
            version: 1
            name: giveup
            supervisor:
              intensity: 2
              period: 30s
              children:
                - id: bystander
                  program: /bin/sleep
                  args: ["300"]
                - id: crasher
                  program: /bin/sh
                  args: [-c, 'sleep 0.2; exit 1']
            """)
        #expect(eventually(timeout: 15) {
            let list = (try? kernel.json(["policy", "ls"]) as? [[String: Any]]) ?? []
            return list.first?["state"] as? String == "stopped"
        })
        let list = try #require(try kernel.json(["policy", "ls"]) as? [[String: Any]])
        #expect(list.first?["ended_reason"] as? String == "reached max restart intensity")
        let events = try kernel.eventList()
        #expect(events.filter { $0.kind == "supervision.restarting" && $0.path == "giveup/crasher" }.count == 2)
        #expect(events.contains { $0.kind == "supervision.gave-up" && $0.path == "giveup" })
        #expect(events.contains { $0.kind == "supervision.exited" && $0.path == "giveup/bystander" && $0.message.hasSuffix("stopped") })
        #expect(try #require(try kernel.json(["ps"]) as? [[String: Any]]).isEmpty)
        #expect(try kernel.ctl(["status"]).status == 0)
    }

    @Test func escalationThroughTwoLevelsRestartsTheSubtree() throws {
        let kernel = try KernelProcess(label: "svesc")
        defer { kernel.stop() }
        try kernel.apply("""
            version: 1
            name: esc
            supervisor:
              intensity: 3
              period: 60s
              children:
                - id: keep
                  program: /bin/sleep
                  args: ["300"]
                - id: mid
                  supervisor:
                    intensity: 0
                    children:
                      - id: inner
                        supervisor:
                          intensity: 0
                          children:
                            - id: w
                              program: /bin/sleep
                              args: ["300"]
                      - id: m
                        program: /bin/sleep
                        args: ["300"]
            """)
        let nodes = try kernel.treeNodes("esc")
        kill(Int32(try #require(nodes["esc/mid/inner/w"]?["pid"] as? Int)), SIGKILL)
        #expect(eventually {
            let now = (try? kernel.treeNodes("esc")) ?? [:]
            return now["esc/mid/m"]?["state"] as? String == "running"
                && now["esc/mid/m"]?["pid"] as? Int != nodes["esc/mid/m"]?["pid"] as? Int
                && now["esc/mid/inner/w"]?["state"] as? String == "running"
        })
        let events = try kernel.eventList()
        #expect(events.contains { $0.kind == "supervision.gave-up" && $0.path == "esc/mid/inner" })
        #expect(events.contains { $0.kind == "supervision.gave-up" && $0.path == "esc/mid" })
        #expect(events.contains { $0.kind == "supervision.exited" && $0.path == "esc/mid" && $0.message.hasSuffix("escalated") })
        #expect(try kernel.treeNodes("esc")["esc/keep"]?["pid"] as? Int == nodes["esc/keep"]?["pid"] as? Int)
        #expect(try kernel.treeNodes("esc")["esc"]?["restarts_in_window"] as? Int == 1)
    }

    @Test func terminateLeavesNoDescendantEvenOneIgnoringSIGTERM() throws {
        let kernel = try KernelProcess(label: "svterm")
        defer { kernel.stop() }
        let marker = "3\(Int.random(in: 10_000...99_999))"
        try kernel.apply("""
            version: 1
            name: term
            supervisor:
              children:
                - id: parent
                  program: /bin/sh
                  args: [-c, '(trap "" TERM; exec /bin/sleep \(marker)) & trap "" TERM; wait; wait']
                  shutdown: 500ms
            """)
        _ = try waitForHostPid(["/bin/sleep", marker])
        let result = try kernel.ctl(["terminate", "term/parent"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("term/parent terminated: stopped"))
        #expect(hostPids(commandLine: ["/bin/sleep", marker]).isEmpty)
        let events = try kernel.eventList()
        #expect(events.contains { $0.kind == "agent.escalated" || $0.message.contains("signal 9") })
        // Kept (permanent), not restarted; a manual restart starts it again.
        #expect(try kernel.treeNodes("term")["term/parent"]?["state"] as? String == "stopped")
        #expect(try kernel.ctl(["restart", "term/parent"]).status == 0)
        _ = try waitForHostPid(["/bin/sleep", marker])
        let again = try kernel.ctl(["restart", "term/parent"])
        #expect(again.status == 1)
        #expect(again.stderr.contains("term/parent is running"))
    }

    @Test func aKilledKernelStartsEveryAppliedTreeAgain() throws {
        let kernel = try KernelProcess(label: "svrestore")
        defer { kernel.stop() }
        try kernel.apply("""
            version: 1
            name: durable
            supervisor:
              children:
                - id: a
                  program: /bin/sleep
                  args: ["301"]
                - id: b
                  program: /bin/sleep
                  args: ["302"]
            """)
        let before = try kernel.treeNodes("durable")
        kernel.kill9()
        #expect(eventually { hostPids(commandLine: ["/bin/sleep", "301"]).isEmpty })
        try kernel.start()
        #expect(eventually {
            let nodes = (try? kernel.treeNodes("durable")) ?? [:]
            return nodes["durable/a"]?["state"] as? String == "running" && nodes["durable/b"]?["state"] as? String == "running"
        })
        #expect(try kernel.treeNodes("durable")["durable/a"]?["pid"] as? Int != before["durable/a"]?["pid"] as? Int)
        let restored = try kernel.eventList().filter { $0.kind == "policy.restored" }
        #expect(restored.count == 1)
        #expect(restored.first?.message.contains("unclean stop") == true)
    }

    @Test func aTreeThatCannotStartLeavesNothingRunning() throws {
        let kernel = try KernelProcess(label: "svboot")
        defer { kernel.stop() }
        let file = try kernel.writePolicy("""
            version: 1
            name: broken
            supervisor:
              children:
                - id: first
                  program: /bin/sleep
                  args: ["303"]
                - id: second
                  program: /bin/sh
                  args: [-c, 'exit 7']
                - id: third
                  program: /bin/sleep
                  args: ["304"]
            """)
        let result = try kernel.ctl(["apply", file])
        #expect(result.status == 1)
        #expect(result.stderr.contains("failed_to_start_child second"), "\(result.stderr)")
        #expect(result.stderr.contains("exit 7"), "\(result.stderr)")
        #expect(try #require(try kernel.json(["ps"]) as? [[String: Any]]).isEmpty)
        #expect(hostPids(commandLine: ["/bin/sleep", "303"]).isEmpty)
        #expect(try #require(try kernel.json(["policy", "ls"]) as? [[String: Any]]).isEmpty)
        #expect(!(try kernel.eventList().contains { $0.path == "broken/third" }))
    }

    @Test func badPoliciesAndCallsAreClearErrors() throws {
        let kernel = try KernelProcess(label: "svbad")
        defer { kernel.stop() }
        let bad = try kernel.writePolicy("""
            version: 1
            name: bad
            supervisor:
              stratgy: one_for_all
              children:
                - id: a
                  program: /bin/sleep
                  restart: permanent
                  significant: true
            """)
        let invalid = try kernel.ctl(["apply", bad])
        #expect(invalid.status == 1)
        #expect(invalid.stderr.contains("\(bad):4:3: supervisor.stratgy: unknown key"), "\(invalid.stderr)")
        #expect(invalid.stderr.contains("did you mean 'strategy'"))
        #expect(invalid.stderr.contains("significant"))
        let missing = try kernel.ctl(["delete", "nothing"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no policy 'nothing' is applied"))
        try kernel.apply("""
            version: 1
            name: same
            supervisor:
              children:
                - id: a
                  program: /bin/sleep
                  args: ["305"]
            """)
        let other = try kernel.writePolicy("""
            version: 1
            name: same
            supervisor:
              children:
                - id: b
                  program: /bin/sleep
                  args: ["306"]
            """, name: "other.yaml")
        let clash = try kernel.ctl(["apply", other])
        #expect(clash.status == 1)
        #expect(clash.stderr.contains("policy 'same' is already applied from"))
        #expect(try kernel.ctl(["restart", "same/nope"]).stderr.contains("same/nope: no such child"))
        #expect(try kernel.ctl(["restart", "nopath"]).stderr.contains("invalid child path"))
    }

    @Test func reApplyingChangesOnlyWhatChanged() throws {
        let kernel = try KernelProcess(label: "svreapply")
        defer { kernel.stop() }
        func policy(_ children: [(String, String)]) -> String {
            "version: 1\nname: edit\nsupervisor:\n  children:\n" + children.map { id, seconds in
                "    - id: \(id)\n      program: /bin/sleep\n      args: [\"\(seconds)\"]\n"
            }.joined()
        }
        let file = try kernel.writePolicy(policy([("a", "311"), ("b", "312"), ("c", "313")]), name: "edit.yaml")
        #expect(try kernel.ctl(["apply", file]).status == 0)
        let before = try kernel.treeNodes("edit")
        #expect(try kernel.ctl(["apply", file]).stdout.contains("policy edit is unchanged"))
        try policy([("a", "311"), ("d", "314"), ("b", "315")]).write(toFile: file, atomically: true, encoding: .utf8)
        let dry = try kernel.json(["apply", "--dry-run", file]) as? [String: Any]
        #expect(dry?["restarted"] as? [String] == ["b"])
        #expect(try kernel.treeNodes("edit")["edit/b"]?["pid"] as? Int == before["edit/b"]?["pid"] as? Int)
        let result = try #require(try kernel.json(["apply", file]) as? [String: Any])
        #expect(result["restarted"] as? [String] == ["b"])
        #expect(result["started"] as? [String] == ["d"])
        #expect(result["stopped"] as? [String] == ["c"])
        let after = try kernel.treeNodes("edit")
        #expect(after["edit/a"]?["pid"] as? Int == before["edit/a"]?["pid"] as? Int)
        #expect(after["edit/b"]?["pid"] as? Int != before["edit/b"]?["pid"] as? Int)
        #expect(after["edit/c"] == nil)
        #expect(after["edit/d"]?["state"] as? String == "running")
        #expect(hostPids(commandLine: ["/bin/sleep", "313"]).isEmpty)
        _ = try waitForHostPid(["/bin/sleep", "315"])
        let order = try #require(try kernel.json(["tree", "edit"]) as? [[String: Any]]).first?["children"] as? [[String: Any]]
        #expect(order?.compactMap { $0["id"] as? String } == ["a", "d", "b"])
    }

    @Test func aSignificantChildEndingShutsTheTreeDown() throws {
        let kernel = try KernelProcess(label: "svsig")
        defer { kernel.stop() }
        try kernel.apply("""
            version: 1
            name: job
            supervisor:
              auto_shutdown: any_significant
              children:
                - id: helper
                  program: /bin/sleep
                  args: ["316"]
                - id: main
                  program: /bin/sh
                  args: [-c, 'sleep 0.3; exit 0']
                  restart: transient
                  significant: true
            """)
        #expect(eventually {
            let list = (try? kernel.json(["policy", "ls"]) as? [[String: Any]]) ?? []
            return list.first?["state"] as? String == "stopped"
        })
        let list = try #require(try kernel.json(["policy", "ls"]) as? [[String: Any]])
        #expect((list.first?["ended_reason"] as? String)?.hasPrefix("auto_shutdown") == true)
        #expect(try kernel.eventList().contains { $0.kind == "supervision.auto-shutdown" && $0.path == "job" })
        #expect(hostPids(commandLine: ["/bin/sleep", "316"]).isEmpty)
    }

    @Test func aCrashLoopWithBackoffKeepsTheKernelNearIdle() throws {
        let kernel = try KernelProcess(label: "svloop")
        defer { kernel.stop() }
        try kernel.apply("""
            version: 1
            name: loop
            supervisor:
              intensity: 1000
              period: 60s
              children:
                - id: crasher
                  program: /bin/sh
                  args: [-c, 'sleep 0.05; exit 1']
                  backoff: {initial: 200ms, max: 800ms, steps: 2}
            """)
        func cpuTicks() -> Int {
            let stat = (try? String(contentsOfFile: "/proc/\(kernel.pid)/stat", encoding: .utf8)) ?? ""
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            // utime and stime: fields 14 and 15 of stat, 12 and 13 after the ")".
            return fields.count > 13 ? (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) : 0
        }
        Thread.sleep(forTimeInterval: 1)
        let before = cpuTicks()
        Thread.sleep(forTimeInterval: 4)
        let used = Double(cpuTicks() - before) / Double(sysconf(Int32(_SC_CLK_TCK)))
        let restarts = try kernel.eventList().filter { $0.kind == "supervision.restarting" && $0.path == "loop/crasher" }
        #expect(restarts.count >= 4, "the crasher was not restarted: \(restarts.count)")
        #expect(restarts.contains { $0.message.contains("in 800 ms") })
        // Four seconds of a crash loop: agentd itself used well under a tenth of a CPU.
        #expect(used < 0.4, "agentd used \(used) s of CPU in 4 s")
    }

    @Test func aDynamicPoolStartsChildrenWithTheirArgumentsUpToItsMaximum() throws {
        let kernel = try KernelProcess(label: "svpool")
        defer { kernel.stop() }
        try kernel.apply("""
            version: 1
            name: pool
            supervisor:
              children:
                - id: workers
                  supervisor:
                    strategy: dynamic
                    max_children: 2
                    template:
                      id: w
                      program: /bin/sleep
            """)
        let first = try kernel.ctl(["spawn", "pool/workers", "--arg", "307"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try kernel.ctl(["spawn", "pool/workers", "--arg", "308"]).status == 0)
        let full = try kernel.ctl(["spawn", "pool/workers", "--arg", "309"])
        #expect(full.status == 1)
        #expect(full.stderr.contains("max_children"))
        let pid = try waitForHostPid(["/bin/sleep", "307"])
        let monitor = try #require(try kernel.treeNodes("pool")["pool/workers/w-1"]?["pid"] as? Int)
        kill(Int32(monitor), SIGKILL)
        #expect(eventually { hostPids(commandLine: ["/bin/sleep", "307"]).contains { $0 != pid } })
        #expect(try kernel.treeNodes("pool")["pool/workers/w-1"]?["extra_args"] as? [String] == ["307"])
        #expect(try kernel.ctl(["restart", "pool/workers/w-1"]).stderr.contains("dynamic supervisor"))
    }

    @Test func readinessAndCheckpointsSurviveARestart() throws {
        let kernel = try KernelProcess(label: "svready")
        defer { kernel.stop() }
        let readOnly = stride(from: 1, to: Binaries.demoAgentSandboxFlags.count, by: 2)
            .map { "\"\(Binaries.demoAgentSandboxFlags[$0])\"" }.joined(separator: ", ")
        try kernel.apply("""
            version: 1
            name: ready
            supervisor:
              children:
                - id: worker
                  program: \(Binaries.demoAgent)
                  args: ["100000", "0.05"]
                  readiness: notify
                  start_timeout: 10s
                  sandbox: {ro: [\(readOnly)]}
            """)
        #expect(eventually {
            let list = (try? kernel.json(["checkpoint", "ls"]) as? [[String: Any]]) ?? []
            return list.first?["path"] as? String == "ready/worker"
        })
        let monitor = try #require(try kernel.treeNodes("ready")["ready/worker"]?["pid"] as? Int)
        kill(Int32(monitor), SIGKILL)
        #expect(eventually {
            let node = (try? kernel.treeNodes("ready")["ready/worker"]) ?? [:]
            return node["state"] as? String == "running" && node["pid"] as? Int != monitor
        })
        let agent = try #require(try kernel.treeNodes("ready")["ready/worker"]?["agent"] as? String)
        #expect(eventually { ((try? kernel.ctl(["logs", agent]).stdout) ?? "").contains("resumed at tick") })
        let shown = try kernel.ctl(["checkpoint", "show", "ready/worker"])
        #expect(Int(shown.stdout) ?? 0 > 0, "\(shown.stdout)")

        let file = try kernel.writePolicy("""
            version: 1
            name: silent
            supervisor:
              children:
                - id: mute
                  program: /bin/sleep
                  args: ["310"]
                  readiness: notify
                  start_timeout: 300ms
            """)
        let result = try kernel.ctl(["apply", file])
        #expect(result.status == 1)
        #expect(result.stderr.contains("no readiness within 300 ms"), "\(result.stderr)")
        #expect(eventually { hostPids(commandLine: ["/bin/sleep", "310"]).isEmpty })
    }
}

/// One event as the supervision tests read it.
/// Restarts through a replacement armed while the child ran.
@Suite("Armed restarts", .serialized)
struct ArmedRestartTests {
    /// Monitors of this kernel's armed sandboxes: held helpers whose agent
    /// process is under its seccomp filter already, waiting for its program.
    func armedMonitors(_ kernel: KernelProcess) -> [Int32] {
        let root = kernel.stateDirectory + "/sandbox-root"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.compactMap { pid -> Int32? in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let arguments = String(decoding: data, as: UTF8.self).split(separator: "\0").map(String.init)
            guard arguments.contains("--request-fd"), arguments.contains(root),
                  let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  status.contains("Seccomp:\t2") else { return nil }
            // The agent-to-be (pid 2 inside) -> init -> the monitor.
            return parent(of: parent(of: pid))
        }
    }

    func parent(of pid: Int32) -> Int32 {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("PPid:") } ?? ""
        return Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces)) ?? -1
    }

    func children(of pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0) }
    }

    /// Kills a running agent's own process (monitor -> init -> the agent)
    /// and returns the record of the agent that replaced it.
    func killAndAwaitReplacement(_ kernel: KernelProcess, _ name: String) throws -> [String: Any] {
        let running = try kernel.agent(name)
        let id = try #require(running["id"] as? String)
        let monitor = try #require(running["pid"] as? Int)
        let agentProcess = try #require(children(of: Int32(monitor)).flatMap { children(of: $0) }.first)
        kill(agentProcess, SIGKILL)
        #expect(eventually { (try? kernel.agent(name)["id"] as? String).flatMap { $0 != id } ?? false })
        return try kernel.agent(name)
    }

    /// A child restarted once gets its next replacement built while it runs
    /// (as the agent, under its filter: everything up to the exec); the
    /// restart only execs in it. It is the same sandbox as any start's, the
    /// end comes before the restart in the log, and nothing armed outlives
    /// the tree.
    @Test func aRestartExecsInASandboxArmedWhileTheChildRan() throws {
        let kernel = try KernelProcess(label: "svarmed")
        defer { kernel.stop() }
        let shared = try temporaryDirectory("svarmed-ro")
        chmod(shared, 0o755)
        try "from the host\n".write(toFile: shared + "/file", atomically: true, encoding: .utf8)
        chmod(shared + "/file", 0o644)
        try """
            echo "incarnation=$AGENTOS_INCARNATION"
            echo "id=$AGENTOS_AGENT_ID"
            echo "uid=$(id -u)"
            echo "host=$(hostname)"
            echo "pwd=$(pwd)"
            grep '^Seccomp:' /proc/self/status
            grep '^CapEff:' /proc/self/status
            cat \(shared)/file
            (echo x > \(shared)/file) 2>/dev/null || echo ro-denied
            touch ./own && echo work-dir-writable
            exec sleep 300
            """.write(toFile: shared + "/probe.sh", atomically: true, encoding: .utf8)
        chmod(shared + "/probe.sh", 0o644)
        try kernel.apply("""
            version: 1
            name: armed
            supervisor:
              intensity: 10
              period: 60s
              children:
                - id: probe
                  program: /bin/sh
                  args: ["\(shared)/probe.sh"]
                  sandbox: {ro: ["\(shared)"]}
            """)
        // A child that never ended has none; its first restart arms one.
        let first = try kernel.agent("armed.probe")
        #expect(eventually { (try? kernel.ctl(["logs", first["id"] as? String ?? "?"]).lines.contains("work-dir-writable")) ?? false })
        #expect(armedMonitors(kernel).isEmpty, "armed before any restart: \(armedMonitors(kernel))")
        let restarted = try killAndAwaitReplacement(kernel, "armed.probe")
        let firstID = try #require(restarted["id"] as? String)
        #expect(eventually { armedMonitors(kernel).count == 1 }, "one replacement armed for the restarted child")
        let armed = try #require(armedMonitors(kernel).first)
        #expect(eventually { (try? kernel.ctl(["logs", firstID]).lines.contains("work-dir-writable")) ?? false })
        let firstFacts = try kernel.ctl(["logs", firstID]).lines

        let second = try killAndAwaitReplacement(kernel, "armed.probe")
        let secondID = try #require(second["id"] as? String)
        #expect(second["pid"] as? Int == Int(armed), "the restart used the armed sandbox (monitor \(armed))")
        #expect(eventually { (try? kernel.ctl(["logs", secondID]).lines.contains("work-dir-writable")) ?? false })
        let facts = try kernel.ctl(["logs", secondID]).lines
        #expect(firstFacts.contains("incarnation=2"), "\(firstFacts)")
        let expected = ["incarnation=3", "id=\(secondID)", "host=armed.probe", "pwd=\(second["work_dir"] as? String ?? "?")",
                        "Seccomp:\t2", "CapEff:\t0000000000000000", "from the host", "ro-denied", "work-dir-writable"]
        for fact in expected { #expect(facts.contains(fact), "\(fact) in \(facts)") }
        let firstUID = firstFacts.first { $0.hasPrefix("uid=") }
        let secondUID = facts.first { $0.hasPrefix("uid=") }
        #expect(firstUID != nil && secondUID != nil && firstUID != secondUID && secondUID != "uid=0",
                "its own uid: \(firstUID ?? "-") then \(secondUID ?? "-")")

        // The end is in the log before what the supervisor did about it, and
        // that before the replacement's start.
        let events = try kernel.eventList()
        let exited = events.lastIndex { $0.kind == "agent.exited" && $0.message.hasPrefix("armed.probe ") }
        let restarting = events.lastIndex { $0.kind == "supervision.restarting" && $0.path == "armed/probe" }
        let spawned = events.lastIndex { $0.kind == "agent.spawned" && $0.message.hasPrefix("armed.probe ") }
        #expect(exited != nil && restarting != nil && spawned != nil)
        if let exited, let restarting, let spawned {
            #expect(exited < restarting && restarting < spawned, "order: \(events.map(\.kind))")
        }

        // The replacement gets one of its own; deleting the tree ends it.
        #expect(eventually { armedMonitors(kernel).count == 1 && armedMonitors(kernel).first != armed })
        try kernel.ctl(["delete", "armed"])
        // At once, not after the second an ended agent's armed replacement waits.
        #expect(eventually(timeout: 0.8) { armedMonitors(kernel).isEmpty }, "armed sandboxes left: \(armedMonitors(kernel))")
    }
}

struct LoggedEvent {
    var seq: Int
    var kind: String
    var message: String
    var path: String
}

extension KernelProcess {
    func writePolicy(_ text: String, name: String = "policy.yaml") throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Applies a policy and requires it to start.
    func apply(_ text: String) throws {
        let file = try writePolicy(text, name: "applied-\(UInt32.random(in: 0...UInt32.max)).yaml")
        let result = try ctl(["apply", file])
        guard result.status == 0 else { throw HarnessError("apply failed: \(result.stderr)\n\(kernelLog.suffix(2_000))") }
    }

    /// Every node of a policy's live tree by path.
    func treeNodes(_ policy: String) throws -> [String: [String: Any]] {
        let trees = try #require(try json(["tree", policy]) as? [[String: Any]])
        var nodes: [String: [String: Any]] = [:]
        func walk(_ node: [String: Any]) {
            if let path = node["path"] as? String { nodes[path] = node }
            for child in node["children"] as? [[String: Any]] ?? [] { walk(child) }
        }
        trees.forEach(walk)
        return nodes
    }

    func eventList() throws -> [LoggedEvent] {
        let result = try ctl(["events", "--json", "--limit", "10000"])
        guard result.status == 0 else { throw HarnessError("events failed: \(result.stderr)") }
        return result.lines.compactMap { line in
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else { return nil }
            let data = object["data"] as? [String: String] ?? [:]
            return LoggedEvent(seq: object["seq"] as? Int ?? 0, kind: object["kind"] as? String ?? "",
                               message: object["message"] as? String ?? "", path: data["path"] ?? "")
        }
    }
}
