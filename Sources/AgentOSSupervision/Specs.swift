// What a supervision tree is made of: supervisor flags and child specs, as
// OTP's `supervisor` defines them (shared/conformance/supervision.md), plus
// the parts marked [ours] there (exit codes, back-off, readiness). Plain
// values: the policy layer builds them, the state machine runs them.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// When a child that stopped is started again.
public enum RestartType: String, Sendable, Hashable, CaseIterable {
    /// Always restarted.
    case permanent
    /// Restarted only after an abnormal exit.
    case transient
    /// Never restarted; its spec is removed when it stops.
    case temporary
}

/// How a child is stopped.
public enum ShutdownSpec: Sendable, Hashable {
    /// SIGKILL to the child's whole cgroup at once.
    case brutalKill
    /// SIGTERM, then SIGKILL of the whole cgroup after this many milliseconds.
    case timeout(milliseconds: Int64)
    /// SIGTERM and wait as long as it takes (the default for supervisors).
    case infinity

    /// OTP's default for workers: 5 s.
    public static let workerDefault = ShutdownSpec.timeout(milliseconds: 5_000)
}

/// How a supervisor reacts when one of its children dies.
public enum Strategy: String, Sendable, Hashable, CaseIterable {
    case oneForOne = "one_for_one"
    case oneForAll = "one_for_all"
    case restForOne = "rest_for_one"
    /// OTP's simple_one_for_one / Elixir's DynamicSupervisor: one template,
    /// children added at run time with their own arguments.
    case dynamic
}

/// When a supervisor shuts itself down because significant children ended.
public enum AutoShutdown: String, Sendable, Hashable, CaseIterable {
    case never
    case anySignificant = "any_significant"
    case allSignificant = "all_significant"
}

/// [ours] Delay before a restart, growing with each restart in the window
/// (systemd's RestartSec / RestartSteps / RestartMaxDelaySec): the n-th
/// restart in the window (n from 0) waits
/// `initial * (maximum / initial) ^ (min(n, steps) / steps)`, or `initial`
/// when `steps` is 0. The intensity window still decides giving up.
public struct Backoff: Sendable, Hashable {
    public var initialMilliseconds: Int64
    public var maximumMilliseconds: Int64
    public var steps: Int

    public init(initialMilliseconds: Int64, maximumMilliseconds: Int64, steps: Int) {
        self.initialMilliseconds = initialMilliseconds
        self.maximumMilliseconds = max(maximumMilliseconds, initialMilliseconds)
        self.steps = max(steps, 0)
    }

    /// The delay before restart number `n` (0-based) within the window.
    public func delay(restart n: Int) -> Int64 {
        guard steps > 0, initialMilliseconds > 0, maximumMilliseconds > initialMilliseconds else {
            return initialMilliseconds
        }
        let fraction = Double(min(n, steps)) / Double(steps)
        let ratio = Double(maximumMilliseconds) / Double(initialMilliseconds)
        let value = Double(initialMilliseconds) * exp(fraction * log(ratio))
        return min(maximumMilliseconds, Int64(value.rounded()))
    }
}

/// One child of a supervisor: a worker (a confined process) or a nested supervisor.
public struct ChildSpec: Sendable, Hashable {
    /// Unique among its siblings; a path segment (`team/workers/w1`).
    public var id: String
    public var restart: RestartType
    public var shutdown: ShutdownSpec
    /// Only with transient or temporary, under a supervisor whose
    /// auto_shutdown is not `never`.
    public var significant: Bool
    /// [ours] Exit codes that count as a normal exit besides 0.
    public var successExitCodes: Set<Int32>
    /// [ours] Exit codes after which the child is never restarted (systemd's
    /// RestartPreventExitStatus); its spec stays, shown as not running.
    public var noRestartExitCodes: Set<Int32>
    /// [ours] Optional delay before restarts of this child.
    public var backoff: Backoff?
    /// [ours] A transient spec of a supervisor that gave up restarts it anyway
    /// when this is set (escalation is its own exit reason).
    public var restartOnEscalation: Bool
    public var kind: Kind

