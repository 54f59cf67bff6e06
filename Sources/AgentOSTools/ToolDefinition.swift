import AgentOSCapabilities

/// A named tool: what it does, its parameters and the capability a call
/// needs. Built-in tools carry a `ParameterSchema` the kernel checks calls
/// against; a tool from an MCP server carries the server's own schema and
/// the server checks its arguments.
public struct ToolDefinition: Sendable {
    public let name: String
    public let summary: String
    /// The capability kind and action a call is checked against.
    public let kind: Capability.Kind
    public let action: String
    public let parameters: ParameterSchema?
    /// The JSON Schema of the arguments object.
    public let schemaJSON: String
    /// "built-in" or "mcp:SERVER".
    public let source: String
    /// For a tool of an MCP server: the server and the tool's own name there.
    public let mcpServer: String?
    public let mcpTool: String?

    public init(name: String, summary: String, kind: Capability.Kind, action: String, parameters: ParameterSchema) {
        self.name = name
        self.summary = summary
        self.kind = kind
        self.action = action
        self.parameters = parameters
        self.schemaJSON = parameters.jsonSchema
        self.source = "built-in"
        self.mcpServer = nil
        self.mcpTool = nil
    }

    /// A tool of MCP server `server`: `mcp.SERVER.TOOL`, checked as
    /// `tool call` on that name; the server checks its arguments.
    public init(mcpServer server: String, tool: String, summary: String, schemaJSON: String) {
        self.name = MCPNames.toolName(server: server, tool: tool)
        self.summary = summary
        self.kind = .tool
        self.action = "call"
        self.parameters = nil
        self.schemaJSON = schemaJSON
        self.source = "mcp:" + server
        self.mcpServer = server
        self.mcpTool = tool
    }

    /// The checked arguments of a call (a tool without a `ParameterSchema`
    /// gets them only parsed: it must be a JSON object).
    public func validate(_ json: String) throws(ToolError) -> ToolArguments {
        if let parameters { return try parameters.validate(json: json, tool: name) }
        guard case .object = JSONValue.parse(json.isEmpty ? "{}" : json) else {
            throw ToolError(.invalidArguments, "\(name): the arguments must be a JSON object")
        }
        return ToolArguments([:])
    }
}
