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
    /// The root supervisor's own flags changed: the tree restarts whole.
    var rootChanged = false

    var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty && !rootChanged }

    var summary: String {
        var parts: [String] = []
        if rootChanged { parts.append("root flags changed") }
        if !changed.isEmpty { parts.append("restarted " + changed.joined(separator: ", ")) }
        if !added.isEmpty { parts.append("added " + added.joined(separator: ", ")) }
        if !removed.isEmpty { parts.append("removed " + removed.joined(separator: ", ")) }
        return parts.isEmpty ? "unchanged" : parts.joined(separator: "; ")
    }

    /// The paths to stop and start again: changed children, where a
    /// changed template stands for its dynamic supervisor (its children
    /// were made from the old one).
    func restartPaths(in document: PolicyDocument) -> [String] {
        changed.map { path in
            let parent = path.split(separator: "/").dropLast().map(String.init)
            // (An empty parent is the root: "" then means the whole tree.)
            if let spec = document.root.supervisor(at: parent), spec.strategy == .dynamic,
               spec.template?.id == path.split(separator: "/").last.map(String.init) {
                return parent.joined(separator: "/")
            }
            return path
        }
    }

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
        if let old { rootChanged = Self.flags(old.root) != Self.flags(new.root) }
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
