// A policy file once parsed and validated: one supervision tree for the
// supervision core, and how to launch each of its workers for the kernel.

import AgentOSModels
import AgentOSSupervision

/// One valid policy: its supervision tree and its workers' launch settings.
public struct PolicyDocument: Sendable, Hashable {
    /// Unique among applied policies: `[a-z0-9][a-z0-9_-]*`.
    public var name: String
    /// The root supervisor.
    public var root: SupervisorSpec
    /// Launch settings of every worker, keyed by its path of child ids from
    /// the root joined by "/" ("researcher", "workers/worker"); a dynamic
    /// supervisor's template is found under the template's path.
    public var launches: [String: WorkerLaunch]
    /// Where the policy was read from, as given to the parser.
    public var file: String
    /// The policy file's text, as read.
    public var source: String
    /// Model budgets by path of child ids ("" the whole policy, "workers"
    /// a supervisor's subtree, "workers/*" each child of a dynamic one).
    public var budgets: [String: ModelBudget] = [:]

    public init(name: String, root: SupervisorSpec, launches: [String: WorkerLaunch], file: String, source: String) {
        self.name = name
        self.root = root
        self.launches = launches
        self.file = file
        self.source = source
    }

    /// The launch settings of the worker at `path` ("workers/worker").
    public func launch(for path: String) -> WorkerLaunch? {
        launches[path]
    }

    /// The child spec at a path of child ids (a dynamic supervisor's
    /// children are its template); nil if there is none.
    public func childSpec(at path: [String]) -> ChildSpec? {
        root.spec(at: path)
    }

    /// Whether the child at `path` is ever restarted (not `temporary`).
    public func isRestarted(at path: [String]) -> Bool {
        (childSpec(at: path)?.restart ?? .temporary) != .temporary
    }

    /// The launch settings of the worker at a path of child ids.
    public func launch(for path: [String]) -> WorkerLaunch? {
        launches[path.joined(separator: "/")]
    }

    /// Supervisors in the tree, the root included.
    public var supervisorCount: Int {
        Self.count(root).supervisors
    }

    /// Worker specs in the tree (a dynamic supervisor's template counts once).
    public var workerCount: Int {
        Self.count(root).workers
    }

    private static func count(_ spec: SupervisorSpec) -> (supervisors: Int, workers: Int) {
        var total = (supervisors: 1, workers: 0)
        for child in spec.children + (spec.template.map { [$0] } ?? []) {
            if case .supervisor(let nested) = child.kind {
                let inner = count(nested)
                total.supervisors += inner.supervisors
                total.workers += inner.workers
            } else {
                total.workers += 1
            }
        }
        return total
    }
}
