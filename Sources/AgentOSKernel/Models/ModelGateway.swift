import AgentOSModels
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The kernel's model gateway: one call to a provider, in that provider's
/// wire format, with the key only the kernel holds; admitted by the
/// provider's concurrency and rate limits, retried with back-off on rate
/// limits and overload (retry-after honoured), bounded in time, and
/// cancelled with the task that asked (an agent that dies or hangs up).
final class ModelGateway: Sendable {
    let configuration: ModelsConfiguration
    let keys: ModelKeys
    let admission = ModelAdmission()
    let backoff: RetryBackoff
    private let client: HTTPClient
    private let logger: Logger

    /// Bodies above this are not a chat answer.
    static let maximumAnswerBytes = 32 * 1024 * 1024

    init(configuration: ModelsConfiguration, keys: ModelKeys, backoff: RetryBackoff = RetryBackoff(), logger: Logger) {
        self.configuration = configuration
        self.keys = keys
        self.backoff = backoff
        self.logger = logger
        var settings = HTTPClient.Configuration(redirectConfiguration: .disallow,
                                                timeout: .init(connect: .seconds(10)))
        settings.httpVersion = .automatic
        client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: settings)
    }

    func shutdown() async {
        try? await client.shutdown()
    }

    /// A finished call.
    struct Outcome: Sendable {
        var completion: ChatCompletion
        var attempts: Int
        var durationNanoseconds: Int64
        /// The provider reported no usage (some compatible servers do not
        /// in streams): the counts are estimated, so budgets still count.
        var usageEstimated = false
    }

    /// Where and how a model is called: its settings and key, or why it cannot be.
    func resolve(_ name: ModelName) throws(ModelError) -> (ProviderSettings, String?) {
        let settings = try configuration.settings(for: name)
        guard let keyName = settings.keyName else { return (settings, nil) }
        guard let key = keys.key(keyName) else {
            if settings.kind.needsKey {
                throw ModelError(.authentication, "provider '\(settings.name)' needs an API key: set \(keys.whereLooked(keyName))")
            }
            return (settings, nil)
        }
        return (settings, key)
    }

    /// Calls `name` with `request`; `onDelta` gets a streamed answer's pieces
    /// as they arrive. Throws `ModelError` (or CancellationError).
    func complete(_ request: ChatRequest, model name: ModelName, priority: Int = 0, group: String,
                  timeoutMilliseconds: Int64? = nil,
                  onDelta: @escaping @Sendable (ChatDelta) async throws -> Void = { _ in }) async throws -> Outcome {
        let started = DispatchTime.now().uptimeNanoseconds
        let (settings, key) = try resolve(name)
        if let problem = request.problem() { throw ModelError(.invalidRequest, problem) }
        let wire = settings.kind.wire
        var outgoing = request
        outgoing.model = name.model
        let body = try wire.body(for: outgoing)
        let total = timeoutMilliseconds ?? settings.timeoutMilliseconds
        let deadline = NIODeadline.now() + .milliseconds(total)
        var attempt = 0
        while true {
            var deltas = 0
            do {
                try await admit(settings, priority: priority, group: group, deadline: deadline)
                defer { admission.release(settings.name, concurrency: settings.concurrency, requestsPerMinute: settings.requestsPerMinute) }
                let attemptDeadline = min(deadline, NIODeadline.now() + .milliseconds(settings.timeoutMilliseconds))
                var completion = try await send(body, to: settings, wire: wire, key: key, request: outgoing,
                                                deadline: attemptDeadline) { delta in
                    deltas += 1
                    try await onDelta(delta)
                }
                var estimated = false
                if completion.usage.total == 0 {
                    completion.usage = .estimated(inputBytes: body.count, pieces: deltas, outputBytes: completion.content.utf8.count)
                    estimated = true
                }
                return Outcome(completion: completion, attempts: attempt + 1,
                               durationNanoseconds: Int64(DispatchTime.now().uptimeNanoseconds - started),
                               usageEstimated: estimated)
            } catch let caught as ModelError {
                // A provider may quote what it was sent: never the key.
                let error = Self.redacted(caught, key: key)
                // Once pieces reached the caller, a retry would repeat them.
                guard deltas == 0, attempt < settings.retries, let pause = backoff.delay(after: error, attempt: attempt),
                      NIODeadline.now() + .milliseconds(pause) < deadline else {
                    throw attempt == 0 ? error : ModelError(error.code, error.message + " (after \(attempt + 1) attempts)",
                                                            status: error.status, retryAfterMilliseconds: error.retryAfterMilliseconds)
                }
                logger.info("model call to \(name) failed (\(error.code.rawValue)); retrying in \(pause) ms")
                try await Task.sleep(for: .milliseconds(pause))
                attempt += 1
            }
        }
    }

    /// A slot of the provider, waited for no longer than the call's deadline.
    private func admit(_ settings: ProviderSettings, priority: Int, group: String, deadline: NIODeadline) async throws {
        let admission = admission
        let acquired = try await withThrowingTaskGroup(of: Bool.self) { tasks in
            tasks.addTask {
                try await admission.acquire(settings.name, concurrency: settings.concurrency,
                                            requestsPerMinute: settings.requestsPerMinute, priority: priority, group: group)
                return true
            }
            tasks.addTask {
                let now = NIODeadline.now().uptimeNanoseconds, end = deadline.uptimeNanoseconds
                try await Task.sleep(nanoseconds: end > now ? end - now : 0)
                return false
            }
            let first = try await tasks.next() ?? false
            tasks.cancelAll()
            if first { return true }
            // Timed out: a slot granted just as the wait was cancelled goes back.
            while let next = try? await tasks.next() {
                if next { admission.release(settings.name, concurrency: settings.concurrency, requestsPerMinute: settings.requestsPerMinute) }
            }
            return false
        }
        guard acquired else {
            throw ModelError(.timeout, "\(settings.name): no slot within the call's time (\(settings.concurrency) calls in flight"
                                 + (settings.requestsPerMinute.map { ", at most \($0) a minute" } ?? "") + ")")
        }
    }

    /// `error` with every occurrence of the key replaced.
    static func redacted(_ error: ModelError, key: String?) -> ModelError {
        guard let key, key.count >= 4, error.message.contains(key) else { return error }
        return ModelError(error.code, error.message.replacingOccurrences(of: key, with: "[the key]"), status: error.status,
                          retryAfterMilliseconds: error.retryAfterMilliseconds)
    }

    /// One attempt.
    private func send(_ body: [UInt8], to settings: ProviderSettings, wire: any ProviderWire, key: String?,
                      request: ChatRequest, deadline: NIODeadline,
                      onDelta: (ChatDelta) async throws -> Void) async throws -> ChatCompletion {
        var http = HTTPClientRequest(url: settings.baseURL + wire.path)
        http.method = .POST
        http.headers.add(name: "content-type", value: "application/json")
        http.headers.add(name: "accept", value: request.stream ? "text/event-stream, application/x-ndjson" : "application/json")
        for (name, value) in wire.headers(apiKey: key) { http.headers.add(name: name, value: value) }
        http.body = .bytes(body)
        let response: HTTPClientResponse
        do {
            response = try await client.execute(http, deadline: deadline)
        } catch {
            throw Self.transportError(error, settings: settings, during: "connecting")
        }
        let status = Int(response.status.code)
        let headers = response.headers.map { ($0.name, $0.value) }
        guard (200..<300).contains(status) else {
            let bytes = (try? await response.body.collect(upTo: 1 << 20)).map { Array(buffer: $0) } ?? []
            throw wire.error(status: status, headers: headers, body: bytes)
        }
        do {
            if request.stream {
                var decoder = wire.streamDecoder(for: request)
                for try await chunk in response.body {
                    for delta in try decoder.consume(Array(buffer: chunk)) { try await onDelta(delta) }
                }
                return try decoder.finish()
            }
            let bytes = try await response.body.collect(upTo: Self.maximumAnswerBytes)
            return try wire.completion(from: Array(buffer: bytes), for: request)
        } catch let error as ModelError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw Self.transportError(error, settings: settings, during: "reading the answer")
        }
    }

    /// A transport failure in the gateway's terms: a timeout, an unreachable
    /// provider, or an answer cut short (not retried: it may have been acted on).
    static func transportError(_ error: any Error, settings: ProviderSettings, during phase: String) -> any Error {
        if error is CancellationError { return error }
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout:
                return ModelError(.timeout, "\(settings.name): no answer in time (\(phase))")
            case .cancelled:
                return CancellationError()
            case .remoteConnectionClosed where phase == "reading the answer":
                return ModelError(.badResponse, "\(settings.name): the connection closed before the answer was complete")
            case .bodyLengthMismatch:
                return ModelError(.badResponse, "\(settings.name): the answer was cut short")
            default:
                break
            }
        }
        // An HTTPClientError's description can quote header values (the key): only its short form.
        let reason = (error as? HTTPClientError)?.shortDescription ?? "\(error)"
        if phase == "reading the answer" {
            return ModelError(.badResponse, "\(settings.name): the answer was cut short (\(reason))")
        }
        return ModelError(.unreachable, "\(settings.name) at \(settings.baseURL) cannot be reached: \(reason)")
    }
}
