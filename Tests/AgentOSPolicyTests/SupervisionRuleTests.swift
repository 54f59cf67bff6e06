import Testing
@testable import AgentOSPolicy

/// Conformance scenario 25: every invalid combination is rejected, at the
/// position of the field at fault (the rules themselves live in
/// SupervisorSpec.problems(at:); these tests hold the mapping back to the YAML).
@Suite("Policy problems: supervision rules (scenario 25)")
struct SupervisionRuleTests {
    @Test func significantWithPermanent() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              auto_shutdown: any_significant
              children:
                - id: a
                  program: /bin/sh
                  significant: true
            """) == [
                "p.yaml:8:20: supervisor.children[0].significant: a permanent child cannot be significant (use transient or temporary)",
            ])
    }

    @Test func significantWithAutoShutdownNever() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  restart: transient
                  significant: true
            """) == [
                "p.yaml:8:20: supervisor.children[0].significant: significant needs auto_shutdown any_significant or all_significant on its supervisor",
            ])
    }

    @Test func autoShutdownOnADynamicSupervisor() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              strategy: dynamic
              auto_shutdown: any_significant
              template: {id: w, program: /bin/sh}
            """) == [
                "p.yaml:5:18: supervisor.auto_shutdown: a dynamic supervisor cannot shut down automatically",
            ])
    }

    @Test func significantTemplateOfADynamicSupervisor() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              strategy: dynamic
              template:
                id: w
                program: /bin/sh
                restart: temporary
                significant: true
            """) == [
                "p.yaml:9:18: supervisor.template.significant: children of a dynamic supervisor cannot be significant",
            ])
    }

    @Test func duplicateIDsPointAtEveryRepeat() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                - id: b
                  program: /bin/sh
                - id: a
                  program: /bin/sh
                - id: a
                  program: /bin/sh
            """) == [
                "p.yaml:9:11: supervisor.children[2].id: duplicate child id 'a'",
                "p.yaml:11:11: supervisor.children[3].id: duplicate child id 'a'",
            ])
    }

    @Test func duplicateIDsInANestedSupervisor() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: team
                  supervisor:
                    children:
                      - {id: x, program: sh}
                      - {id: x, program: sh}
            """) == ["p.yaml:9:18: supervisor.children[0].supervisor.children[1].id: duplicate child id 'x'"])
    }

    @Test func negativeIntensity() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              intensity: -1
              children: []
            """) == ["p.yaml:4:14: supervisor.intensity: must be 0 or more, not -1"])
    }

    @Test func periodZeroOrNegative() {
        for period in ["0s", "0", "-2s"] {
            #expect(problems("""
                version: 1
                name: t
                supervisor:
                  period: \(period)
                  children: []
                """) == ["p.yaml:4:11: supervisor.period: must be more than 0"])
        }
    }

    @Test func negativeShutdown() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  shutdown: -1s
            """) == ["p.yaml:7:17: supervisor.children[0].shutdown: must not be negative"])
    }

    @Test func badShutdownWordSuggestsOne() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  shutdown: brutal-kill
            """) == [
                "p.yaml:7:17: supervisor.children[0].shutdown: expected brutal_kill, infinity or a duration like 5s, found 'brutal-kill' (did you mean 'brutal_kill'?)",
            ])
    }

    @Test func negativeBackoff() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: a
                  program: /bin/sh
                  backoff: {initial: -1s}
            """) == ["p.yaml:7:26: supervisor.children[0].backoff.initial: must not be negative"])
    }

    @Test func dynamicSupervisorWithoutATemplate() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              strategy: dynamic
              max_children: 2
            """) == [
                "p.yaml:4:3: supervisor.template: a dynamic supervisor has exactly one template and no children",
            ])
    }

    @Test func dynamicSupervisorWithChildren() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - id: pool
                  supervisor:
                    strategy: dynamic
                    max_children: 0
                    template: {id: w, program: sh}
                    children:
                      - {id: x, program: sh}
            """) == [
                "p.yaml:8:23: supervisor.children[0].supervisor.max_children: must be 1 or more",
                "p.yaml:10:9: supervisor.children[0].supervisor.children: a dynamic supervisor has exactly one template and no children",
            ])
    }

    @Test func templateAndMaxChildrenOnlyForDynamic() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              strategy: one_for_all
              max_children: 3
              template: {id: w, program: sh}
            """) == [
                "p.yaml:5:17: supervisor.max_children: only for a dynamic supervisor",
                "p.yaml:6:3: supervisor.template: only a dynamic supervisor has a template (strategy: dynamic)",
            ])
    }

    @Test func aFieldThatFailedToReadAddsNoRuleNoise() {
        // restart is misspelt, so significant's rule would judge the default
        // (permanent): only the misspelling is reported.
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              auto_shutdown: any_significant
              children:
                - id: a
                  program: /bin/sh
                  restart: transiant
                  significant: true
            """) == [
                "p.yaml:8:16: supervisor.children[0].restart: unknown value 'transiant': use one of permanent, transient, temporary (did you mean 'transient'?)",
            ])
    }
}

extension SupervisionRuleTests {
    @Test func invalidIDsDoNotShiftDuplicatePositions() {
        #expect(problems("""
            version: 1
            name: t
            supervisor:
              children:
                - {id: x, program: sh}
                - {id: a/b, program: sh}
                - {id: a/b, program: sh}
                - {id: x, program: sh}
            """) == [
                "p.yaml:6:12: supervisor.children[1].id: invalid id 'a/b': use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
                "p.yaml:7:12: supervisor.children[2].id: invalid id 'a/b': use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
                "p.yaml:8:12: supervisor.children[3].id: duplicate child id 'x'",
            ])
    }
}
