/// How durations and sizes are written on command lines (and, later, in
/// policy files): `500ms`, `5s`, `2m`, `1h`; `512`, `64K`, `16M`, `1G`
/// (binary multiples, an optional `B`/`iB` suffix).
public enum Units {
    public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        public let description: String
    }

    /// Milliseconds in a duration; a bare number means seconds.
    public static func milliseconds(_ text: String) throws(ParseError) -> Int64 {
        let trimmed = text.trimmedASCII.lowercased()
        let units: [(String, Double)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        var number = Substring(trimmed)
        var scale = 1_000.0
        for (suffix, value) in units where trimmed.hasSuffix(suffix) {
            let candidate = trimmed.dropLast(suffix.count)
            if Double(candidate) != nil {
                number = candidate
                scale = value
                break
            }
        }
        guard let value = Double(number), value.isFinite, value >= 0 else {
            throw ParseError(description: "invalid duration '\(text)': use e.g. 500ms, 5s, 2m, 1h or 7d")
        }
        let result = value * scale
        guard result < Double(Int64.max / 2) else {
            throw ParseError(description: "duration '\(text)' is too large")
        }
        return Int64(result.rounded())
    }

    /// Bytes in a size: `16M` is 16 MiB.
    public static func bytes(_ text: String) throws(ParseError) -> Int {
        var trimmed = text.trimmedASCII.uppercased()
        if trimmed.hasSuffix("IB") { trimmed.removeLast(2) } else if trimmed.hasSuffix("B") { trimmed.removeLast() }
        let multipliers: [Character: Double] = ["K": 1_024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        var scale = 1.0
        if let last = trimmed.last, let multiplier = multipliers[last] {
            scale = multiplier
            trimmed.removeLast()
        }
        guard let value = Double(trimmed), value.isFinite, value >= 0 else {
            throw ParseError(description: "invalid size '\(text)': use e.g. 4096, 64K, 16M or 1G")
        }
        let result = value * scale
        guard result < Double(Int.max / 2) else { throw ParseError(description: "size '\(text)' is too large") }
        return Int(result.rounded())
    }
}

extension String {
    var trimmedASCII: String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view.removeFirst() }
        while let last = view.last, last == " " || last == "\t" { view.removeLast() }
        return String(view)
    }
}