    public indirect enum Kind: Sendable, Hashable {
        case worker
        case supervisor(SupervisorSpec)
    }

    public var isSupervisor: Bool {
        if case .supervisor = kind { return true }
        return false
    }

    public init(id: String, restart: RestartType = .permanent, shutdown: ShutdownSpec? = nil,
                significant: Bool = false, successExitCodes: Set<Int32> = [], noRestartExitCodes: Set<Int32> = [],
                backoff: Backoff? = nil, restartOnEscalation: Bool = false, kind: Kind = .worker) {
        self.id = id
        self.restart = restart
        if let shutdown {
            self.shutdown = shutdown
        } else if case .supervisor = kind {
            self.shutdown = .infinity
        } else {
            self.shutdown = .workerDefault
        }
        self.significant = significant
        self.successExitCodes = successExitCodes
        self.noRestartExitCodes = noRestartExitCodes
        self.backoff = backoff
        self.restartOnEscalation = restartOnEscalation
        self.kind = kind
    }

    public static func supervisor(_ id: String, restart: RestartType = .permanent, _ spec: SupervisorSpec) -> ChildSpec {
        ChildSpec(id: id, restart: restart, kind: .supervisor(spec))
    }
}

/// A supervisor's flags and its children in start order.
public struct SupervisorSpec: Sendable, Hashable {
    public var strategy: Strategy
    /// Restarts allowed within `periodMilliseconds` before giving up (≥ 0).
    public var intensity: Int
    /// [ours] The window, in milliseconds on a monotonic clock (> 0).
    public var periodMilliseconds: Int64
    public var autoShutdown: AutoShutdown
    /// Static children, in start order (empty for a dynamic supervisor).
    public var children: [ChildSpec]
    /// A dynamic supervisor's one template.
    public var template: ChildSpec?
    /// A dynamic supervisor's cap on running children (nil: none).
    public var maxChildren: Int?

    /// Elixir's defaults: intensity 3 within 5 s.
    public static let defaultIntensity = 3
    public static let defaultPeriodMilliseconds: Int64 = 5_000

    public init(strategy: Strategy = .oneForOne, intensity: Int = SupervisorSpec.defaultIntensity,
                periodMilliseconds: Int64 = SupervisorSpec.defaultPeriodMilliseconds,
                autoShutdown: AutoShutdown = .never, children: [ChildSpec] = [], template: ChildSpec? = nil,
                maxChildren: Int? = nil) {
        self.strategy = strategy
        self.intensity = intensity
        self.periodMilliseconds = periodMilliseconds
        self.autoShutdown = autoShutdown
        self.children = children
        self.template = template
        self.maxChildren = maxChildren
    }
}

extension SupervisorSpec {
    /// The supervisor at `path` (child ids from this one; [] is this one).
    public func supervisor(at path: [String]) -> SupervisorSpec? {
        var spec = self
        for id in path {
            guard let child = spec.children.first(where: { $0.id == id }), case .supervisor(let nested) = child.kind else {
                return nil
            }
            spec = nested
        }
        return spec
    }

    /// The static child at `path` (child ids from this supervisor).
    public func child(at path: [String]) -> ChildSpec? {
        guard let id = path.last else { return nil }
        return supervisor(at: Array(path.dropLast()))?.children.first { $0.id == id }
    }

    /// The spec of whatever runs at `path`: a static child, or a dynamic
    /// supervisor's template for the children it starts (any id).
    public func spec(at path: [String]) -> ChildSpec? {
        var supervisor = self
        for (index, id) in path.enumerated() {
            guard let child = supervisor.children.first(where: { $0.id == id }) ?? supervisor.template else { return nil }
            if index == path.count - 1 { return child }
            guard case .supervisor(let inner) = child.kind else { return nil }
            supervisor = inner
        }
        return nil
    }
}

