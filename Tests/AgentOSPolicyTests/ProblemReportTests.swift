import Testing
@testable import AgentOSPolicy

/// Field and type errors: each at its exact line and column, named by its field path.
@Suite("Policy problems: keys, types, values")
struct ProblemReportTests {
    @Test func unknownKeySuggestsTheNearestKnownOne() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              stratgey: one_for_all
              children:
                - id: a
                  program: /bin/sh
            """) == ["p.yaml:4:3: supervisor.stratgey: unknown key 'stratgey' (did you mean 'strategy'?)"])
    }

    @Test func unknownKeyThatBelongsElsewhereSaysWhere() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  memory: 256M
            """) == ["p.yaml:7:7: supervisor.children[0].memory: unknown key 'memory' ('memory' belongs in sandbox:)"])
    }

    @Test func wrongTypeNamesWhatWasExpectedAndFound() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              intensity: [1]
              children: {id: a}
            """) == [
                "p.yaml:4:14: supervisor.intensity: expected a whole number, found a list",
                "p.yaml:5:13: supervisor.children: expected a list of child specs, found a mapping",
            ])
    }

    @Test func badDurationAndSize() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              period: 5 seconds
              children:
                - id: a
                  program: /bin/sh
                  sandbox: {memory: lots}
            """) == [
                "p.yaml:4:11: supervisor.period: invalid duration '5 seconds': use e.g. 500ms, 5s, 2m, 1h or 7d",
                "p.yaml:8:25: supervisor.children[0].sandbox.memory: invalid size 'lots': use e.g. 4096, 64K, 16M or 1G",
            ])
    }

    @Test func badEnumValueSuggestsTheNearestOne() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              strategy: one_for_everyone
              children:
                - id: a
                  program: /bin/sh
                  restart: permanant
            """) == [
                "p.yaml:4:13: supervisor.strategy: unknown value 'one_for_everyone': use one of one_for_one, one_for_all, rest_for_one, dynamic",
                "p.yaml:8:16: supervisor.children[0].restart: unknown value 'permanant': use one of permanent, transient, temporary (did you mean 'permanent'?)",
            ])
    }

    @Test func versionMustBePresentAndOne() {
        #expect(problems("""
            name: t
            supervisor:
              children: []
            """) == ["p.yaml:1:1: version: missing: add 'version: 1' at the top"])
        #expect(problems("""
            version: 2
            name: t
            supervisor: {}
            """) == ["p.yaml:1:10: version: unsupported version 2: this release reads version 1"])
    }

    @Test func policyNameFollowsItsRule() {
        #expect(problems("""
            version: 1
            name: My Team
            supervisor: {}
            """) == [
                "p.yaml:2:7: name: invalid policy name 'My Team': use 1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit",
            ])
    }

    @Test func missingProgramBareOrAbsolute() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /usr/bin/no-such-agent
                - id: b
                  program: no-such-agent
                - id: c
                  program: ./agent
            """) == [
                "p.yaml:6:16: supervisor.children[0].program: program '/usr/bin/no-such-agent' does not exist or is not an executable file",
                "p.yaml:8:16: supervisor.children[1].program: program 'no-such-agent' not found in PATH (/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin)",
                "p.yaml:10:16: supervisor.children[2].program: './agent' is relative: give an absolute path or a name found in PATH",
            ])
    }

    @Test func childNeedsProgramOrSupervisorNotBoth() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  args: [x]
                - id: b
                  program: /bin/sh
                  supervisor: {children: []}
            """) == [
                "p.yaml:5:7: supervisor.children[0]: a child needs program: (a worker) or supervisor: (a nested supervisor)",
                "p.yaml:9:7: supervisor.children[1]: a child has program: (a worker) or supervisor: (a nested supervisor), not both",
            ])
    }

    @Test func workerKeysOnASupervisorChildAndBack() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: sub
                  sandbox: {memory: 1G}
                  supervisor: {children: []}
                - id: w
                  program: sh
                  restart_on_escalation: true
            """) == [
                "p.yaml:6:7: supervisor.children[0].sandbox: 'sandbox' is only for workers (children with program:)",
                "p.yaml:10:7: supervisor.children[1].restart_on_escalation: 'restart_on_escalation' is only for nested supervisors (children with supervisor:)",
            ])
    }

    @Test func childIDsFollowTheAgentNameRule() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - program: /bin/sh
                - id: a/b
                  program: /bin/sh
            """) == [
                "p.yaml:5:7: supervisor.children[0].id: every child needs an id (unique among its siblings)",
                "p.yaml:6:11: supervisor.children[1].id: invalid id 'a/b': use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
            ])
    }

    @Test func capabilitiesAreCheckedForForm() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  capabilities:
                    - capability://fiel/srv/data/*?action=read
                    - file:///srv/data
                    - capability://shell?timeout=30s
                    - capability://file/srv/data/*?action=read
            """) == [
                "p.yaml:8:11: supervisor.children[0].capabilities[0]: unknown capability kind 'fiel': use one of file, http, shell, agent, memory, tool, model, topic (did you mean 'file'?)",
                "p.yaml:9:11: supervisor.children[0].capabilities[1]: a capability starts with 'capability://', e.g. capability://file/srv/data/**?action=read",
                "p.yaml:10:11: supervisor.children[0].capabilities[2]: no action: add action=execute (shell actions: execute)",
            ])
    }

    @Test func mcpServerNamesFollowTheirRuleAndCannotSendReady() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  mcp_server: has.dot
                - id: b
                  program: /bin/sh
                  mcp_server: time
                  readiness: notify
            """) == [
                "p.yaml:7:19: supervisor.children[0].mcp_server: invalid MCP server name 'has.dot': use 1-63 letters, digits, '_' or '-' (its tools are mcp.NAME.TOOL)",
                "p.yaml:11:18: supervisor.children[1].readiness: an MCP server cannot send ready (it speaks MCP, not the Agent OS protocol): use readiness: none",
            ])
    }

    @Test func sandboxPathsMustBeAbsolute() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  workdir: srv/team
                  sandbox:
                    ro: [/srv/data, data]
                    rw: [/srv/../etc]
            """) == [
                "p.yaml:7:16: supervisor.children[0].workdir: 'srv/team' is relative: give an absolute path",
                "p.yaml:9:25: supervisor.children[0].sandbox.ro[1]: 'data' is relative: give an absolute path",
                "p.yaml:10:14: supervisor.children[0].sandbox.rw[0]: '/srv/../etc' has '..': give a plain absolute path",
            ])
    }

    @Test func nonsenseLimits() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  sandbox:
                    memory: 512K
                    pids: 0
                    cpu: 0
                    timeout: -5s
                    tmp_size: -1M
                - id: b
                  program: /bin/sh
                  sandbox: {memory: -5M, pids: -3, cpu: -1, timeout: 0}
            """) == [
                "p.yaml:8:17: supervisor.children[0].sandbox.memory: must be at least 1M, e.g. 256M",
                "p.yaml:9:15: supervisor.children[0].sandbox.pids: must be at least 1, not 0",
                "p.yaml:10:14: supervisor.children[0].sandbox.cpu: must be more than 0 (a number of CPUs, e.g. 0.5)",
                "p.yaml:11:18: supervisor.children[0].sandbox.timeout: must not be negative",
                "p.yaml:12:19: supervisor.children[0].sandbox.tmp_size: must not be negative, not -1M",
                "p.yaml:15:25: supervisor.children[1].sandbox.memory: must not be negative, not -5M",
                "p.yaml:15:36: supervisor.children[1].sandbox.pids: must be at least 1, not -3",
                "p.yaml:15:45: supervisor.children[1].sandbox.cpu: must be more than 0 (a number of CPUs, e.g. 0.5)",
                "p.yaml:15:58: supervisor.children[1].sandbox.timeout: must be at least 1ms, e.g. 10m",
            ])
    }

    @Test func backoffAndExitCodes() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  backoff: {initial: 1s, max: 100ms, steps: -1}
                  success_exit_codes: [3, 256, x]
                - id: b
                  program: /bin/sh
                  backoff: {max: 1s}
            """) == [
                "p.yaml:7:35: supervisor.children[0].backoff.max: must be at least initial (1000ms)",
                "p.yaml:7:49: supervisor.children[0].backoff.steps: must be 0 or more, not -1",
                "p.yaml:8:31: supervisor.children[0].success_exit_codes[1]: an exit code is 0 to 255, not 256",
                "p.yaml:8:36: supervisor.children[0].success_exit_codes[2]: expected a whole number, found 'x'",
                "p.yaml:11:16: supervisor.children[1].backoff.initial: a back-off needs initial:, the first delay (e.g. 100ms)",
            ])
    }

    @Test func nullIsNotAValue() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  sandbox:
                    memory:
            """) == ["p.yaml:8:16: supervisor.children[0].sandbox.memory: expected a size like 64K, 256M or 1G, found nothing (null)"])
    }

    @Test func everyProblemIsReportedAtOnceInOrder() {
        let found = problems("""
            version: 3
            name: Bad Name
            supervisor:
              intensity: -1
              children:
                - id: a
                  program: /nope
                  restart: sometimes
                - id: a
                  program: /bin/sh
            """)
        // version, name, intensity (a supervision rule), program, restart, the repeated id.
        #expect(found.map { $0.split(separator: ":")[1] } == ["1", "2", "4", "7", "8", "9"])
    }
}

extension ProblemReportTests {
    @Test func keysInTheWrongMappingSayWhereTheyBelong() {
        #expect(problems("""
            version: 1
            name: t
            strategy: one_for_all
            supervisor:
              children:
                - id: sub
                  supervisor:
                    restart: transient
                    children: []
            """) == [
                "p.yaml:3:1: strategy: unknown key 'strategy' ('strategy' belongs in supervisor:)",
                "p.yaml:8:9: supervisor.children[0].supervisor.restart: unknown key 'restart' ('restart' belongs in the child entry that holds this supervisor:)",
            ])
    }
}
