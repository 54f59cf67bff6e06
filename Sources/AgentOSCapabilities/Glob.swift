/// A resource pattern: segments joined by a separator ("/" for paths, "."
/// for hosts and tool names, ":" for models). In a segment `*` matches any
/// run of characters (none included) without the separator; a segment that
/// is exactly `**` matches any number of whole segments, none included.
/// There is no escaping: `*` is always a wildcard.
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    public let separator: Character
    let segments: [Substring]

    public init(_ pattern: String, separator: Character) {
        self.pattern = pattern
        self.separator = separator
        self.segments = pattern.split(separator: separator, omittingEmptySubsequences: false)
    }

    public var description: String { pattern }

    /// Whether the concrete name `text` (split the same way) is matched.
    public func matches(_ text: String) -> Bool {
        Self.covers(segments, text.split(separator: separator, omittingEmptySubsequences: false), concrete: true)
    }

    /// Whether every name `other` matches is matched by this pattern too
    /// (the test for a narrower delegation). A `*` or `**` in `other` can
    /// only be covered by a `*` or `**` here.
    public func covers(_ other: Glob) -> Bool {
        separator == other.separator && Self.covers(segments, other.segments, concrete: false)
    }

    /// Segment-wise matching: `**` here absorbs any run of `text`'s
    /// segments; in `text`, a `**` (unless `concrete`) needs a `**` here.
    static func covers(_ pattern: [Substring], _ text: [Substring], concrete: Bool) -> Bool {
        // reachable[j]: pattern[..<i] can match text[..<j].
        var reachable = [Bool](repeating: false, count: text.count + 1)
        reachable[0] = true
        for segment in pattern {
            var next = [Bool](repeating: false, count: text.count + 1)
            if segment == "**" {
                var any = false
                for j in 0...text.count {
                    any = any || reachable[j]
                    next[j] = any
                }
            } else {
                for j in 0..<text.count where reachable[j] {
                    let piece = text[j]
                    if !concrete && piece == "**" { continue }
                    if wildcard(segment, matches: piece) { next[j + 1] = true }
                }
            }
            reachable = next
        }
        return reachable[text.count]
    }

    /// `*`-wildcard matching of one segment. A `*` in `text` is an ordinary
    /// character, so only a `*` of the pattern matches it: that makes the
    /// same test serve for covering another pattern.
    static func wildcard(_ pattern: Substring, matches text: Substring) -> Bool {
        let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
        var pi = 0, ti = 0, starP = -1, starT = 0
        while ti < t.count {
            if pi < p.count && p[pi] != "*" && p[pi] == t[ti] {
                pi += 1
                ti += 1
            } else if pi < p.count && p[pi] == "*" {
                starP = pi
                starT = ti
                pi += 1
            } else if starP >= 0 {
                pi = starP + 1
                starT += 1
                ti = starT
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    /// Whether the pattern has any wildcard at all.
    public var isLiteral: Bool { !pattern.contains("*") }
}
