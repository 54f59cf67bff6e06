// A YAML mapping with a known set of keys: unknown keys are reported once,
// with a suggestion, and the known ones are read by name.

import Yams

struct MappingReader {
    let node: Node
    let path: FieldPath
    let values: ValueReader
    private var entries: [String: (key: Node, value: Node)] = [:]

    var log: ProblemLog { values.log }
    var mark: Mark? { node.mark }

    /// nil (after a report) when `node` is not a mapping. `elsewhere` names
    /// where a key that is unknown here does belong ("sandbox:"), for a
    /// better hint than a spelling suggestion.
    init?(_ node: Node, _ path: FieldPath, values: ValueReader, expected: String, allowed: [String],
          elsewhere: [String: String] = [:]) {
        guard case .mapping(let mapping) = node else {
            values.log.report(node.mark, path, "expected \(expected), found \(node.found)")
            return nil
        }
        self.node = node
        self.path = path
        self.values = values
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key, !key.isNull else {
                values.log.report(key.mark, path, "expected a key (text), found \(key.found)")
                continue
            }
            let name = scalar.string
            guard allowed.contains(name) else {
                let hint = elsewhere[name].map { " ('\(name)' belongs in \($0))" }
                    ?? Suggestions.hint(for: name, among: allowed)
                values.log.report(key.mark, path.key(name), "unknown key '\(name)'" + hint)
                continue
            }
            entries[name] = (key, value)
        }
    }

    /// The keys present, in no particular order.
    var keys: [String] { Array(entries.keys) }

    func has(_ key: String) -> Bool { entries[key] != nil }

    func value(_ key: String) -> Node? { entries[key]?.value }

    func keyMark(_ key: String) -> Mark? { entries[key]?.key.mark }

    /// The mark of the value of `key`, else of the mapping itself.
    func markOf(_ key: String) -> Mark? { entries[key]?.value.mark ?? node.mark }

    func text(_ key: String) -> String? {
        value(key).flatMap { values.text($0, path.key(key)) }
    }

    func integer(_ key: String) -> Int? {
        value(key).flatMap { values.integer($0, path.key(key)) }
    }

    func number(_ key: String) -> Double? {
        value(key).flatMap { values.number($0, path.key(key)) }
    }

    func boolean(_ key: String) -> Bool? {
        value(key).flatMap { values.boolean($0, path.key(key)) }
    }

    func duration(_ key: String) -> Int64? {
        value(key).flatMap { values.duration($0, path.key(key)) }
    }

    func size(_ key: String) -> Int? {
        value(key).flatMap { values.size($0, path.key(key)) }
    }

    func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ type: T.Type) -> T? where T.RawValue == String {
        value(key).flatMap { values.choice($0, path.key(key), type) }
    }

    func texts(_ key: String) -> [String]? {
        value(key).flatMap { values.texts($0, path.key(key)) }
    }

    /// The text items of a list with their nodes and paths, for checks that
    /// report on one item; items of the wrong type are reported and left out.
    func textItems(_ key: String) -> [(text: String, mark: Mark?, path: FieldPath)] {
        guard let items = list(key, of: "text items") else { return [] }
        return items.enumerated().compactMap { index, item in
            let path = path.key(key).index(index)
            return values.text(item, path).map { ($0, item.mark, path) }
        }
    }

    func list(_ key: String, of what: String) -> [Node]? {
        value(key).flatMap { values.list($0, path.key(key), of: what) }
    }

    /// A nested mapping with its own allowed keys.
    func mapping(_ key: String, expected: String, allowed: [String], elsewhere: [String: String] = [:]) -> MappingReader? {
        value(key).flatMap {
            MappingReader($0, path.key(key), values: values, expected: expected, allowed: allowed, elsewhere: elsewhere)
        }
    }

    /// Reports a required key that is missing, at the mapping's position.
    func require(_ key: String, _ message: String) {
        if !has(key) { log.report(node.mark, path.key(key), message) }
    }
}
