import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A fake model provider: an HTTP/1.1 server on 127.0.0.1 that answers
/// POST /v1/messages (Anthropic), /v1/chat/completions (OpenAI) and
/// /api/chat (Ollama) as each provider's public API documentation gives it.
/// What it answers depends on the request's "model":
///
/// - `echo`: "echo: " + the text of the last user message.
/// - `script`: the first user message is {"calls":[{"tool":..,"arguments":{..}}..],"answer":..};
///   answers tool call n (n = tool results so far), then the answer text + " | " + the results.
/// - `rate-limit-N`, `overloaded-N`: the first N requests naming that model fail
///   (429 / Anthropic 529, OpenAI and Ollama 503); later ones are `echo`.
/// - `too-long`: the provider's context-length error (Ollama: `echo`).
/// - `garbage`: 200, application/json, a body that is not JSON.
/// - `cut`: the start of an `echo` answer, then the connection closes.
/// - `slow-MS`: `echo` after MS milliseconds.
/// - anything else: the provider's model-not-found 404.
public final class FakeModelProvider: Sendable {
    /// The largest request body accepted; larger ones get 413.
    static let bodyLimit = 8 * 1024 * 1024

    public let port: Int
    private let channel: any Channel
    private let state: FakeState

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, channel: any Channel, state: FakeState) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    /// Starts on 127.0.0.1, an ephemeral port. apiKey: the key Anthropic
    /// (x-api-key) and OpenAI (Authorization: Bearer) requests must carry; nil: not checked.
    public static func start(apiKey: String? = "test-key") async throws -> FakeModelProvider {
        let state = FakeState(apiKey: apiKey)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                state.opened(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(FakeHTTPHandler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = channel.localAddress?.port else {
            try? await channel.close()
            throw ChannelError.unknownLocalAddress
        }
        return FakeModelProvider(port: port, channel: channel, state: state)
    }

    /// Every request so far, in arrival order (recorded once its body has arrived).
    public func requests() -> [RecordedRequest] {
        state.value.withLock { $0.requests }
    }

    /// The most requests in flight at once so far.
    public var maximumConcurrent: Int {
        state.value.withLock { $0.maximumInFlight }
    }

    /// Closes the listening socket and every open connection.
    public func shutdown() async throws {
        let connections = state.value.withLock { Array($0.connections.values) }
        do {
            try await channel.close()
        } catch ChannelError.alreadyClosed {
            // Shut down before.
        }
        for connection in connections {
            try? await connection.close()
        }
    }
}

/// One request as the fake received it.
public struct RecordedRequest: Sendable {
    public let method: String
    /// The path, without any query.
    public let path: String
    /// As received, in order.
    public let headers: [(String, String)]
    /// Empty when the body was larger than the fake accepts (413).
    public let body: [UInt8]

    /// The body, when it is a JSON object.
    public var json: [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
    }

    /// The first value of a header (names compare without case).
    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
}

/// The fake's shared state, read and written from every event loop.
final class FakeState: Sendable {
    struct Value {
        var requests: [RecordedRequest] = []
        var inFlight = 0
        var maximumInFlight = 0
        /// Requests per model name, for rate-limit-N and overloaded-N.
        var modelCounts: [String: Int] = [:]
        var connections: [ObjectIdentifier: any Channel] = [:]
    }

    let apiKey: String?
    let value = Mutex(Value())

    init(apiKey: String?) { self.apiKey = apiKey }

    func opened(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        value.withLock { $0.connections[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = value.withLock { $0.connections.removeValue(forKey: id) }
        }
    }

    func began() {
        value.withLock {
            $0.inFlight += 1
            $0.maximumInFlight = max($0.maximumInFlight, $0.inFlight)
        }
    }

    func ended() {
        value.withLock { $0.inFlight -= 1 }
    }

    func record(_ request: RecordedRequest) {
        value.withLock { $0.requests.append(request) }
    }

    func behaviour(for model: String) -> Behaviour {
        Behaviour.of(model: model) { name in
            value.withLock {
                let count = $0.modelCounts[name, default: 0] + 1
                $0.modelCounts[name] = count
                return count
            }
        }
    }

    /// What to answer a request whose body has arrived.
    func plan(for request: RecordedRequest) -> Plan {
        switch (request.method, request.path) {
        case ("POST", "/v1/messages"): return AnthropicAPI.plan(request, state: self)
        case ("POST", "/v1/chat/completions"): return OpenAIAPI.plan(request, state: self)
        case ("POST", "/api/chat"): return OllamaAPI.plan(request, state: self)
        default: return Self.notFound
        }
    }

    /// A body over the limit, answered in the route's own error shape.
    func planTooLarge(for request: RecordedRequest) -> Plan {
        switch (request.method, request.path) {
        case ("POST", "/v1/messages"):
            return AnthropicAPI.error(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
        case ("POST", "/v1/chat/completions"):
            return OpenAIAPI.error(413, "Request too large: the body exceeds the maximum allowed size.",
                                   type: "invalid_request_error", code: nil)
        case ("POST", "/api/chat"): return OllamaAPI.error(413, "request body too large")
        default: return Self.notFound
        }
    }

    static let notFound = Plan(.full(status: 404, headers: [("content-type", "text/plain; charset=utf-8")],
                                     body: Array("404 page not found".utf8)))
}
