import AgentOSCapabilities

// Capabilities in a policy file are checked with the kernel's own parser
// (AgentOSCapabilities), so that a policy that validates holds only
// capabilities the kernel can grant.
enum CapabilityURI {
    /// Why `uri` is not a capability, or nil when it is.
    static func problem(in uri: String) -> String? {
        do {
            _ = try Capability(parsing: uri)
            return nil
        } catch {
            let unknown = "unknown capability kind '"
            guard error.message.hasPrefix(unknown) else { return error.message }
            let kind = String(error.message.dropFirst(unknown.count).prefix { $0 != "'" })
            return error.message + Suggestions.hint(for: kind, among: Capability.Kind.allCases.map(\.rawValue))
        }
    }
}
