import AgentOSProtocol
import Foundation
import Synchronization

/// An agent's connection to the kernel that started it: the calls an agent
/// makes about itself (messages, topics, memory, tools, checkpoints,
/// readiness), as async functions. Made once per process with `connect()`.
///
/// ```swift
/// let agent = try Agent.connect()
/// let state = try await agent.loadCheckpoint(as: Progress.self) ?? Progress()
/// try await agent.ready()
/// for try await message in agent.messages() where message.kind == .request {
///     try await agent.respond(to: message, .json(["ok": true]))
///     try await agent.ack(message)
/// }
/// ```
public final class Agent: Sendable {
    /// What the kernel told this agent about itself.
    public struct Identity: Sendable {
        public let id: String
        public let name: String
        public let argv: [String]
        public let environment: [String: String]
        public let workDirectory: String
        /// A supervised worker's path (POLICY/CHILD/...), nil for a plain agent.
        public let childPath: String?
        /// Its name on the bus and in long-term memory: the child path, else the name.
        public var address: String { childPath ?? name }
    }

    public let identity: Identity
    /// The protocol version both sides speak, and the kernel's version.
    public let protocolVersion: UInt32
    public let kernelVersion: String

    /// The thread that reads the kernel's answers, as a task executor. Work
    /// run under `withTaskExecutorPreference(agent.executor) { ... }` is
    /// resumed by each answer on that thread, with no other thread to wake:
    /// on a busy machine that is a good part of a round trip. Keep blocking
    /// work off it (it delays every answer while it runs).
    public var executor: any TaskExecutor { link.executor }

    let link: KernelLink
    /// Ids of the messages this process has handed out (see `messages()`).
    let seen = Mutex(SeenMessages())

    public static let version = AgentOSVersion.release

    /// Connects over the socket the kernel gave this process (AGENTOS_FD).
    public static func connect(client: String = "agentkit-swift \(version)") throws(AgentKitError) -> Agent {
        let environment = ProcessInfo.processInfo.environment
        guard let text = environment[AgentEnvironment.socketFD], let fd = Int32(text), fd >= 0 else {
            throw AgentKitError(.notStartedByKernel,
                                "not started by agentd: \(AgentEnvironment.socketFD) is not set (run it with agentctl run or a policy)")
        }
        return try Agent(fd: fd, client: client, childPath: environment["AGENTOS_CHILD_PATH"])
    }

    /// Uses an already connected socket (tests, or a descriptor passed on).
    public init(fd: Int32, client: String = "agentkit-swift \(version)", childPath: String? = nil) throws(AgentKitError) {
        link = try KernelLink(fd: fd, client: client)
        let me = link.welcome.agent
        identity = Identity(id: me.id, name: me.name, argv: me.argv, environment: me.env, workDirectory: me.workDir,
                            childPath: childPath)
        protocolVersion = link.welcome.version
        kernelVersion = link.welcome.kernelVersion
    }

    deinit {
        link.close()
    }

    /// Closes the connection; calls still waiting fail with `connectionClosed`.
    public func close() {
        link.close()
    }

    // MARK: Lifecycle

    /// Tells a supervisor (readiness: notify) that this agent has started.
    public func ready() async throws {
        _ = try await link.call(.ready(.init()))
    }

    /// Saves `data` (at most 1 MiB) as this worker's checkpoint, replacing the last.
    public func saveCheckpoint(_ data: Data) async throws {
        var request = Agentos_V1_SaveCheckpointRequest()
        request.data = data
        _ = try await link.call(.saveCheckpoint(request))
    }

    public func saveCheckpoint<State: Encodable>(json state: State) async throws {
        try await saveCheckpoint(Payload.json(state).bytes)
    }

    /// The checkpoint an earlier run of this worker saved, nil when none.
    public func loadCheckpoint() async throws -> Data? {
        guard case .loadCheckpoint(let checkpoint) = try await link.call(.loadCheckpoint(.init())) else {
            throw Self.unexpected("load_checkpoint")
        }
        return checkpoint.savedAtNs == 0 ? nil : checkpoint.data
    }

    public func loadCheckpoint<State: Decodable>(as type: State.Type) async throws -> State? {
        guard let data = try await loadCheckpoint() else { return nil }
        do {
            return try JSONDecoder().decode(State.self, from: data)
        } catch {
            throw AgentKitError(.encoding, "the checkpoint is not a \(State.self): \(error)")
        }
    }

    /// A line on the agent's stderr (its log, which `agentctl logs` shows).
    public func log(_ text: String, level: String = "info") {
        FileHandle.standardError.write(Data("[\(level)] \(text)\n".utf8))
    }

    // MARK: Messages

    /// Puts a message in `target`'s mailbox (an agent's name or a policy
    /// path POLICY/CHILD). Durable once this returns.
    @discardableResult
    public func send(to target: String, _ payload: Payload, kind: Message.Kind = .message,
                     correlationID: String = "", streamEnd: Bool = false) async throws -> SentMessage {
        let request = Self.sendRequest(to: target, payload, kind: kind, correlationID: correlationID, streamEnd: streamEnd)
        guard case .send(let sent) = try await link.call(.send(request)) else { throw Self.unexpected("send") }
        return SentMessage(id: sent.id, to: sent.to, depth: Int(sent.depth))
    }

