// Where each spec of the tree came from in the YAML, so that the problems
// SupervisorSpec.problems(at:) finds (scenario 25's rules, written once, in
// AgentOSSupervision) are reported at the line and column of the field at fault.

import AgentOSSupervision
import Yams

struct SpecSources {
    struct Supervisor {
        let mapping: MappingReader
        let strategy: Strategy
        /// Children whose id repeats an earlier sibling's, in order: the
        /// n-th duplicate-id problem of this supervisor is about the n-th of them.
        var repeatedIDs: [(mark: Mark?, field: FieldPath)]
        /// A flag failed to read, so a default stands in for it and rules
        /// about it would only add noise.
        let tainted: Bool
    }

    struct Child {
        let mapping: MappingReader
        let tainted: Bool
    }

    /// By path of child ids; the root supervisor's path is empty. With
    /// duplicate ids (an error anyway) the first one wins.
    private(set) var supervisors: [[String]: Supervisor] = [:]
    private(set) var children: [[String]: Child] = [:]

    mutating func add(supervisor: Supervisor, at path: [String]) {
        if supervisors[path] == nil { supervisors[path] = supervisor }
    }

    mutating func add(child: Child, at path: [String]) {
        if children[path] == nil { children[path] = child }
    }

    private static let supervisorFields: Set<String> = ["intensity", "period", "auto_shutdown", "template", "max_children"]

    /// Reports `problem` at its field's position in the YAML.
    mutating func report(_ problem: SpecProblem, to log: ProblemLog) {
        if problem.field == "id", var supervisor = supervisors[problem.path], !supervisor.repeatedIDs.isEmpty {
            let repeated = supervisor.repeatedIDs.removeFirst()
            supervisors[problem.path] = supervisor
            log.report(repeated.mark, repeated.field, problem.message)
            return
        }
        if Self.supervisorFields.contains(problem.field), let supervisor = supervisors[problem.path] {
            guard !supervisor.tainted else { return }
            let (mark, field) = Self.locate(problem.field, in: supervisor)
            log.report(mark, field, problem.message)
            return
        }
        if let child = children[problem.path] {
            guard !child.tainted else { return }
            if problem.field == "significant", supervisors[Array(problem.path.dropLast())]?.tainted == true { return }
            let mapping = child.mapping
            var key = problem.field
            var mark = mapping.markOf(key)
            if key == "backoff", let backoff = mapping.value("backoff"), case .mapping(let fields) = backoff,
               let initial = fields["initial"] {
                key = "backoff.initial"
                mark = initial.mark
            }
            let field = mapping.path.key(key)
            // The id rule here is a looser form of Names.isChildID, already reported.
            if problem.field == "id", log.has(mark, field) { return }
            log.report(mark, field, problem.message)
            return
        }
        // Not expected: every spec comes from a mapping. Still say it.
        log.report(nil, FieldPath.top.key("supervisor"), problem.description)
    }

    /// A supervisor flag's value; for `template`, what makes the count wrong.
    private static func locate(_ field: String, in supervisor: Supervisor) -> (Mark?, FieldPath) {
        let mapping = supervisor.mapping
        guard field == "template" else { return (mapping.markOf(field), mapping.path.key(field)) }
        if supervisor.strategy == .dynamic {
            if mapping.has("children") { return (mapping.keyMark("children"), mapping.path.key("children")) }
            return (mapping.mark, mapping.path.key("template"))
        }
        return (mapping.keyMark("template") ?? mapping.mark, mapping.path.key("template"))
    }
}
