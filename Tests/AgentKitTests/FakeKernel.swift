import AgentOSProtocol
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The kernel's end of an agent's socketpair, scripted by a test: it
/// answers hello with a welcome, then hands every request to `answer`,
/// which writes what the kernel would (through `reply`). Records every
/// envelope it received.
final class FakeKernel: Sendable {
    let agentFD: Int32
    private let kernelFD: Int32
    private let received = Mutex<[Envelope]>([])
    private let writeLock = Mutex(())

    init(answer: @escaping @Sendable (FakeKernel, Envelope) -> Void) throws {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        agentFD = fds[0]
        kernelFD = fds[1]
        Thread.detachNewThread { [self] in serve(answer) }
    }

    var envelopes: [Envelope] { received.withLock { $0 } }
    var requests: [KernelRequest.OneOf_Call] { envelopes.compactMap { $0.request.call } }

    func reply(_ envelope: Envelope) {
        guard let bytes = try? envelope.framed() else { return }
        writeLock.withLock { _ in
            _ = bytes.withUnsafeBytes { send(kernelFD, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }

    func respond(to request: Envelope, _ result: KernelResponse.OneOf_Result) {
        var envelope = Envelope()
        envelope.correlationID = request.requestID
        envelope.response.result = result
        reply(envelope)
    }

    func chunk(to request: Envelope, _ item: StreamChunk.OneOf_Item) {
        var envelope = Envelope()
        envelope.correlationID = request.requestID
        envelope.chunk.item = item
        reply(envelope)
    }

    func fail(_ request: Envelope, _ code: ErrorCode, _ message: String, detail: [String: String] = [:]) {
        reply(.error(code, message, correlationID: request.requestID, detail: detail))
    }

    /// Closes the kernel's end: the agent sees the connection go.
    func hangUp() {
        shutdown(kernelFD, Int32(SHUT_RDWR))
    }

    private func serve(_ answer: @Sendable (FakeKernel, Envelope) -> Void) {
        var reader = FrameReader()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            while let payload = try? reader.next() {
                guard let envelope = try? Envelope(serializedBytes: payload) else { return }
                received.withLock { $0.append(envelope) }
                if case .hello? = envelope.body {
                    var welcome = Envelope()
                    welcome.welcome.version = AgentOSVersion.protocolVersion
                    welcome.welcome.kernelVersion = "fake"
                    welcome.welcome.role = .agent
                    welcome.welcome.agent.id = "a1b2c3"
                    welcome.welcome.agent.name = "tester"
                    reply(welcome)
                } else {
                    answer(self, envelope)
                }
            }
            let n = buffer.withUnsafeMutableBytes { read(kernelFD, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            reader.append(buffer[0..<n])
        }
    }
}

func busMessage(_ id: String, from: String = "team/planner", type: String = "request", payload: String = "{}") -> Agentos_V1_BusMessage {
    var message = Agentos_V1_BusMessage()
    message.id = id
    message.from = from
    message.to = "team/writer"
    message.type = type
    message.contentType = "application/json"
    message.payload = Data(payload.utf8)
    return message
}
