import AgentOSProtocol
import Logging
import NIOCore

/// What the protocol handler passes on to the connection's async side.
struct ConnectionInput: Sendable {
    let id: UInt64
    let call: KernelRequest.OneOf_Call
    /// Answer only a failure (the envelope's `quiet`; send and ack only).
    let quiet: Bool
}

/// A connection as the server hands it to its handling task.
struct AcceptedConnection: Sendable {
    let channel: NIOAsyncChannel<ConnectionInput, ByteBuffer>
    let peer: Peer
    let requests: RequestRegistry
    /// Every answer's way out, whichever side or thread makes it.
    let queue: OutboundQueue
    let sends: SendWindow
    let busBacklog: BusBacklog
}

extension AcceptedConnection {
    /// What the event loop's handler and the async side of a connection share.
    struct Shared: Sendable {
        let requests = RequestRegistry()
        let queue: OutboundQueue
        let sends = SendWindow()
        let busBacklog = BusBacklog()
    }

    init(channel: NIOAsyncChannel<ConnectionInput, ByteBuffer>, peer: Peer, shared: Shared) {
        self.init(channel: channel, peer: peer, requests: shared.requests, queue: shared.queue, sends: shared.sends,
                  busBacklog: shared.busBacklog)
    }
}

/// The connection's protocol state machine, on the event loop: decodes
/// envelopes, runs the handshake, refuses what breaks the protocol (error
/// frame, then close), answers `status` on the spot, and hands every other
/// request to the async side. Keeping this on the event loop saves the two
/// thread hops an async round trip costs on the hottest path.
final class ProtocolHandler: ChannelInboundHandler {
    typealias InboundIn = InboundFrame
    typealias InboundOut = ConnectionInput
    typealias OutboundOut = ByteBuffer

    private let peer: Peer
    private let services: KernelServices
    private let requests: RequestRegistry
    private let agentSelf: Agentos_V1_AgentSelf?
    private let busBacklog: BusBacklog
    private let busFastPath: BusFastPath?
    private let logger: Logger
    private var handshaken = false
    private var closing = false

    init(peer: Peer, services: KernelServices, connection: AcceptedConnection.Shared, agentSelf: Agentos_V1_AgentSelf?,
         logger: Logger) {
        self.peer = peer
        self.services = services
        self.requests = connection.requests
        self.agentSelf = agentSelf
        self.busBacklog = connection.busBacklog
        if case .agent(let id) = peer {
            busFastPath = BusFastPath(agentID: id, services: services, queue: connection.queue, sends: connection.sends,
                                      requests: connection.requests)
        } else {
            busFastPath = nil
        }
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let payload: ByteBuffer
        switch unwrapInboundIn(data) {
        case .payload(let buffer):
            payload = buffer
        case .tooLarge(let length, let maximum):
            logger.notice("closing connection: frame too large", metadata: ["peer": "\(peer)", "length": "\(length)"])
            return fail(context, .frameTooLarge, "frame of \(length) bytes exceeds the maximum of \(maximum) bytes; closing")
        case .truncated(let expected, let received):
            logger.notice("connection ended inside a frame", metadata: ["peer": "\(peer)"])
            return fail(context, .malformedFrame, "stream ended inside a frame (\(received) of \(expected) bytes)")
        }
        let envelope: Envelope
        do {
            let bytes = Array(payload.readableBytesView)
            // An agent's hot calls without SwiftProtobuf's generic decoding.
            envelope = try HotFrames.decode(bytes) ?? Envelope(serializedBytes: bytes)
        } catch {
            logger.notice("closing connection: undecodable frame", metadata: ["peer": "\(peer)"])
            return fail(context, .malformedFrame, "frame is not a valid agentos.v1.Envelope; closing")
        }
        guard handshaken else { return handshake(context, envelope) }

        switch envelope.body {
        case .request(let request)?:
            let id = envelope.requestID
            guard id != 0 else {
                return send(context, .error(.invalidArgument, "request_id 0 is reserved; number requests from 1"))
            }
            guard let call = request.call else {
                return send(context, .error(.unknownMessage,
                                            "request \(id) names a call this kernel does not know (protocol \(AgentOSVersion.protocolVersion))",
                                            correlationID: id))
            }
            let quiet = envelope.quiet
            if quiet && !Connection.mayBeQuiet(call) {
                return send(context, .error(.invalidArgument,
                                            "request \(id): quiet is for send and ack only, not \(call.name)",
                                            correlationID: id))
            }
            if case .status = call {
                var reply = Envelope()
                reply.correlationID = id
                reply.response.result = .status(services.status())
                return send(context, reply)
            }
            if Connection.isBusOrdered(call) {
                if busBacklog.isEmpty, busFastPath?.handle(id: id, call: call, quiet: quiet) == true { return }
                busBacklog.add()
            }
            context.fireChannelRead(wrapInboundOut(ConnectionInput(id: id, call: call, quiet: quiet)))
        case .cancel(let cancel)?:
            // Here, not on the async side: that may be waiting for a free
            // in-flight slot, which is what a cancel frees.
            requests.cancel(id: cancel.requestID)
        case .hello?:
            send(context, .error(.invalidArgument, "hello was already exchanged on this connection",
                                 correlationID: envelope.requestID))
        case nil, .welcome?, .response?, .chunk?, .streamEnd?, .error?:
            fail(context, .unknownMessage, "a client may send only hello, request and cancel; closing")
        }
    }

    private func handshake(_ context: ChannelHandlerContext, _ envelope: Envelope) {
        guard case .hello(let hello)? = envelope.body else {
            return fail(context, .handshakeRequired,
                        "the first frame must be a Hello (protocol version \(AgentOSVersion.protocolVersion)); closing")
        }
        guard hello.maxVersion >= AgentOSVersion.minimumProtocolVersion,
              hello.minVersion <= AgentOSVersion.protocolVersion else {
            return fail(context, .versionMismatch,
                        "client speaks protocol versions \(hello.minVersion)-\(hello.maxVersion); this kernel speaks "
                            + "\(AgentOSVersion.minimumProtocolVersion)-\(AgentOSVersion.protocolVersion); closing",
                        detail: ["kernel_min": String(AgentOSVersion.minimumProtocolVersion),
                                 "kernel_max": String(AgentOSVersion.protocolVersion)])
        }
        var welcome = Welcome()
        welcome.version = min(hello.maxVersion, AgentOSVersion.protocolVersion)
        welcome.kernelVersion = AgentOSVersion.release
        welcome.kernelPid = UInt32(services.pid)
        welcome.maxFrameSize = UInt32(services.configuration.maximumFrameSize)
        welcome.role = peer.role
        if let agentSelf { welcome.agent = agentSelf }
        var reply = Envelope()
        reply.welcome = welcome
        send(context, reply)
        handshaken = true
        if case .agent(let id) = peer {
            let lifecycle = services.lifecycle
            Task { await lifecycle.markConnected(id: id) }
        }
    }

    private func send(_ context: ChannelHandlerContext, _ envelope: Envelope) {
        guard let buffer = context.channel.allocator.frame(envelope) else { return }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    /// A connection-level error: tell the peer, stop reading, close.
    private func fail(_ context: ChannelHandlerContext, _ code: ErrorCode, _ message: String,
                      detail: [String: String] = [:]) {
        closing = true
        guard let buffer = context.channel.allocator.frame(Envelope.error(code, message, detail: detail)) else {
            context.close(promise: nil)
            return
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in
            loopBound.value.close(promise: nil)
        }
    }
}
