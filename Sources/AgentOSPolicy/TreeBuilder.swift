// Turns the `supervisor:` part of a policy into a SupervisorSpec, the
// worker launches and a record of where each spec came from. It reads on
// past every problem (a child with a broken field is still checked
// field by field) so one pass reports everything.

import AgentOSModels
import AgentOSProtocol
import AgentOSSupervision
import Yams

final class TreeBuilder {
    let values: ValueReader
    let programExists: PolicyParser.ProgramCheck
    private(set) var launches: [String: WorkerLaunch] = [:]
    /// Model budgets by path ("" the root; a dynamic template's as "SUP/*").
    var budgets: [String: ModelBudget] = [:]
    private(set) var sources = SpecSources()
    private var childCount = 0

    /// Deeper trees or more children than any sensible policy: a bound on
    /// the work an alias-laden file can cause.
    static let maximumDepth = 16
    static let maximumChildren = 10_000

    init(values: ValueReader, programExists: @escaping PolicyParser.ProgramCheck) {
        self.values = values
        self.programExists = programExists
    }

    var log: ProblemLog { values.log }

    private static let supervisorHintsForChildKeys: [String: String] = {
        var hints: [String: String] = [:]
        for key in PolicyKeys.child where !PolicyKeys.supervisor.contains(key) {
            hints[key] = "the child entry that holds this supervisor:"
        }
        return hints
    }()

    private static let childHints: [String: String] = {
        var hints: [String: String] = [:]
        for key in PolicyKeys.sandbox where !PolicyKeys.child.contains(key) { hints[key] = "sandbox:" }
        for key in PolicyKeys.supervisor where !PolicyKeys.child.contains(key) { hints[key] = "supervisor:" }
        return hints
    }()

    func supervisorReader(_ node: Node, _ path: FieldPath, nested: Bool) -> MappingReader? {
        MappingReader(node, path, values: values, expected: "a supervisor (a mapping with strategy:, children: ...)",
                      allowed: PolicyKeys.supervisor, elsewhere: nested ? Self.supervisorHintsForChildKeys : [:])
    }

    // MARK: Supervisors

    func supervisor(_ reader: MappingReader, at path: [String], depth: Int) -> SupervisorSpec {
        let before = log.count
        let strategy = reader.choice("strategy", Strategy.self) ?? .oneForOne
        let intensity = reader.integer("intensity") ?? SupervisorSpec.defaultIntensity
        let period = reader.duration("period") ?? SupervisorSpec.defaultPeriodMilliseconds
        let autoShutdown = reader.choice("auto_shutdown", AutoShutdown.self) ?? .never
        let maxChildren = reader.integer("max_children")
        let childNodes = reader.list("children", of: "child specs") ?? []
        let templateReader = reader.mapping("template", expected: "one child spec (a mapping)", allowed: PolicyKeys.child,
                                            elsewhere: Self.childHints)
        let tainted = log.count > before

        var children: [ChildSpec] = []
        var repeatedIDs: [(mark: Mark?, field: FieldPath)] = []
        var seen: Set<String> = []
        for (index, node) in childNodes.enumerated() {
            let childPath = reader.path.key("children").index(index)
            guard let childReader = MappingReader(node, childPath, values: values,
                                                  expected: "a child spec (a mapping with id: and program: or supervisor:)",
                                                  allowed: PolicyKeys.child, elsewhere: Self.childHints) else { continue }
            guard let child = child(childReader, parent: path, depth: depth) else { continue }
            // Only children in the spec take part in its duplicate-id rule.
            if !seen.insert(child.id).inserted {
                repeatedIDs.append((childReader.markOf("id"), childPath.key("id")))
            }
            children.append(child)
        }
        let template = templateReader.flatMap { child($0, parent: path, depth: depth) }
        if let budget = budget(reader) { budgets[path.joined(separator: "/")] = budget }
        // Each child started from the template has the template's budget.
        if let template, let budget = budgets.removeValue(forKey: (path + [template.id]).joined(separator: "/")) {
            budgets[(path + ["*"]).joined(separator: "/")] = budget
        }

        sources.add(supervisor: SpecSources.Supervisor(mapping: reader, strategy: strategy, repeatedIDs: repeatedIDs,
                                                       tainted: tainted), at: path)
        return SupervisorSpec(strategy: strategy, intensity: intensity, periodMilliseconds: period,
                              autoShutdown: autoShutdown, children: children, template: template,
                              maxChildren: maxChildren)
    }

    // MARK: Children

