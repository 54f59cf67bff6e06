import Foundation

/// One capability: what an agent may do, to which resources, within which
/// limits. Written as a URI (ARCHITECTURE §6):
///
///     capability://KIND/RESOURCE?action=A[,B...][&CONSTRAINT=VALUE...]
///
/// e.g. `capability://file/srv/data/**?action=read,list&rate=100/min`.
/// The kernel checks an ask (kind, action, one concrete resource) against
/// the grants an agent holds; see `covers` for what a grant covers and
/// `problem(delegating:)` for what a delegated grant may narrow.
public struct Capability: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        case file, http, shell, agent, memory, tool, model, topic

        /// The actions a grant of this kind may name.
        public var actions: [String] {
            switch self {
            case .file: ["read", "write", "list", "delete"]
            case .http: ["request", "get", "head", "post", "put", "patch", "delete"]
            case .shell: ["execute"]
            case .agent: ["spawn", "message", "stop"]
            case .memory: ["read", "write", "delete", "search", "share"]
            case .tool: ["call"]
            case .model: ["complete"]
            case .topic: ["publish", "subscribe"]
            }
        }

        /// What separates the segments of a resource of this kind.
        var separator: Character {
            switch self {
            case .file, .shell, .agent, .memory: "/"
            case .tool, .topic: "."
            case .model: ":"
            case .http: "/"   // the path; the host is split at "."
            }
        }

        /// An example resource, for error messages.
        var example: String {
            switch self {
            case .file: "capability://file/srv/data/**?action=read"
            case .http: "capability://http/api.example.com/v1/**?action=get"
            case .shell: "capability://shell/usr/bin/*?action=execute"
            case .agent: "capability://agent/team/*?action=message"
            case .memory: "capability://memory/shared/team?action=read,write"
            case .tool: "capability://tool/file.*?action=call"
            case .model: "capability://model/anthropic:*?action=complete"
            case .topic: "capability://topic/news.*?action=subscribe"
            }
        }
    }

    public let kind: Kind
    /// The resource pattern (for http: the path; the host is `host`).
    public let resource: Glob
    /// http only: the host pattern (lower case) and the port ("*" any).
    public let host: Glob?
    public let port: String?
    public let actions: Set<String>
    public let constraints: Constraints

    public init(kind: Kind, resource: Glob, host: Glob? = nil, port: String? = nil, actions: Set<String>,
                constraints: Constraints = Constraints()) {
        self.kind = kind
        self.resource = resource
        self.host = host
        self.port = port
        self.actions = actions
        self.constraints = constraints
    }

    public static let scheme = "capability://"

    // MARK: Checking

    /// Whether this grant covers `action` on the concrete `resource`.
    ///
    /// The resource must already be canonical for its kind (the kernel does
    /// that before asking): a file or program path absolute, normalised and
    /// with symlinks resolved (`FilePaths.canonical`), so that neither `..`
    /// nor a link can lead outside what the pattern names; an http resource
    /// `host[:port]/path` with the host in lower case. Constraints are not
    /// looked at here: they limit how often and how long a covered ask may
    /// run, which is the kernel table's business.
    public func covers(action: String, resource: String) -> Bool {
        covers(Ask(kind: kind, action: action, resource: resource))
    }

    /// An ask split once, to be checked against many grants.
    public struct Ask: Sendable {
        public let kind: Kind
        public let action: String
        let name: Glob.Name
        let host: Glob.Name?
        let port: String?
        let valid: Bool

        /// An ask that is not a well-formed name of its kind matches no
        /// grant: an http target with anything but letters, digits, '-' and
        /// '.' in its host, a port that is not a number, or a path with '.',
        /// '..', empty segments or ?#%@\; a name of another kind with empty,
        /// '.' or '..' segments. (File and program paths arrive canonical.)
        public init(kind: Kind, action: String, resource: String) {
            self.kind = kind
            self.action = action
            if kind == .http {
                let target = HTTPResource(resource)
                name = Glob.Name(target?.path ?? "", separator: "/")
                host = Glob.Name(target?.host ?? "", separator: ".")
                port = target?.port
                valid = target?.isWellFormed ?? false
            } else {
                name = Glob.Name(resource, separator: kind.separator)
                host = nil
                port = nil
                valid = kind == .file || kind == .shell
                    ? resource.hasPrefix("/") && !Glob.Name(String(resource.dropFirst()), separator: "/").hasDotOrEmptySegment
                        || resource == "/"
                    : !name.hasDotOrEmptySegment
            }
        }
    }

    /// `covers(action:resource:)` for an ask already split.
    public func covers(_ ask: Ask) -> Bool {
        guard ask.kind == kind, ask.valid, actionCovered(ask.action) else { return false }
        guard kind == .http else { return resource.matches(ask.name) }
        guard let host, let askedHost = ask.host else { return false }
        return host.matches(askedHost) && portCovers(ask.port) && resource.matches(ask.name)
    }

    private func actionCovered(_ action: String) -> Bool {
        if actions.contains(action) { return true }
        // For http, "request" stands for every method.
        return kind == .http && actions.contains("request") && kind.actions.contains(action)
    }

    private func portCovers(_ asked: String?) -> Bool {
        guard let port, port != "*" else { return true }
        return asked == port
    }

    // MARK: Delegation

    /// Why `child` asks for more than this capability, or nil when it is
    /// within it: the same kind, a resource pattern this one covers, a
    /// subset of the actions, and every constraint this one has, at least
    /// as tight (a shorter timeout, a lower rate, a smaller max or token
    /// budget, an earlier expiry, an allowlist inside this one's, operator
    /// approval kept).
    public func problem(delegating child: Capability) -> String? {
        guard child.kind == kind else { return "a \(child.kind) capability cannot come from a \(kind) one" }
        if kind == .http {
            guard let host, let childHost = child.host, host.covers(childHost) else {
                return "host \(child.host?.pattern ?? "") is not inside \(host?.pattern ?? "")"
            }
            if let port, port != "*", child.port != port {
                return "port \(child.port ?? "any") is not port \(port)"
            }
        }
        guard resource.covers(child.resource) else {
            return "\(child.resource.pattern) is not inside \(resource.pattern)"
        }
        if let extra = child.actions.sorted().first(where: { !actionCovered($0) }) {
            return "action \(extra) is not granted (only \(actions.sorted().joined(separator: ",")))"
        }
        return constraints.problem(narrowing: child.constraints)
    }

    // MARK: Text

    /// The canonical URI: actions and constraints in a fixed order.
    public var description: String {
        var text = Self.scheme + kind.rawValue
        let path = Self.percentEncoded(resource.pattern)
        if kind == .http, let host {
            text += "/" + host.pattern + (port.map { ":" + $0 } ?? "") + path
        } else if resource.pattern != "**" {
            text += (path.hasPrefix("/") ? "" : "/") + path
        }
        let parameters = [("action", actions.sorted().joined(separator: ","))] + constraints.parameters
        return text + "?" + parameters.map { "\($0.0)=\(Self.percentEncoded($0.1))" }.joined(separator: "&")
    }

    static func percentEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/*:,")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// An http resource as asked: `host[:port]/path`, split on scalars.
struct HTTPResource {
    let host: String
    let port: String?
    let path: String

    init?(_ text: String) {
        let scalars = Array(text.unicodeScalars)
        let slash = scalars.firstIndex(of: "/") ?? scalars.count
        var authority = String(String.UnicodeScalarView(scalars[..<slash]))
        path = slash == scalars.count ? "/" : String(String.UnicodeScalarView(scalars[slash...]))
        if let colon = authority.unicodeScalars.lastIndex(of: ":") {
            port = String(authority.unicodeScalars[authority.unicodeScalars.index(after: colon)...])
            authority = String(authority.unicodeScalars[..<colon])
        } else {
            port = nil
        }
        host = authority.lowercased()
        if host.isEmpty { return nil }
    }

    /// What a fetcher would read the same way: a plain host name, a numeric
    /// port, a path of plain segments.
    var isWellFormed: Bool {
        let hostOK = host.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." }
            && !Glob.Name(host, separator: ".").hasDotOrEmptySegment
        let portOK = port.map { !$0.isEmpty && $0.unicodeScalars.allSatisfy { ("0"..."9").contains($0) } && (UInt16($0) ?? 0) > 0 } ?? true
        let forbidden: Set<Unicode.Scalar> = ["?", "#", "%", "@", "\\"]
        let pathOK = path.hasPrefix("/") && !path.unicodeScalars.contains { forbidden.contains($0) || $0.value < 0x21 }
            && (path == "/" || !Glob.Name(String(path.dropFirst()), separator: "/").hasDotOrEmptySegment)
        return hostOK && portOK && pathOK
    }
}