    /// Sends a request and waits for its response (at most `timeout`; the
    /// kernel withdraws a request not yet received when it passes).
    public func request(_ target: String, _ payload: Payload, timeout: Duration = .seconds(30)) async throws -> Message {
        var request = Agentos_V1_BusRequest()
        request.message.to = target
        request.message.payload = payload.bytes
        request.message.contentType = payload.contentType
        let (seconds, attoseconds) = timeout.components
        request.timeoutMs = UInt64(max(1, seconds * 1_000 + attoseconds / 1_000_000_000_000_000))
        guard case .request(let response) = try await link.call(.request(request)) else { throw Self.unexpected("request") }
        return Message(response)
    }

    /// The response to `message` (a request), to whoever sent it.
    public func respond(to message: Message, _ payload: Payload) async throws {
        try await send(to: message.from, payload, kind: .response, correlationID: message.id)
    }

    /// Responds to `message` without waiting for the kernel's answer (a
    /// quiet send): the kernel answers only if it refuses the response (a
    /// payload over the limit, say), and that is reported on standard error
    /// (the agent's log); one that comes after its requester gave up is
    /// dropped, as any late response is. For a request its requester waits
    /// for (`isAckedByResponse`), whose response also removes it; a stored
    /// request is better answered with `respond`, then acked, so that it
    /// stays in the mailbox until its response is safe.
    public func respondLater(to message: Message, _ payload: Payload) {
        link.sendQuietly(.send(Self.sendRequest(to: message.from, payload, kind: .response, correlationID: message.id)))
    }

    private static func sendRequest(to target: String, _ payload: Payload, kind: Message.Kind,
                                    correlationID: String, streamEnd: Bool = false) -> Agentos_V1_SendRequest {
        var request = Agentos_V1_SendRequest()
        request.to = target
        request.payload = payload.bytes
        request.contentType = payload.contentType
        request.type = kind.rawValue
        request.correlationID = correlationID
        request.end = streamEnd
        return request
    }

    /// This agent's mailbox: what waits, oldest first, then what arrives.
    /// A message stays in the mailbox until acked (`ack`): one not acked
    /// when this process ends is delivered again to the next run. Repeats
    /// this process has seen already are dropped.
    public func messages() -> MessageSequence {
        MessageSequence(agent: self, raw: link.stream(.receive(.init())) { item in
            guard case .message(let wire) = item else { return nil }
            return Message(wire)
        })
    }

    /// Removes handled messages from the mailbox.
    public func ack(_ messages: Message...) async throws {
        try await ack(ids: messages.map(\.id))
    }

    /// Acks `message` without waiting for the kernel's answer: acks made
    /// this way go together, in one call, with what the connection writes
    /// next. A sender is answered once its message is acked or stored, so
    /// a reader that acks promptly keeps its senders moving and spares the
    /// kernel the write. Nothing reports a lost ack: the message is then
    /// delivered again (at least once; repeats carry the same id).
    public func ackLater(_ messages: Message...) {
        link.acknowledgeLater(messages.map(\.id))
    }

    public func ack(ids: [String]) async throws {
        var request = Agentos_V1_AckRequest()
        request.ids = ids
        _ = try await link.call(.ack(request))
    }

    /// Answers every request with `handler`'s payload, then acks it; other
    /// messages go to `other` (if given) and are acked. A request whose
    /// requester waits is answered with `respondLater` (its response removes
    /// it, and a refusal is logged while serving goes on); a stored one with
    /// `respond`, then acked, so it is not lost before its response is safe.
    /// Returns when the mailbox stream ends (the kernel stops); throws what
    /// the handler throws.
    public func serve(requests handler: @Sendable (Message) async throws -> Payload,
                      other: (@Sendable (Message) async throws -> Void)? = nil) async throws {
        for try await message in messages() {
            if message.kind == .request {
                let response = try await handler(message)
                if message.isAckedByResponse {
                    respondLater(to: message, response)
                    continue
                }
                try await respond(to: message, response)
            } else if let other {
                try await other(message)
            }
            try await ack(message)
        }
    }

    /// A stream of chunks to `target` (type stream): `write` each, then
    /// `finish`. The recipient sees them in order in its mailbox, all with
    /// the stream's id as correlation id, the last marked `isStreamEnd`.
    public func openStream(to target: String, id: String = UUID().uuidString) -> MessageStreamWriter {
        MessageStreamWriter(agent: self, target: target, id: id)
    }

    // MARK: Topics

    /// An event to the subscribers of `topic` now (not stored); returns how many it reached.
    @discardableResult
    public func publish(_ topic: String, _ payload: Payload) async throws -> Int {
        var request = Agentos_V1_PublishRequest()
        request.topic = topic
        request.payload = payload.bytes
        request.contentType = payload.contentType
        guard case .publish(let answer) = try await link.call(.publish(request)) else { throw Self.unexpected("publish") }
        return Int(answer.subscribers)
    }

