import AgentOSMCP
import AgentOSProtocol
import AgentOSStore
import AgentOSTools
import Logging
import NIOCore
import Synchronization

/// The MCP servers running as agents (`mcp_server:` in a policy, `agentctl
/// run --mcp-server`): a client session with each over its stdio socket,
/// and its tools in the registry as `mcp.SERVER.TOOL` while it runs. A
/// server that exits loses its tools; its supervisor restarts it, and the
/// new one's session lists them again.
final class MCPServers: Sendable {
    private struct Live {
        let agentID: String
        let session: ServerSession
    }

    private let registry: ToolRegistry
    private let events: EventHub
    private let logger: Logger
    private let servers = Mutex<[String: Live]>([:])

    /// How long a server has for its handshake and tool list.
    static let startTimeout: Duration = .seconds(30)
    /// A call's time limit when its grant sets none.
    static let callTimeoutMilliseconds: Int64 = 60_000

    init(registry: ToolRegistry, events: EventHub, logger: Logger) {
        self.registry = registry
        self.events = events
        self.logger = logger
    }

    /// Starts the session with `server` over `fd`, the kernel's end of its
    /// stdio socket; returns how to end it (when the agent ends).
    func attach(fd: Int32, agent: AgentRecord, server: String, group: any EventLoopGroup) async -> (@Sendable () -> Void)? {
        let session: ServerSession
        do {
            session = try await ServerSession.start(fd: fd, group: group, clientVersion: AgentOSVersion.release,
                                                    timeout: Self.startTimeout, logger: logger)
        } catch {
            _ = try? events.record("mcp.failed", agentID: agent.id,
                                   "MCP server \(server) (\(agent.name)) gave no working session: \(error)",
                                   data: ["server": server, "reason": "\(error)"])
            return nil
        }
        let tools = await session.tools
        let skipped = await session.skipped
        let definitions = tools.map {
            ToolDefinition(mcpServer: server, tool: $0.name, summary: $0.summary, schemaJSON: $0.inputSchemaJSON)
        }
        let registered = servers.withLock { servers -> Bool in
            guard servers[server] == nil, registry.register(server: server, definitions) else { return false }
            servers[server] = Live(agentID: agent.id, session: session)
            return true
        }
        guard registered else {
            _ = try? events.record("mcp.failed", agentID: agent.id,
                                   "MCP server \(server) (\(agent.name)): another running server has that name; its tools are not offered",
                                   data: ["server": server, "reason": "name in use"])
            await session.close()
            return nil
        }
        let serverInfo = await "\(session.serverName) \(session.serverVersion)"
        _ = try? events.record("mcp.ready", agentID: agent.id,
                               "MCP server \(server) (\(serverInfo)) offers \(tools.count) tool(s): "
                                   + tools.map { MCPNames.toolName(server: server, tool: $0.name) }.joined(separator: ", "),
                               data: ["server": server, "tools": String(tools.count), "skipped": String(skipped)])
        if skipped > 0 {
            _ = try? events.record("mcp.skipped", agentID: agent.id,
                                   "MCP server \(server): \(skipped) tool(s) not offered (a name other than 1-64 letters, digits, "
                                       + "'_' or '-', a schema over 64 KiB, a duplicate, or past \(ServerSession.maximumTools) tools)",
                                   data: ["server": server, "skipped": String(skipped)])
        }
        let agentID = agent.id
        return { Task { await self.detach(server: server, agentID: agentID) } }
    }

    /// The session of a running server.
    func session(_ server: String) -> ServerSession? {
        servers.withLock { $0[server]?.session }
    }

    private func detach(server: String, agentID: String) async {
        guard let live = servers.withLock({ servers -> Live? in
            guard let live = servers[server], live.agentID == agentID else { return nil }
            servers[server] = nil
            registry.unregister(server: server)
            return live
        }) else { return }
        await live.session.close()
        _ = try? events.record("mcp.gone", agentID: agentID, "MCP server \(server) ended: its tools are withdrawn",
                               data: ["server": server])
    }
}