    /// The child's spec, or nil when it cannot be placed in the tree (no
    /// usable id, too deep); its fields are checked either way.
    func child(_ reader: MappingReader, parent: [String], depth: Int) -> ChildSpec? {
        childCount += 1
        guard childCount <= Self.maximumChildren else {
            if childCount == Self.maximumChildren + 1 {
                log.report(reader.mark, reader.path, "more than \(Self.maximumChildren) children in one policy")
            }
            return nil
        }
        let before = log.count
        reader.require("id", "every child needs an id (unique among its siblings)")
        var id = reader.text("id")
        if let written = id, !Names.isChildID(written) {
            log.report(reader.markOf("id"), reader.path.key("id"), "invalid id '\(written)': \(Names.childIDRule)")
            id = nil
        }
        let isWorker = reader.has("program") || reader.has("llm"), isSupervisor = reader.has("supervisor")
        if isWorker, isSupervisor {
            log.report(reader.keyMark("supervisor"), reader.path,
                       "a child has program: (a worker) or supervisor: (a nested supervisor), not both")
        } else if !isWorker, !isSupervisor {
            log.report(reader.mark, reader.path, "a child needs program: (a worker) or supervisor: (a nested supervisor)")
        } else {
            let misplaced = isWorker ? PolicyKeys.supervisorChildOnly : PolicyKeys.workerOnly
            let only = isWorker ? "nested supervisors (children with supervisor:)" : "workers (children with program:)"
            for key in misplaced where reader.has(key) {
                log.report(reader.keyMark(key), reader.path.key(key), "'\(key)' is only for \(only)")
            }
        }
        let restart = reader.choice("restart", RestartType.self) ?? .permanent
        let shutdown = reader.value("shutdown").flatMap { self.shutdown($0, reader.path.key("shutdown")) }
        let significant = reader.boolean("significant") ?? false
        let backoff = self.backoff(reader)
        let restartOnEscalation = reader.boolean("restart_on_escalation") ?? false
        let tainted = log.count > before

        let successCodes = exitCodes(reader, "success_exit_codes")
        let noRestartCodes = exitCodes(reader, "no_restart_exit_codes")
        let path = id.map { parent + [$0] }

        var kind = ChildSpec.Kind.worker
        if isWorker, let launch = workerLaunch(reader), let path, !isSupervisor {
            launches[path.joined(separator: "/")] = launch
        }
        if isWorker, let path, let budget = budget(reader) { budgets[path.joined(separator: "/")] = budget }
        if isSupervisor, let node = reader.value("supervisor") {
            if depth >= Self.maximumDepth {
                log.report(node.mark, reader.path.key("supervisor"),
                           "supervisors nested more than \(Self.maximumDepth) deep")
                return nil
            }
            if let nested = supervisorReader(node, reader.path.key("supervisor"), nested: true) {
                // Without an id the subtree has no path; it is still checked.
                kind = .supervisor(supervisor(nested, at: path ?? parent + ["?"], depth: depth + 1))
            }
        }
        guard let id, let path else { return nil }
        sources.add(child: SpecSources.Child(mapping: reader, tainted: tainted), at: path)
        return ChildSpec(id: id, restart: restart, shutdown: shutdown, significant: significant,
                         successExitCodes: successCodes, noRestartExitCodes: noRestartCodes, backoff: backoff,
                         restartOnEscalation: restartOnEscalation, kind: kind)
    }

    private static let shutdownWords = ["brutal_kill", "infinity"]

    /// `brutal_kill`, `infinity` or a duration; a negative one is kept for
    /// the spec rules to report.
    private func shutdown(_ node: Node, _ path: FieldPath) -> ShutdownSpec? {
        let expected = "brutal_kill, infinity or a duration like 5s"
        guard let written = values.text(node, path, expected: expected) else { return nil }
        switch written {
        case "brutal_kill": return .brutalKill
        case "infinity": return .infinity
        default:
            let negative = written.hasPrefix("-")
            if let milliseconds = try? Units.milliseconds(negative ? String(written.dropFirst()) : written) {
                return .timeout(milliseconds: negative ? -milliseconds : milliseconds)
            }
            log.report(node.mark, path, "expected \(expected), found '\(written)'"
                + Suggestions.hint(for: written, among: Self.shutdownWords))
            return nil
        }
    }

    private func backoff(_ reader: MappingReader) -> Backoff? {
        guard let fields = reader.mapping("backoff", expected: "a back-off like {initial: 100ms, max: 10s, steps: 5}",
                                          allowed: PolicyKeys.backoff) else { return nil }
        fields.require("initial", "a back-off needs initial:, the first delay (e.g. 100ms)")
        guard let initial = fields.duration("initial") else { return nil }
        let maximum = fields.duration("max") ?? initial
        let steps = fields.integer("steps") ?? Self.defaultBackoffSteps
        var usable = true
        if maximum < initial, initial >= 0 {
            log.report(fields.markOf("max"), fields.path.key("max"), "must be at least initial (\(initial)ms)")
            usable = false
        }
        if steps < 0 {
            log.report(fields.markOf("steps"), fields.path.key("steps"), "must be 0 or more, not \(steps)")
            usable = false
        }
        return usable ? Backoff(initialMilliseconds: initial, maximumMilliseconds: maximum, steps: steps) : nil
    }

    static let defaultBackoffSteps = 5

    private func exitCodes(_ reader: MappingReader, _ key: String) -> Set<Int32> {
        guard let items = reader.list(key, of: "exit codes (0-255)") else { return [] }
        var codes: Set<Int32> = []
        for (index, item) in items.enumerated() {
            let path = reader.path.key(key).index(index)
            guard let code = values.integer(item, path) else { continue }
            guard (0...255).contains(code) else {
                log.report(item.mark, path, "an exit code is 0 to 255, not \(code)")
                continue
            }
            codes.insert(Int32(code))
        }
        return codes
    }
}
