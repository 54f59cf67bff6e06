/// A resource pattern: segments joined by a separator ("/" for paths, "."
/// for hosts and tool names, ":" for models). In a segment `*` matches any
/// run of characters (none included) without the separator; a segment that
/// is exactly `**` matches any number of whole segments, none included.
/// There is no escaping: `*` is always a wildcard.
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    public let separator: Character
    /// The segments as scalars, made once: a check compares many patterns.
    let scalarSegments: [[Unicode.Scalar]]

    public init(_ pattern: String, separator: Character) {
        self.pattern = pattern
        self.separator = separator
        self.scalarSegments = Self.split(pattern, at: separator)
    }

    /// Splits at the separator scalar, not at grapheme clusters: a "/"
    /// followed by a combining mark is still a separator (as the kernel's
    /// path lookup sees it), so `*` can never span two segments.
    static func split(_ text: String, at separator: Character) -> [[Unicode.Scalar]] {
        let mark = separator.unicodeScalars.first ?? "/"
        var pieces: [[Unicode.Scalar]] = [[]]
        for scalar in text.unicodeScalars {
            if scalar == mark { pieces.append([]) } else { pieces[pieces.count - 1].append(scalar) }
        }
        return pieces
    }

    public static func == (lhs: Glob, rhs: Glob) -> Bool {
        lhs.pattern == rhs.pattern && lhs.separator == rhs.separator
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(pattern)
        hasher.combine(separator)
    }

    public var description: String { pattern }

    /// The pattern up to its first segment with a wildcard: for a file
    /// pattern the deepest dir (or the file) everything it covers is in,
    /// e.g. `/srv/data` for `/srv/data/**/*.txt`.
    public var literalPrefix: String {
        let segments = pattern.split(separator: separator, omittingEmptySubsequences: false)
        let literal = segments.prefix { !$0.contains("*") }
        let joined = literal.joined(separator: String(separator))
        return joined.isEmpty && pattern.hasPrefix(String(separator)) ? String(separator) : joined
    }

    /// A concrete name split the way patterns with `separator` are, to
    /// match against many patterns without splitting it again.
    public struct Name: Sendable {
        let segments: [[Unicode.Scalar]]

        public init(_ text: String, separator: Character) {
            segments = Glob.split(text, at: separator)
        }

        /// Whether a segment is empty, "." or "..": never part of a name a
        /// check should match (a path is canonical before it gets here).
        var hasDotOrEmptySegment: Bool {
            segments.contains { $0.isEmpty || $0 == ["."] || $0 == [".", "."] }
        }
    }

    /// Whether the concrete name `text` (split the same way) is matched.
    public func matches(_ text: String) -> Bool {
        matches(Name(text, separator: separator))
    }

    public func matches(_ name: Name) -> Bool {
        Self.covers(scalarSegments, name.segments, concrete: true)
    }

    /// Whether every name `other` matches is matched by this pattern too
    /// (the test for a narrower delegation). A `*` or `**` in `other` can
    /// only be covered by a `*` or `**` here.
    public func covers(_ other: Glob) -> Bool {
        separator == other.separator && Self.covers(scalarSegments, other.scalarSegments, concrete: false)
    }

    private static let doubleStar: [Unicode.Scalar] = ["*", "*"]

    /// Segment-wise matching: `**` here absorbs any run of `text`'s
    /// segments; in `text`, a `**` (unless `concrete`) needs a `**` here.
    static func covers(_ pattern: [[Unicode.Scalar]], _ text: [[Unicode.Scalar]], concrete: Bool) -> Bool {
        // Without `**`, segment i matches segment i: no table needed.
        if !pattern.contains(doubleStar) {
            guard pattern.count == text.count else { return false }
            for (segment, piece) in zip(pattern, text) {
                if !concrete && piece == doubleStar { return false }
                if !wildcard(segment, matches: piece) { return false }
            }
            return true
        }
        // reachable[j]: the pattern so far can match text[..<j].
        var reachable = [Bool](repeating: false, count: text.count + 1)
        reachable[0] = true
        var next = reachable
        for segment in pattern {
            for j in 0...text.count { next[j] = false }
            if segment == doubleStar {
                var any = false
                for j in 0...text.count {
                    any = any || reachable[j]
                    next[j] = any
                }
            } else {
                var anyReachable = false
                for j in 0..<text.count where reachable[j] {
                    let piece = text[j]
                    if !concrete && piece == doubleStar { continue }
                    if wildcard(segment, matches: piece) {
                        next[j + 1] = true
                        anyReachable = true
                    }
                }
                if !anyReachable { return false }
            }
            swap(&reachable, &next)
        }
        return reachable[text.count]
    }

    /// `*`-wildcard matching of one segment. A `*` in `text` is an ordinary
    /// character, so only a `*` of the pattern matches it: that makes the
    /// same test serve for covering another pattern.
    static func wildcard(_ p: [Unicode.Scalar], matches t: [Unicode.Scalar]) -> Bool {
        if !p.contains("*") { return p == t }
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
}