    /// Events of the topics `pattern` matches ('*' in a segment, '**' for
    /// any segments), from now on. Needs a topic subscribe grant.
    public func subscribe(_ pattern: String) -> AsyncThrowingStream<Message, any Error> {
        var request = Agentos_V1_SubscribeRequest()
        request.pattern = pattern
        return link.stream(.subscribe(request)) { item in
            guard case .message(let wire) = item else { return nil }
            return Message(wire)
        }
    }

    // MARK: Memory, tools, capabilities

    /// This agent's memory (context, working, long-term) and the shared namespaces it is granted.
    public var memory: AgentMemory { AgentMemory(link: link) }

    /// The tool registry: names, descriptions, JSON Schemas.
    public func tools() async throws -> [Agentos_V1_ToolInfo] {
        guard case .tools(let list) = try await link.call(.tools(.init())) else { throw Self.unexpected("tools") }
        return list.tools
    }

    /// Calls a tool with JSON arguments; checked against this agent's grants
    /// and run confined by the kernel.
    public func callTool(_ name: String, argumentsJSON: String = "{}") async throws -> ToolResult {
        var request = Agentos_V1_ToolCallRequest()
        request.tool = name
        request.argumentsJson = argumentsJSON
        guard case .toolCall(let answer) = try await link.call(.toolCall(request)) else { throw Self.unexpected("tool_call") }
        return ToolResult(answer)
    }

    public func callTool<Arguments: Encodable>(_ name: String, _ arguments: Arguments) async throws -> ToolResult {
        try await callTool(name, argumentsJSON: String(decoding: Payload.json(arguments).bytes, as: UTF8.self))
    }

    /// The grants this agent holds.
    public func capabilities() async throws -> [Agentos_V1_CapabilityInfo] {
        guard case .myCapabilities(let list) = try await link.call(.myCapabilities(.init())) else {
            throw Self.unexpected("my_capabilities")
        }
        return list.capabilities
    }

    /// Whether this agent may do `action` on `resource` (KIND/RESOURCE); an
    /// allowed ask counts as a use of the grant.
    public func may(_ action: String, _ resource: String) async throws -> Bool {
        var request = Agentos_V1_CapCheckRequest()
        request.action = action
        request.resource = resource
        guard case .capCheck(let answer) = try await link.call(.capCheck(request)) else { throw Self.unexpected("cap_check") }
        return answer.allowed
    }

    static func unexpected(_ call: String) -> AgentKitError {
        AgentKitError(.protocolViolation, "the kernel answered \(call) with another call's response")
    }
}

/// An agent's mailbox as an async sequence (`Agent.messages()`): a message
/// counts as seen when it is handed to the caller, not when it arrives, so
/// one buffered but never read (the loop left early) comes again from the
/// next `messages()`.
public struct MessageSequence: AsyncSequence, Sendable {
    public typealias Element = Message
    public typealias Failure = any Error

    let agent: Agent
    let raw: AsyncThrowingStream<Message, any Error>

    public struct AsyncIterator: AsyncIteratorProtocol {
        let agent: Agent
        var raw: AsyncThrowingStream<Message, any Error>.AsyncIterator

        public mutating func next() async throws -> Message? {
            while let message = try await raw.next() {
                if agent.seen.withLock({ $0.insert(message.id) }) { return message }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(agent: agent, raw: raw.makeAsyncIterator())
    }
}

/// A tool's answer.
public struct ToolResult: Sendable {
    public let callID: String
    /// The tool's result object, as JSON text.
    public let resultJSON: String
    /// The tool ran and failed (a missing file, a non-zero exit): the result says why.
    public let isError: Bool
    public let grantID: String
    public let duration: Duration
    public let approved: Bool

    init(_ wire: Agentos_V1_ToolCallResponse) {
        callID = wire.callID
        resultJSON = wire.resultJson
        isError = wire.isError
        grantID = wire.grantID
        duration = .microseconds(wire.durationUs)
        approved = wire.approved
    }

    public func decode<Value: Decodable>(_ type: Value.Type = Value.self) throws(AgentKitError) -> Value {
        do {
            return try JSONDecoder().decode(Value.self, from: Data(resultJSON.utf8))
        } catch {
            throw AgentKitError(.encoding, "the result of \(callID) is not a \(Value.self): \(error)")
        }
    }
}

/// Writes one stream of chunks (see `Agent.openStream`).
public struct MessageStreamWriter: Sendable {
    let agent: Agent
    public let target: String
    public let id: String

    public func write(_ payload: Payload) async throws {
        try await agent.send(to: target, payload, kind: .stream, correlationID: id)
    }

    /// The last chunk (it may be empty): the recipient's stream ends here.
    public func finish(_ payload: Payload = Payload(bytes: Data())) async throws {
        try await agent.send(to: target, payload, kind: .stream, correlationID: id, streamEnd: true)
    }
}
