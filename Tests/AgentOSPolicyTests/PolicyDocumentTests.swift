import AgentOSSupervision
import Testing
@testable import AgentOSPolicy

@Suite("Policy documents: specs, launches, defaults")
struct PolicyDocumentTests {
    @Test func defaultsFollowOTPAndAgentctlRun() throws {
        let document = try testParser.parse(text: """
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                - id: sub
                  supervisor: {children: [{id: b, program: sh}]}
            """, file: "p.yaml")
        #expect(document.root == SupervisorSpec(children: [
            ChildSpec(id: "a"),
            ChildSpec(id: "sub", kind: .supervisor(SupervisorSpec(children: [ChildSpec(id: "b")]))),
        ]))
        #expect(document.root.intensity == 3 && document.root.periodMilliseconds == 5_000)
        #expect(document.root.children[0].shutdown == .timeout(milliseconds: 5_000))
        #expect(document.root.children[1].shutdown == .infinity)
        let launch = try #require(document.launch(for: "a"))
        #expect(launch == WorkerLaunch(program: "/bin/sh"))
        #expect(launch.sandbox.network == "none" && launch.sandbox.seccomp == "default")
        #expect(launch.readiness == .none && launch.startTimeoutMilliseconds == 10_000)
        #expect(document.launch(for: ["sub", "b"])?.program == "sh")
        #expect(Set(document.launches.keys) == ["a", "sub/b"])
        #expect(document.name == "t" && document.file == "p.yaml")
        #expect(document.supervisorCount == 2 && document.workerCount == 2)
    }

    @Test func everyFieldReachesTheSpecOrTheLaunch() throws {
        let text = """
            version: 1
            name: full
            supervisor:
              strategy: rest_for_one
              intensity: 0
              period: 250ms
              auto_shutdown: all_significant
              children:
                - id: researcher
                  program: /bin/sh
                  args: [research.py, --depth, 2]
                  env: {LOG_LEVEL: debug, N: 3}
                  workdir: /srv/team
                  sandbox:
                    memory: 256M
                    pids: 64
                    cpu: 0.5
                    timeout: 10m
                    ro: [/srv/data]
                    rw: [/srv/out]
                    tmp_size: 64M
                    net: loopback
                    seccomp: strict
                  capabilities:
                    - capability://file/srv/data/*?action=read
                  restart: transient
                  shutdown: brutal_kill
                  significant: true
                  success_exit_codes: [3]
                  no_restart_exit_codes: [78, 79]
                  readiness: notify
                  start_timeout: 2s
                  backoff: {initial: 100ms, max: 10s, steps: 2}
                - id: workers
                  restart: transient
                  restart_on_escalation: true
                  shutdown: infinity
                  supervisor:
                    strategy: dynamic
                    max_children: 4
                    template:
                      id: worker
                      program: /bin/sh
                      args: [-c, "echo hi"]
            """
        let document = try testParser.parse(text: text, file: "full.yaml")
        #expect(document.source == text)
        let root = document.root
        #expect(root.strategy == .restForOne && root.intensity == 0 && root.periodMilliseconds == 250)
        #expect(root.autoShutdown == .allSignificant)
        let researcher = root.children[0]
        #expect(researcher == ChildSpec(id: "researcher", restart: .transient, shutdown: .brutalKill, significant: true,
                                        successExitCodes: [3], noRestartExitCodes: [78, 79],
                                        backoff: Backoff(initialMilliseconds: 100, maximumMilliseconds: 10_000, steps: 2)))
        let launch = try #require(document.launch(for: "researcher"))
        #expect(launch == WorkerLaunch(
            program: "/bin/sh", args: ["research.py", "--depth", "2"], env: ["LOG_LEVEL": "debug", "N": "3"],
            workdir: "/srv/team",
            limits: .init(memoryBytes: 256 << 20, pids: 64, cpus: 0.5, timeoutMilliseconds: 600_000),
            sandbox: .init(readOnly: ["/srv/data"], readWrite: ["/srv/out"], tmpSizeBytes: 64 << 20,
                           network: "loopback", seccomp: "strict"),
            capabilities: ["capability://file/srv/data/*?action=read"], readiness: .notify,
            startTimeoutMilliseconds: 2_000))
        let workers = root.children[1]
        #expect(workers.restart == .transient && workers.restartOnEscalation && workers.shutdown == .infinity)
        guard case .supervisor(let pool) = workers.kind else {
            Issue.record("workers is not a supervisor")
            return
        }
        #expect(pool.strategy == .dynamic && pool.maxChildren == 4 && pool.children.isEmpty)
        #expect(pool.template?.id == "worker")
        #expect(document.launch(for: "workers/worker")?.args == ["-c", "echo hi"])
        #expect(document.supervisorCount == 2 && document.workerCount == 2)
    }

    @Test func backoffDefaultsToItsInitialDelayAndFiveSteps() throws {
        let document = try testParser.parse(text: minimalPolicy + "\n      backoff: {initial: 1s}", file: "p.yaml")
        #expect(document.root.children[0].backoff == Backoff(initialMilliseconds: 1_000, maximumMilliseconds: 1_000, steps: 5))
    }

    @Test func errorDescriptionListsEveryProblem() {
        do {
            _ = try testParser.parse(text: "version: 1\nname: t\nsupervisor: {children: [{id: a}], strategy: x}",
                                     file: "p.yaml")
            Issue.record("parsed a bad policy")
        } catch {
            #expect(error.problems.count == 2)
            #expect(error.description == error.problems.map(\.description).joined(separator: "\n"))
            #expect(error.problems[0] == PolicyProblem(file: "p.yaml", line: 3, column: 25, field: "supervisor.children[0]",
                                                       message: "a child needs program: (a worker) or supervisor: (a nested supervisor)"))
        }
    }

    @Test func readsFilesAndReportsUnreadableOnes() throws {
        let team = policiesDirectory.appendingPathComponent("examples/team.yaml").path
        #expect(try testParser.parse(contentsOf: team).name == "team")
        #expect(throws: PolicyError(problems: [PolicyProblem(file: "/nonexistent/p.yaml", line: 0, column: 0, field: "",
                                                             message: "no such file")])) {
            try testParser.parse(contentsOf: "/nonexistent/p.yaml")
        }
        #expect(PolicyProblem(file: "x.yaml", line: 0, column: 0, field: "", message: "no such file").description
            == "x.yaml: no such file")
    }
}
