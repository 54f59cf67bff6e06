// The form of a capability URI (ARCHITECTURE §6):
// `capability://<kind>[/<resource>][?action=<a>[,<a>...][&<constraint>=<value>...]]`.
// Only the form is checked here; what a capability allows is the kernel's
// business once capabilities are enforced.

enum CapabilityURI {
    static let scheme = "capability://"

    /// Kinds whose resource part is required: a file capability names its
    /// files, an http one its host.
    static let kindsNeedingResource = ["file", "http"]

    /// Why `uri` is not a well-formed capability, or nil when it is.
    static func problem(in uri: String) -> String? {
        guard uri.hasPrefix(scheme) else {
            return "a capability starts with '\(scheme)', e.g. capability://file/srv/data/*?action=read"
        }
        if let bad = uri.unicodeScalars.first(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F }) {
            return "a capability has no spaces or control characters (found U+\(String(bad.value, radix: 16, uppercase: true)))"
        }
        let rest = uri.dropFirst(scheme.count)
        let queryStart = rest.firstIndex(of: "?")
        let locator = queryStart.map { rest[..<$0] } ?? rest
        let kind = locator.prefix { $0 != "/" }
        let resource = locator.dropFirst(kind.count)
        let kinds = PolicyKeys.capabilityKinds
        guard !kind.isEmpty else {
            return "no kind after '\(scheme)': use one of \(kinds.joined(separator: ", "))"
        }
        guard kinds.contains(String(kind)) else {
            return "unknown capability kind '\(kind)': use one of \(kinds.joined(separator: ", "))"
                + Suggestions.hint(for: String(kind), among: kinds)
        }
        if kindsNeedingResource.contains(String(kind)), resource.count <= 1 {
            return kind == "file" ? "a file capability names its paths, e.g. capability://file/srv/data/*?action=read"
                : "an http capability names its host, e.g. capability://http/api.example.com/*?action=request"
        }
        guard let queryStart else {
            return "no action: add ?action=..., e.g. \(uri)?action=read"
        }
        var seen: Set<Substring> = []
        for parameter in rest[rest.index(after: queryStart)...].split(separator: "&", omittingEmptySubsequences: false) {
            guard let equals = parameter.firstIndex(of: "="), equals != parameter.startIndex else {
                return "'\(parameter)' is not key=value (parameters are joined by '&')"
            }
            let key = parameter[..<equals], value = parameter[parameter.index(after: equals)...]
            guard !value.isEmpty else { return "parameter '\(key)' has no value" }
            guard seen.insert(key).inserted else { return "parameter '\(key)' is given twice" }
        }
        guard seen.contains("action") else {
            return "no action: add action=..., e.g. ?action=read"
        }
        return nil
    }
}
