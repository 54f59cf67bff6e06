/// The tools every kernel has, and the limits their results keep to
/// (PROTOCOL.md §5.17 documents each).
public enum BuiltinTools {
    /// file.read returns at most this much unless `max_bytes` asks for less.
    public static let readLimit = 1 << 20
    /// file.write accepts at most this much content.
    public static let writeLimit = 4 << 20
    /// file.list returns at most this many entries unless `max_entries` asks for fewer.
    public static let listLimit = 10_000
    /// shell.execute keeps at most this much of stdout and of stderr each.
    public static let outputLimit = 64 << 10
    /// shell.execute's timeout when neither the call nor the grant sets one.
    public static let defaultTimeoutMilliseconds: Int64 = 30_000
    public static let maximumTimeoutMilliseconds: Int64 = 3_600_000
    static let pathLimit = 4_096

    public static let fileRead = ToolDefinition(
        name: "file.read", summary: "Read a file (UTF-8 text, or base64 for other bytes).", kind: .file, action: "read",
        parameters: ParameterSchema([
            .init("path", .string(maxBytes: pathLimit), required: true, "Absolute path of the file."),
            .init("max_bytes", .integer(minimum: 0, maximum: Int64(readLimit)),
                  "Read at most this many bytes (default and most: \(readLimit)); the result says if the file was longer."),
        ]))

    public static let fileWrite = ToolDefinition(
        name: "file.write", summary: "Write a file: create it, overwrite it or append to it.", kind: .file, action: "write",
        parameters: ParameterSchema([
            .init("path", .string(maxBytes: pathLimit), required: true, "Absolute path of the file."),
            .init("content", .string(maxBytes: writeLimit, nonEmpty: false), "The text to write (UTF-8)."),
            .init("content_base64", .string(maxBytes: writeLimit * 4 / 3 + 4, nonEmpty: false), "The bytes to write, base64."),
            .init("mode", .choice(["create", "overwrite", "append"]),
                  "create (the default) fails if the file exists; overwrite replaces it; append adds to its end."),
        ], exactlyOneOf: ["content", "content_base64"]))

    public static let fileList = ToolDefinition(
        name: "file.list", summary: "List a directory: each entry's name, type and size.", kind: .file, action: "list",
        parameters: ParameterSchema([
            .init("path", .string(maxBytes: pathLimit), required: true, "Absolute path of the directory."),
            .init("max_entries", .integer(minimum: 1, maximum: Int64(listLimit)),
                  "List at most this many entries, in name order (default and most: \(listLimit))."),
        ]))

    public static let shellExecute = ToolDefinition(
        name: "shell.execute",
        summary: "Run a command in a fresh confined child with no network: `command` through /bin/sh -c, or `argv`. "
            + "Only the programs the capability allows can be exec'd.",
        kind: .shell, action: "execute",
        parameters: ParameterSchema([
            .init("command", .string(maxBytes: 64 << 10), "A command line for /bin/sh -c (it starts in a private empty dir)."),
            .init("argv", .strings(maxItems: 1_024, maxBytes: 64 << 10), "A program (absolute, or found on PATH) and its arguments."),
            .init("timeout_ms", .integer(minimum: 1, maximum: maximumTimeoutMilliseconds),
                  "Kill it after this long (default \(defaultTimeoutMilliseconds) ms; never longer than the capability's timeout)."),
        ], exactlyOneOf: ["command", "argv"]))

    public static let agentSpawn = ToolDefinition(
        name: "agent.spawn",
        summary: "Start a child agent under a dynamic supervisor (a policy's pool), handing it a part of your own capabilities.",
        kind: .agent, action: "spawn",
        parameters: ParameterSchema([
            .init("supervisor", .string(maxBytes: 512), required: true,
                  "The dynamic supervisor's path, POLICY/PATH (e.g. team/workers); checked as agent spawn on it."),
            .init("args", .strings(maxItems: 256, maxBytes: 64 << 10, minItems: 0), "Arguments added to its template's."),
            .init("capabilities", .strings(maxItems: 64, maxBytes: 4_096, minItems: 0),
                  "Capability URIs to hand the child, each within one you hold (narrower resource, fewer actions, tighter constraints)."),
        ]))

    public static let httpFetch = ToolDefinition(
        name: "http.fetch",
        summary: "Fetch a URL (http or https), done by the kernel; every redirect is checked before it is followed.",
        kind: .http, action: "request",
        parameters: ParameterSchema([
            .init("url", .string(maxBytes: 8_192), required: true, "The URL; checked as http METHOD on host:port/path."),
            .init("method", .choice(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]), "The method (default GET)."),
            .init("headers", .strings(maxItems: 64, maxBytes: 8_192, minItems: 0), "Request headers, each 'Name: value'."),
            .init("body", .string(maxBytes: writeLimit, nonEmpty: false), "The request body (UTF-8)."),
            .init("max_bytes", .integer(minimum: 0, maximum: Int64(readLimit * 4)),
                  "Keep at most this much of the response body (default \(readLimit)); the result says if it was cut."),
            .init("timeout_ms", .integer(minimum: 1, maximum: 300_000),
                  "The whole fetch's time limit (default 30000; never longer than the grant's timeout)."),
        ]))

    public static let all: [ToolDefinition] = [fileRead, fileWrite, fileList, shellExecute, agentSpawn, httpFetch]
}
