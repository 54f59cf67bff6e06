import AgentKit
import Foundation

/// Which registry tools the model is offered (AGENTOS_TOOLS): names or
/// globs, comma-separated. Offering is not permission: the kernel still
/// checks each call against the agent's grants.
struct ToolFilter: Sendable {
    let patterns: [String]

    init(_ list: String) {
        patterns = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// None given: no tools, so a model-only agent needs no registry at all.
    var isEmpty: Bool { patterns.isEmpty }

    func allows(_ name: String) -> Bool {
        patterns.contains { Self.glob($0, matches: name) }
    }

    /// The registry's tools this filter allows, in the registry's order, each once.
    func select(_ registry: [Agentos_V1_ToolInfo]) -> [ModelTool] {
        var seen = Set<String>()
        return registry.filter { allows($0.name) && seen.insert($0.name).inserted }.map(ModelTool.init)
    }

    /// How many patterns match none of `names` (a typo, or a tool not installed).
    func unmatched(by names: [String]) -> Int {
        patterns.filter { pattern in !names.contains { Self.glob(pattern, matches: $0) } }.count
    }

    /// `*` matches any run of characters (dots included, so `file.*` and `*`
    /// work as expected); everything else matches itself. Greedy with one
    /// backtrack point, linear in practice.
    static func glob(_ pattern: String, matches name: String) -> Bool {
        let pattern = Array(pattern.unicodeScalars)
        let name = Array(name.unicodeScalars)
        var p = 0
        var n = 0
        var star: Int?
        var resume = 0
        while n < name.count {
            if p < pattern.count && pattern[p] == "*" {
                star = p
                resume = n
                p += 1
            } else if p < pattern.count && pattern[p] == name[n] {
                p += 1
                n += 1
            } else if let star {
                // Let the last star swallow one more character and try again.
                p = star + 1
                resume += 1
                n = resume
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}
