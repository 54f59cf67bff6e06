import AgentOSProtocol
import Foundation

extension Capability {
    /// Parses a capability URI. Errors are one line, naming what is wrong
    /// and how a correct one looks (the caller adds where the URI came from).
    public init(parsing uri: String) throws(CapabilityError) {
        func fail(_ message: String) -> CapabilityError { CapabilityError(.invalidURI, message) }
        guard uri.hasPrefix(Self.scheme) else {
            throw fail("a capability starts with '\(Self.scheme)', e.g. \(Kind.file.example)")
        }
        if let bad = uri.unicodeScalars.first(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F }) {
            throw fail("no spaces or control characters (found U+\(String(bad.value, radix: 16, uppercase: true)); write %20 for a space)")
        }
        let rest = uri.dropFirst(Self.scheme.count)
        let queryStart = rest.firstIndex(of: "?")
        let locator = queryStart.map { rest[..<$0] } ?? rest
        let kindName = locator.prefix { $0 != "/" }
        let kinds = Kind.allCases.map(\.rawValue).joined(separator: ", ")
        guard !kindName.isEmpty else { throw fail("no kind after '\(Self.scheme)': use one of \(kinds)") }
        guard let kind = Kind(rawValue: String(kindName)) else {
            throw fail("unknown capability kind '\(kindName)': use one of \(kinds)")
        }
        guard let rawResource = String(locator.dropFirst(kindName.count)).removingPercentEncoding else {
            throw fail("a bad %-escape in the resource")
        }

        // The resource.
        var host: Glob?
        var port: String?
        let resource: Glob
        switch kind {
        case .file, .shell:
            guard rawResource.count > 1 || kind == .shell else {
                throw fail("a file capability names its paths, e.g. \(kind.example)")
            }
            let path = rawResource.isEmpty ? "/**" : Self.withoutTrailingSlash(rawResource)
            if let problem = Self.pathProblem(path) { throw fail(problem) }
            resource = Glob(path, separator: "/")
        case .http:
            let authorityAndPath = rawResource.drop { $0 == "/" }
            let slash = authorityAndPath.firstIndex(of: "/") ?? authorityAndPath.endIndex
            let authority = authorityAndPath[..<slash]
            let path = slash == authorityAndPath.endIndex ? "/**" : Self.withoutTrailingSlash(String(authorityAndPath[slash...]))
            guard authority.allSatisfy({ $0.isLetter || $0.isNumber || "-.*:".contains($0) }) else {
                throw fail("host '\(authority)' may hold letters, digits, '-', '.', '*' and a :port only "
                               + "(no user@, no [IPv6] literals)")
            }
            var hostPart = authority
            if let colon = authority.lastIndex(of: ":") {
                let portText = authority[authority.index(after: colon)...]
                guard portText == "*" || (UInt16(portText).map { $0 > 0 } ?? false) else {
                    throw fail("port '\(portText)' is not a number from 1 to 65535 (or *)")
                }
                port = String(portText)
                hostPart = authority[..<colon]
            }
            guard !hostPart.isEmpty else { throw fail("an http capability names its host, e.g. \(kind.example)") }
            guard hostPart.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "*" }) else {
                throw fail("host '\(hostPart)' may hold letters, digits, '-', '.' and '*' only")
            }
            if let problem = Self.pathProblem(path) { throw fail(problem) }
            host = Glob(hostPart.lowercased(), separator: ".")
            resource = Glob(path, separator: "/")
        case .agent, .memory, .tool, .model, .topic:
            // Every leading "/" goes: "agent//**" is "agent/**", as its
            // canonical form (which a restarted kernel reads back) says.
            let name = String(rawResource.drop { $0 == "/" })
            if name.split(separator: kind.separator, omittingEmptySubsequences: false).contains(where: { $0 == ".." }) {
                throw fail("'..' is not a name")
            }
            resource = Glob(name.isEmpty ? "**" : name, separator: kind.separator)
        }

        // The parameters.
        guard let queryStart else { throw fail("no action: add ?action=\(kind.actions[0]) (\(kind) actions: \(kind.actions.joined(separator: ", ")))") }
        var values: [String: String] = [:]
        for parameter in rest[rest.index(after: queryStart)...].split(separator: "&", omittingEmptySubsequences: false) {
            guard let equals = parameter.firstIndex(of: "="), equals != parameter.startIndex else {
                throw fail("'\(parameter)' is not key=value (parameters are joined by '&')")
            }
            let key = String(parameter[..<equals])
            guard let value = String(parameter[parameter.index(after: equals)...]).removingPercentEncoding else {
                throw fail("a bad %-escape in \(key)")
            }
            guard !value.isEmpty else { throw fail("parameter '\(key)' has no value") }
            guard values.updateValue(value, forKey: key) == nil else { throw fail("parameter '\(key)' is given twice") }
        }
        guard let actionList = values.removeValue(forKey: "action") else {
            throw fail("no action: add action=\(kind.actions[0]) (\(kind) actions: \(kind.actions.joined(separator: ", ")))")
        }
        var actions: Set<String> = []
        for action in actionList.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            guard kind.actions.contains(action) else {
                throw fail("'\(action)' is not a \(kind) action: use \(kind.actions.joined(separator: ", "))")
            }
            actions.insert(action)
        }
        var constraints = Constraints()
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            do {
                try constraints.set(key, value, kind: kind)
            } catch {
                throw fail(error.message)
            }
        }
        self.init(kind: kind, resource: resource, host: host, port: port, actions: actions, constraints: constraints)
    }

    /// `/srv/data/` names the directory `/srv/data` (as canonical paths
    /// are written), not a name ending in an empty segment.
    static func withoutTrailingSlash(_ path: String) -> String {
        path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// Why an absolute path pattern is unsafe or malformed, or nil.
    static func pathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "'\(path)' is not an absolute path" }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if segments.contains(where: { $0 == "." || $0 == ".." }) {
            return "'\(path)' has '.' or '..' in it: name the directory itself"
        }
        if segments.dropLast().contains(where: \.isEmpty) { return "'\(path)' has an empty segment ('//')" }
        return nil
    }
}

