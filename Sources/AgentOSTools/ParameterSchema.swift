/// The parameters of a built-in tool: what a call's arguments object may
/// hold. One description gives both the JSON Schema a model (or an editor)
/// reads and the check the kernel makes before anything runs, so the two
/// cannot disagree.
public struct ParameterSchema: Sendable {
    public enum ValueType: Sendable {
        /// A string of at most `maxBytes` UTF-8 bytes (`nonEmpty`: at least one).
        case string(maxBytes: Int, nonEmpty: Bool = true)
        /// One of these strings.
        case choice([String])
        case integer(minimum: Int64, maximum: Int64)
        case boolean
        /// Strings, `minItems` to `maxItems` of at most `maxBytes` bytes each.
        case strings(maxItems: Int, maxBytes: Int, minItems: Int = 1)
    }

    public struct Property: Sendable {
        public let name: String
        public let type: ValueType
        public let summary: String
        public let required: Bool

        public init(_ name: String, _ type: ValueType, required: Bool = false, _ summary: String) {
            self.name = name
            self.type = type
            self.summary = summary
            self.required = required
        }
    }

    public let properties: [Property]
    /// Names of which exactly one must be given (e.g. `command` or `argv`).
    public let exactlyOneOf: [String]

    public init(_ properties: [Property], exactlyOneOf: [String] = []) {
        self.properties = properties
        self.exactlyOneOf = exactlyOneOf
    }

    // MARK: JSON Schema

    /// The JSON Schema (draft 2020-12) of the arguments object, keys sorted.
    public var jsonSchema: String {
        var schema: [String: JSONValue] = [
            "$schema": .string("https://json-schema.org/draft/2020-12/schema"),
            "type": .string("object"),
            "additionalProperties": .bool(false),
            "properties": .object(Dictionary(uniqueKeysWithValues: properties.map { ($0.name, Self.schema(of: $0)) })),
        ]
        let required = properties.filter(\.required).map { JSONValue.string($0.name) }
        if !required.isEmpty { schema["required"] = .array(required) }
        if !exactlyOneOf.isEmpty {
            schema["oneOf"] = .array(exactlyOneOf.map { .object(["required": .array([.string($0)])]) })
        }
        return JSONValue.object(schema).text
    }

    private static func schema(of property: Property) -> JSONValue {
        var schema: [String: JSONValue] = ["description": .string(property.summary)]
        switch property.type {
        case .string(let maxBytes, let nonEmpty):
            schema["type"] = .string("string")
            schema["maxLength"] = .integer(Int64(maxBytes))
            if nonEmpty { schema["minLength"] = .integer(1) }
        case .choice(let values):
            schema["type"] = .string("string")
            schema["enum"] = .array(values.map { .string($0) })
        case .integer(let minimum, let maximum):
            schema["type"] = .string("integer")
            schema["minimum"] = .integer(minimum)
            schema["maximum"] = .integer(maximum)
        case .boolean:
            schema["type"] = .string("boolean")
        case .strings(let maxItems, let maxBytes, let minItems):
            schema["type"] = .string("array")
            schema["minItems"] = .integer(Int64(minItems))
            schema["maxItems"] = .integer(Int64(maxItems))
            schema["items"] = .object(["type": .string("string"), "maxLength": .integer(Int64(maxBytes))])
        }
        return .object(schema)
    }

    // MARK: Checking

    /// The arguments of a call, checked: a JSON object with only known
    /// properties, each of its type and within its bounds, every required
    /// one present. The first problem is the error, naming the property.
    public func validate(json: String, tool: String) throws(ToolError) -> ToolArguments {
        func invalid(_ problem: String) -> ToolError {
            ToolError(.invalidArguments, "\(tool): \(problem)")
        }
        guard let parsed = JSONValue.parse(json.isEmpty ? "{}" : json) else {
            throw invalid("the arguments are not valid JSON")
        }
        guard case .object(let object) = parsed else { throw invalid("the arguments must be a JSON object") }
        var values: [String: ToolArguments.Value] = [:]
        for (key, raw) in object.sorted(by: { $0.key < $1.key }) {
            guard let property = properties.first(where: { $0.name == key }) else {
                let known = properties.map(\.name).joined(separator: ", ")
                throw invalid("unknown argument '\(key)' (arguments: \(known))")
            }
            values[key] = try Self.value(raw, of: property, invalid)
        }
        for property in properties where property.required && values[property.name] == nil {
            throw invalid("missing argument '\(property.name)': \(property.summary)")
        }
        if !exactlyOneOf.isEmpty {
            let given = exactlyOneOf.filter { values[$0] != nil }
            if given.count != 1 {
                throw invalid("give exactly one of \(exactlyOneOf.map { "'\($0)'" }.joined(separator: " or "))")
            }
        }
        return ToolArguments(values)
    }

    private static func value(_ raw: JSONValue, of property: Property,
                              _ invalid: (String) -> ToolError) throws(ToolError) -> ToolArguments.Value {
        let name = property.name
        switch property.type {
        case .string(let maxBytes, let nonEmpty):
            guard case .string(let string) = raw else { throw invalid("'\(name)' must be a string") }
            if nonEmpty && string.isEmpty { throw invalid("'\(name)' must not be empty") }
            if string.utf8.count > maxBytes { throw invalid("'\(name)' is longer than \(maxBytes) bytes") }
            return .string(string)
        case .choice(let choices):
            guard case .string(let string) = raw, choices.contains(string) else {
                throw invalid("'\(name)' must be one of \(choices.joined(separator: ", "))")
            }
            return .string(string)
        case .integer(let minimum, let maximum):
            guard case .integer(let integer) = raw else { throw invalid("'\(name)' must be an integer") }
            guard integer >= minimum && integer <= maximum else {
                throw invalid("'\(name)' must be from \(minimum) to \(maximum)")
            }
            return .integer(integer)
        case .boolean:
            guard case .bool(let value) = raw else { throw invalid("'\(name)' must be true or false") }
            return .boolean(value)
        case .strings(let maxItems, let maxBytes, let minItems):
            guard case .array(let array) = raw, array.count >= minItems else {
                throw invalid(minItems > 0 ? "'\(name)' must be a non-empty array of strings" : "'\(name)' must be an array of strings")
            }
            if array.count > maxItems { throw invalid("'\(name)' has more than \(maxItems) items") }
            var strings: [String] = []
            for item in array {
                guard case .string(let string) = item else { throw invalid("'\(name)' must hold only strings") }
                if string.utf8.count > maxBytes { throw invalid("an item of '\(name)' is longer than \(maxBytes) bytes") }
                strings.append(string)
            }
            return .strings(strings)
        }
    }
}

/// A call's arguments once they passed their tool's `ParameterSchema`.
public struct ToolArguments: Sendable {
    public enum Value: Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case boolean(Bool)
        case strings([String])
    }

    public let values: [String: Value]

    public init(_ values: [String: Value]) {
        self.values = values
    }

    public func string(_ name: String) -> String? {
        if case .string(let value) = values[name] { return value }
        return nil
    }

    public func integer(_ name: String) -> Int64? {
        if case .integer(let value) = values[name] { return value }
        return nil
    }

    public func boolean(_ name: String) -> Bool? {
        if case .boolean(let value) = values[name] { return value }
        return nil
    }

    public func strings(_ name: String) -> [String]? {
        if case .strings(let value) = values[name] { return value }
        return nil
    }
}
