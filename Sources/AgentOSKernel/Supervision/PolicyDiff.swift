import AgentOSPolicy
import AgentOSSupervision

/// What re-applying a policy changes, child by child (paths without the
/// policy name): a worker changed when its child spec or launch settings
/// did; a supervisor when its own flags did (its children count apart).
struct PolicyDiff {
    var added: [String] = []
    var removed: [String] = []
    var changed: [String] = []
    var unchanged: [String] = []

    var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }

    init(old: PolicyDocument?, new: PolicyDocument) {
        let before = old.map { Self.flatten($0) } ?? [:]
        let after = Self.flatten(new)
        for (path, fingerprint) in after.sorted(by: { $0.key < $1.key }) {
            switch before[path] {
            case nil: added.append(path)
            case fingerprint?: unchanged.append(path)
            default: changed.append(path)
            }
        }
        removed = before.keys.filter { after[$0] == nil }.sorted()
    }

    /// Each child's own settings, keyed by its path.
    private static func flatten(_ document: PolicyDocument) -> [String: Fingerprint] {
        var result: [String: Fingerprint] = ["": .supervisor(flags(document.root), nil)]
        func walk(_ spec: SupervisorSpec, _ path: [String]) {
            for child in spec.children + (spec.template.map { [$0] } ?? []) {
                let childPath = path + [child.id]
                let key = childPath.joined(separator: "/")
                switch child.kind {
                case .worker:
                    result[key] = .worker(child, document.launch(for: childPath))
                case .supervisor(let nested):
                    var own = child
                    own.kind = .supervisor(flags(nested))
                    result[key] = .supervisor(flags(nested), own)
                    walk(nested, childPath)
                }
            }
        }
        walk(document.root, [])
        result[""] = nil
        return result
    }

    private static func flags(_ spec: SupervisorSpec) -> SupervisorSpec {
        var flags = spec
        flags.children = []
        flags.template = nil
        return flags
    }

    enum Fingerprint: Hashable {
        case worker(ChildSpec, WorkerLaunch?)
        case supervisor(SupervisorSpec, ChildSpec?)
    }
}