extension Constraints {
    mutating func set(_ key: String, _ value: String, kind: Capability.Kind) throws(CapabilityError) {
        func bad(_ message: String) -> CapabilityError { CapabilityError(.invalidURI, message) }
        func count(_ text: String) throws(CapabilityError) -> Int {
            // Bounded, so that no comparison of two limits can overflow.
            guard let number = Int(text), number > 0, number <= 1_000_000_000_000 else {
                throw bad("\(key)=\(text): give a whole number from 1 to 10^12")
            }
            return number
        }
        switch key {
        case "timeout":
            do {
                let milliseconds = try Units.milliseconds(value)
                guard milliseconds > 0 else { throw bad("timeout=\(value): give a duration above 0, e.g. 30s") }
                timeoutMilliseconds = milliseconds
            } catch let error as CapabilityError {
                throw error
            } catch {
                throw bad("timeout=\(value): \(error), e.g. 500ms, 30s, 5m")
            }
        case "rate":
            let parts = value.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let window = Rate.windows.first(where: { $0.0 == parts[1] })?.1 else {
                throw bad("rate=\(value): write N/sec, N/min or N/hour, e.g. 10/min")
            }
            rate = Rate(count: try count(String(parts[0])), windowSeconds: window)
        case "max":
            max = try count(value)
        case "tokens":
            guard kind == .model else { throw bad("tokens is a model constraint") }
            tokens = try count(value)
        case "allowlist":
            let entries = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if kind == .shell, let relative = entries.first(where: { !$0.hasPrefix("/") || Capability.pathProblem($0) != nil }) {
                throw bad("allowlist entry '\(relative)' is not an absolute program path")
            }
            guard !entries.contains(where: \.isEmpty) else { throw bad("allowlist=\(value) has an empty entry") }
            allowlist = entries
        case "expires":
            if let seconds = Int64(value), seconds > 0 {
                guard seconds < 100_000_000_000 else { throw bad("expires=\(value): a time before the year 5000, please") }
                expiresAtMilliseconds = seconds * 1_000
            } else if let date = ISO8601DateFormatter().date(from: value) {
                expiresAtMilliseconds = Int64((date.timeIntervalSince1970 * 1_000).rounded())
            } else {
                throw bad("expires=\(value): give a time like 2026-12-31T00:00:00Z, or unix seconds")
            }
        case "approve":
            guard let approval = Approval(rawValue: value) else { throw bad("approve=\(value): the one approver is 'operator'") }
            self.approval = approval
        default:
            throw bad("unknown parameter '\(key)': besides action, use \(Self.names.joined(separator: ", "))")
        }
    }
}
