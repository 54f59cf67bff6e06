// Reading typed values out of YAML nodes, reporting what was expected
// where the node holds something else. Every reader returns nil after a
// report, so the caller simply moves on to the next field.

import AgentOSProtocol
import Yams

extension Node {
    var isNull: Bool {
        if case .scalar = self { return tag.rawValue == Tag.Name.null.rawValue }
        return false
    }

    /// What the node is, for "expected X, found Y".
    var found: String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if isNull { return "nothing (null)" }
            return "'\(scalar.string.count > 40 ? String(scalar.string.prefix(40)) + "..." : scalar.string)'"
        }
    }
}

struct ValueReader {
    let log: ProblemLog

    private func wrong(_ node: Node, _ path: FieldPath, _ expected: String) {
        log.report(node.mark, path, "expected \(expected), found \(node.found)")
    }

    /// Any non-null scalar, as written (`2` and `"2"` are both "2").
    func text(_ node: Node, _ path: FieldPath, expected: String = "text") -> String? {
        guard case .scalar(let scalar) = node, !node.isNull else {
            wrong(node, path, expected)
            return nil
        }
        return scalar.string
    }

    /// A whole number, negative ones included (range rules belong to the caller).
    func integer(_ node: Node, _ path: FieldPath) -> Int? {
        guard case .scalar(let scalar) = node, !node.isNull, let value = Int(scalar.string) else {
            wrong(node, path, "a whole number")
            return nil
        }
        return value
    }

    func number(_ node: Node, _ path: FieldPath) -> Double? {
        guard case .scalar(let scalar) = node, !node.isNull, let value = Double(scalar.string), value.isFinite else {
            wrong(node, path, "a number")
            return nil
        }
        return value
    }

    func boolean(_ node: Node, _ path: FieldPath) -> Bool? {
        guard node.tag.rawValue == Tag.Name.bool.rawValue, let value = node.bool else {
            wrong(node, path, "true or false")
            return nil
        }
        return value
    }

    /// Milliseconds in `250ms`, `5s`, `2m`, `1h` (a bare number is seconds).
    /// A leading '-' is kept, so that rules like "shutdown must not be
    /// negative" can say so instead of "not a duration".
    func duration(_ node: Node, _ path: FieldPath) -> Int64? {
        guard let written = text(node, path, expected: "a duration like 250ms, 5s, 2m or 1h") else { return nil }
        let negative = written.hasPrefix("-")
        do {
            let magnitude = try Units.milliseconds(negative ? String(written.dropFirst()) : written)
            return negative ? -magnitude : magnitude
        } catch {
            log.report(node.mark, path, error.description)
            return nil
        }
    }

    /// Bytes in `4096`, `64K`, `256M`, `1G`; negative sizes are reported here.
    func size(_ node: Node, _ path: FieldPath) -> Int? {
        guard let written = text(node, path, expected: "a size like 64K, 256M or 1G") else { return nil }
        guard !written.hasPrefix("-") else {
            log.report(node.mark, path, "must not be negative, not \(written)")
            return nil
        }
        do {
            return try Units.bytes(written)
        } catch {
            log.report(node.mark, path, error.description)
            return nil
        }
    }

    /// One of `T`'s raw values, with a suggestion for a near miss.
    func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ path: FieldPath, _ type: T.Type) -> T?
    where T.RawValue == String {
        let names = T.allCases.map(\.rawValue)
        guard let written = text(node, path, expected: "one of " + names.joined(separator: ", ")) else { return nil }
        if let value = T(rawValue: written) { return value }
        log.report(node.mark, path, "unknown value '\(written)': use one of \(names.joined(separator: ", "))"
            + Suggestions.hint(for: written, among: names))
        return nil
    }

    func list(_ node: Node, _ path: FieldPath, of what: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            wrong(node, path, "a list of \(what)")
            return nil
        }
        return Array(sequence)
    }

    /// A list of text items; items of the wrong type are reported and left out.
    func texts(_ node: Node, _ path: FieldPath) -> [String]? {
        guard let items = list(node, path, of: "text items") else { return nil }
        return items.enumerated().compactMap { index, item in text(item, path.index(index)) }
    }
}
