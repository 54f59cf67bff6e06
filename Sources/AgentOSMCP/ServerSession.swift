import Foundation
import Logging
import MCP
import NIOCore
import Synchronization

/// The kernel's client session with one MCP server: the handshake, its
/// tools, calls with a time limit, and the end.
public actor ServerSession {
    /// A tool as the server describes it, its input schema as JSON text.
    public struct ToolInfo: Sendable {
        public let name: String
        public let summary: String
        public let inputSchemaJSON: String
    }

    /// A call's answer: the result object as JSON text, and whether the
    /// server flagged it as an error.
    public struct CallResult: Sendable {
        public let json: String
        public let isError: Bool
    }

    private let client: Client
    private let transport: SocketTransport
    public let serverName: String
    public let serverVersion: String
    public private(set) var tools: [ToolInfo] = []

    private init(client: Client, transport: SocketTransport, serverName: String, serverVersion: String) {
        self.client = client
        self.transport = transport
        self.serverName = serverName
        self.serverVersion = serverVersion
    }

    /// Connects over `fd` (the kernel's end of the server's stdio socket),
    /// says hello and lists the server's tools, within `timeout`.
    public static func start(fd: Int32, group: any EventLoopGroup, clientVersion: String, timeout: Duration,
                             maximumMessageBytes: Int = 16 << 20, logger: Logger) async throws -> ServerSession {
        let transport = try await SocketTransport.open(fd: fd, group: group, maximumMessageBytes: maximumMessageBytes,
                                                       logger: logger)
        let client = Client(name: "agentd", version: clientVersion)
        do {
            let session = try await withDeadline(timeout) {
                let hello = try await client.connect(transport: transport)
                let session = ServerSession(client: client, transport: transport, serverName: hello.serverInfo.name,
                                            serverVersion: hello.serverInfo.version)
                try await session.loadTools()
                return session
            }
            return session
        } catch {
            await client.disconnect()
            throw error
        }
    }

    /// Tools one server may offer; names, descriptions and schemas past
    /// these are refused (a hostile server does not get to fill the
    /// registry, the events or an operator's terminal).
    public static let maximumTools = 1_000
    static let maximumSummaryBytes = 2_048
    static let maximumSchemaBytes = 64 << 10

    /// Names the registry takes: 1-64 letters, digits, '_' and '-'.
    public static func isToolName(_ name: String) -> Bool {
        (1...64).contains(name.unicodeScalars.count) && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
        }
    }

    /// The tools the server offers that the registry may take; `skipped`
    /// counts the others.
    public private(set) var skipped = 0

    private func loadTools() async throws {
        var cursor: String?
        var all: [ToolInfo] = []
        var skipped = 0
        pages: repeat {
            let page = try await client.listTools(cursor: cursor)
            for tool in page.tools {
                guard all.count < Self.maximumTools else {
                    skipped += 1
                    break pages
                }
                let schema = (try? String(decoding: JSONEncoder().encode(tool.inputSchema), as: UTF8.self)) ?? "{}"
                // Control characters (terminal escapes) are not shown to anyone.
                let summary = String(String.UnicodeScalarView((tool.description ?? tool.title ?? "").unicodeScalars
                    .filter { $0.value >= 0x20 && $0.value != 0x7f }).prefix(Self.maximumSummaryBytes / 4))
                guard Self.isToolName(tool.name), schema.utf8.count <= Self.maximumSchemaBytes,
                      !all.contains(where: { $0.name == tool.name }) else {
                    skipped += 1
                    continue
                }
                all.append(ToolInfo(name: tool.name, summary: summary, inputSchemaJSON: schema))
            }
            cursor = page.nextCursor
        } while cursor != nil
        tools = all
        self.skipped = skipped
    }

    /// Calls `tool` with the JSON object `argumentsJSON`; the result is the
    /// server's content (and structured content) as JSON.
    public func call(tool: String, argumentsJSON: String, timeout: Duration) async throws -> CallResult {
        let arguments: [String: Value]
        do {
            arguments = try JSONDecoder().decode([String: Value].self, from: Data((argumentsJSON.isEmpty ? "{}" : argumentsJSON).utf8))
        } catch {
            throw MCPSessionError.invalidArguments("the arguments must be a JSON object")
        }
        let client = client
        let (content, isError) = try await withDeadline(timeout) {
            try await client.callTool(name: tool, arguments: arguments)
        }
        struct Answer: Encodable {
            let content: [Tool.Content]
        }
        let data = try JSONEncoder().encode(Answer(content: content))
        return CallResult(json: String(decoding: data, as: UTF8.self), isError: isError ?? false)
    }

    /// Ends the session (pending calls fail).
    public func close() async {
        await client.disconnect()
    }
}

/// `body`'s result, or `MCPSessionError.timedOut` once `limit` has passed
/// (the body is cancelled, and not waited for: the SDK's calls do not all
/// end on cancellation).
func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let milliseconds = limit.components.seconds * 1_000 + limit.components.attoseconds / 1_000_000_000_000_000
    let answer = FirstAnswer<T>()
    return try await withCheckedThrowingContinuation { continuation in
        answer.set(continuation)
        let work = Task {
            do {
                answer.resume(with: .success(try await body()))
            } catch {
                answer.resume(with: .failure(error))
            }
        }
        let timer = Task {
            try? await Task.sleep(for: limit)
            if answer.resume(with: .failure(MCPSessionError.timedOut(milliseconds: milliseconds))) { work.cancel() }
        }
        answer.whenDone { timer.cancel() }
    }
}

/// A continuation resumed once, by whichever answer comes first (the work,
/// a deadline, a revocation); what waits on that runs once it is answered.
/// (The kernel uses it too, for calls a revocation may cut short.)
public final class FirstAnswer<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, answered: Bool,
                               after: [@Sendable () -> Void])>((nil, false, []))

    public init() {}

    public func set(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    /// False if it was answered already.
    @discardableResult
    public func resume(with result: Result<T, any Error>) -> Bool {
        let (continuation, after) = state.withLock { state -> (CheckedContinuation<T, any Error>?, [@Sendable () -> Void]) in
            guard !state.answered, let continuation = state.continuation else { return (nil, []) }
            state.answered = true
            state.continuation = nil
            defer { state.after.removeAll() }
            return (continuation, state.after)
        }
        guard let continuation else { return false }
        continuation.resume(with: result)
        for action in after { action() }
        return true
    }

    /// Runs `action` once answered (at once if it is).
    public func whenDone(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.answered { return true }
            state.after.append(action)
            return false
        }
        if now { action() }
    }
}
