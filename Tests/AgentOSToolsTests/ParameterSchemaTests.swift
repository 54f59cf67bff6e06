import AgentOSTools
import Testing

@Suite("Tool parameters: what a call's arguments may hold")
struct ParameterSchemaTests {
    @Test("valid arguments come through typed")
    func validArguments() throws {
        let arguments = try BuiltinTools.fileRead.validate(#"{"path": "/srv/a.txt", "max_bytes": 10}"#)
        #expect(arguments.string("path") == "/srv/a.txt")
        #expect(arguments.integer("max_bytes") == 10)
        let shell = try BuiltinTools.shellExecute.validate(#"{"argv": ["/bin/echo", "hi"], "timeout_ms": 500}"#)
        #expect(shell.strings("argv") == ["/bin/echo", "hi"])
    }

    @Test("each bad input is refused with the argument it is about", arguments: [
        ("", "missing argument 'path'"),
        ("[1]", "must be a JSON object"),
        ("{not json", "not valid JSON"),
        (#"{"path": 3}"#, "'path' must be a string"),
        (#"{"path": ""}"#, "'path' must not be empty"),
        (#"{"path": "/a", "extra": 1}"#, "unknown argument 'extra'"),
        (#"{"path": "/a", "max_bytes": true}"#, "'max_bytes' must be an integer"),
        (#"{"path": "/a", "max_bytes": 1.5}"#, "'max_bytes' must be an integer"),
        (#"{"path": "/a", "max_bytes": -1}"#, "'max_bytes' must be from 0"),
        (#"{"path": "/a", "max_bytes": 99999999999}"#, "'max_bytes' must be from 0"),
    ])
    func refused(json: String, problem: String) {
        #expect {
            _ = try BuiltinTools.fileRead.validate(json)
        } throws: { error in
            guard let error = error as? ToolError else { return false }
            return error.code == .invalidArguments && error.message.contains(problem) && error.message.hasPrefix("file.read: ")
        }
    }

    @Test("exactly one of content and content_base64; mode is one of three")
    func writeArguments() throws {
        _ = try BuiltinTools.fileWrite.validate(#"{"path": "/a", "content": ""}"#)
        for json in [#"{"path": "/a"}"#, #"{"path": "/a", "content": "x", "content_base64": "eA=="}"#,
                     #"{"path": "/a", "content": "x", "mode": "truncate"}"#] {
            #expect(throws: ToolError.self) { _ = try BuiltinTools.fileWrite.validate(json) }
        }
        #expect(throws: ToolError.self) { _ = try BuiltinTools.shellExecute.validate(#"{"argv": []}"#) }
        #expect(throws: ToolError.self) { _ = try BuiltinTools.shellExecute.validate(#"{"argv": [1]}"#) }
        #expect(throws: ToolError.self) {
            _ = try BuiltinTools.shellExecute.validate(#"{"argv": ["/bin/true"], "command": "true"}"#)
        }
    }

    @Test("an oversized string is refused before anything is decoded from it")
    func oversized() {
        let big = String(repeating: "a", count: BuiltinTools.writeLimit + 1)
        #expect(throws: ToolError.self) { _ = try BuiltinTools.fileWrite.validate(#"{"path": "/a", "content": "\#(big)"}"#) }
    }

    @Test("the JSON Schema names every parameter, its bounds and what is required")
    func schema() throws {
        let schema = try #require(JSONValue.parse(BuiltinTools.fileWrite.schemaJSON))
        guard case .object(let object) = schema, case .object(let properties)? = object["properties"] else {
            Issue.record("not an object schema")
            return
        }
        #expect(Set(properties.keys) == ["path", "content", "content_base64", "mode"])
        #expect(object["additionalProperties"] == .bool(false))
        #expect(object["required"] == .array([.string("path")]))
        #expect(object["oneOf"] != nil)
        for tool in BuiltinTools.all { #expect(JSONValue.parse(tool.schemaJSON) != nil, "\(tool.name)") }
    }

    @Test("JSON values: true is not 1, 1 is not true, keys come out sorted")
    func strictJSON() {
        #expect(JSONValue.parse("true") == .bool(true))
        #expect(JSONValue.parse("1") == .integer(1))
        #expect(JSONValue.parse("1.5") == .number(1.5))
        #expect(JSONValue.parse(#"{"b": 1, "a": [null, "x"]}"#)?.text == #"{"a":[null,"x"],"b":1}"#)
    }
}