/// A rule of conformance scenario 25 that a spec breaks.
public struct SpecProblem: Sendable, Hashable, CustomStringConvertible {
    /// Where: child ids from the root, e.g. ["team", "workers"].
    public var path: [String]
    /// The field at fault, as policy files name it (`significant`, `intensity`, ...).
    public var field: String
    public var message: String

    public var description: String {
        (path.isEmpty ? "" : path.joined(separator: "/") + ": ") + field + ": " + message
    }
}

extension SupervisorSpec {
    /// Every rule a tree must satisfy before it may start (scenario 25):
    /// significant only with transient/temporary and auto_shutdown not
    /// never; no auto_shutdown on a dynamic supervisor; unique ids;
    /// intensity ≥ 0; period > 0; no negative shutdown; a dynamic supervisor
    /// has exactly one template and no static children.
    public func problems(at path: [String] = []) -> [SpecProblem] {
        var found: [SpecProblem] = []
        if intensity < 0 {
            found.append(SpecProblem(path: path, field: "intensity", message: "must be 0 or more, not \(intensity)"))
        }
        if periodMilliseconds <= 0 {
            found.append(SpecProblem(path: path, field: "period", message: "must be more than 0"))
        }
        if strategy == .dynamic {
            if autoShutdown != .never {
                found.append(SpecProblem(path: path, field: "auto_shutdown",
                                         message: "a dynamic supervisor cannot shut down automatically"))
            }
            if template == nil || !children.isEmpty {
                found.append(SpecProblem(path: path, field: "template",
                                         message: "a dynamic supervisor has exactly one template and no children"))
            }
            if let maxChildren, maxChildren < 1 {
                found.append(SpecProblem(path: path, field: "max_children", message: "must be 1 or more"))
            }
            if let template {
                if template.significant {
                    found.append(SpecProblem(path: path + [template.id], field: "significant",
                                             message: "children of a dynamic supervisor cannot be significant"))
                }
                found += template.problems(at: path + [template.id], autoShutdown: .never, checkSignificant: false)
            }
        } else {
            if template != nil {
                found.append(SpecProblem(path: path, field: "template",
                                         message: "only a dynamic supervisor has a template (strategy: dynamic)"))
            }
            if maxChildren != nil {
                found.append(SpecProblem(path: path, field: "max_children", message: "only for a dynamic supervisor"))
            }
            var seen: Set<String> = []
            for child in children {
                if !seen.insert(child.id).inserted {
                    found.append(SpecProblem(path: path, field: "id", message: "duplicate child id '\(child.id)'"))
                }
                found += child.problems(at: path + [child.id], autoShutdown: autoShutdown, checkSignificant: true)
            }
        }
        return found
    }
}

extension ChildSpec {
    func problems(at path: [String], autoShutdown: AutoShutdown, checkSignificant: Bool) -> [SpecProblem] {
        var found: [SpecProblem] = []
        if id.isEmpty || id.contains("/") {
            found.append(SpecProblem(path: path, field: "id", message: "must be non-empty and contain no '/'"))
        }
        if checkSignificant, significant {
            if restart == .permanent {
                found.append(SpecProblem(path: path, field: "significant",
                                         message: "a permanent child cannot be significant (use transient or temporary)"))
            }
            if autoShutdown == .never {
                found.append(SpecProblem(path: path, field: "significant",
                                         message: "significant needs auto_shutdown any_significant or all_significant on its supervisor"))
            }
        }
        if case .timeout(let milliseconds) = shutdown, milliseconds < 0 {
            found.append(SpecProblem(path: path, field: "shutdown", message: "must not be negative"))
        }
        if let backoff, backoff.initialMilliseconds < 0 {
            found.append(SpecProblem(path: path, field: "backoff", message: "must not be negative"))
        }
        if case .supervisor(let spec) = kind {
            found += spec.problems(at: path)
        }
        return found
    }
}
