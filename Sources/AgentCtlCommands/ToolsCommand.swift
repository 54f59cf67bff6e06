import AgentOSProtocol
import ArgumentParser
import Foundation

/// `agentctl tools`: the kernel's tool registry.
struct ToolsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tools",
        abstract: "The tools agents can call: name, the capability a call needs, what it does.",
        discussion: """
            An agent calls a tool over its socket (tool_call); the kernel checks the call's \
            arguments against the tool's JSON Schema, checks the agent's capabilities (KIND ACTION \
            on the resource the call names), waits for `agentctl approve` if the grant says \
            approve=operator, and runs the tool as its own confined child. Every call is an event \
            and an audit record.

            Examples:
              agentctl tools
              agentctl tools --schema file.read      # the JSON Schema of its arguments
              agentctl tools --json
            """)

    @Option(name: .long, help: ArgumentHelp("Print only this tool's JSON Schema.", valueName: "tool"))
    var schema: String?
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        guard case .tools(let list) = try connection.withKernel({ try $0.call(.tools(Agentos_V1_ToolListRequest())) }) else {
            throw unexpectedResponse("tools")
        }
        if let schema {
            guard let tool = list.tools.first(where: { $0.name == schema }) else {
                Output.error("no tool '\(schema)' (agentctl tools lists them)")
                throw ExitCode(1)
            }
            Output.line(tool.parametersSchema)
            return
        }
        if output.json {
            Output.json(list.tools.map(ToolJSON.init))
            return
        }
        Output.table(["TOOL", "NEEDS", "SOURCE", "DESCRIPTION"], list.tools.map { tool in
            [tool.name, "\(tool.capabilityKind) \(tool.action)", tool.source, tool.description_p]
        })
    }
}

struct ToolJSON: Encodable {
    let name: String
    let description: String
    let capabilityKind: String
    let action: String
    let source: String
    let parametersSchema: String

    init(_ tool: Agentos_V1_ToolInfo) {
        name = tool.name
        description = tool.description_p
        capabilityKind = tool.capabilityKind
        action = tool.action
        source = tool.source
        parametersSchema = tool.parametersSchema
    }

    enum CodingKeys: String, CodingKey {
        case name, description, action, source
        case capabilityKind = "capability_kind"
        case parametersSchema = "parameters_schema"
    }
}
