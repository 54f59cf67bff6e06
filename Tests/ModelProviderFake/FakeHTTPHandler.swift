import NIOCore
import NIOHTTP1

/// One connection's requests (HTTPServerPipelineHandler hands them over one
/// at a time): gathers the body, asks FakeState what to answer, writes it.
final class FakeHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let state: FakeState
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    private var keepAlive = true
    /// Whether this connection's current request counts as in flight.
    private var inFlight = false

    init(state: FakeState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            keepAlive = head.isKeepAlive
            tooLarge = head.headers.first(name: "content-length").flatMap(Int.init).map { $0 > FakeModelProvider.bodyLimit } ?? false
            begin()
            // curl and others wait (a second) for this before sending a large body.
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                let interim = HTTPResponseHead(version: head.version, status: .continue)
                context.writeAndFlush(wrapOutboundOut(.head(interim)), promise: nil)
            }
        case .body(let buffer):
            guard !tooLarge else { return }
            if body.count + buffer.readableBytes > FakeModelProvider.bodyLimit {
                tooLarge = true
                body = []
            } else {
                body.append(contentsOf: buffer.readableBytesView)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let uri = head.uri
            let path = uri.firstIndex(of: "?").map { String(uri[..<$0]) } ?? uri
            let request = RecordedRequest(method: head.method.rawValue, path: path,
                                          headers: head.headers.map { ($0.name, $0.value) }, body: tooLarge ? [] : body)
            body = []
            state.record(request)
            let plan: Plan
            if tooLarge {
                keepAlive = false
                plan = state.planTooLarge(for: request)
            } else {
                plan = state.plan(for: request)
            }
            let version = head.version
            if plan.delayMilliseconds > 0 {
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(plan.delayMilliseconds))) {
                    self.send(plan.response, version: version, context: context)
                }
            } else {
                send(plan.response, version: version, context: context)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }

    private func begin() {
        guard !inFlight else { return }
        inFlight = true
        state.began()
    }

    private func end() {
        guard inFlight else { return }
        inFlight = false
        state.ended()
    }

    private static func status(_ code: Int) -> HTTPResponseStatus {
        code == 529 ? .custom(code: 529, reasonPhrase: "Overloaded") : HTTPResponseStatus(statusCode: code)
    }

    private func send(_ response: FakeResponse, version: HTTPVersion, context: ChannelHandlerContext) {
        guard context.channel.isActive else {
            end()
            return
        }
        switch response {
        case .full(let status, let headerList, let body):
            var headers = HTTPHeaders(headerList)
            headers.replaceOrAdd(name: "content-length", value: String(body.count))
            if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: Self.status(status), headers: headers))),
                          promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            finish(context: context)

        case .stream(let headerList, let events, let complete):
            var headers = HTTPHeaders(headerList)
            headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
            if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
            var last = context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .ok, headers: headers))))
            // One chunk per event, each flushed as it is written.
            for event in events {
                last = context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: event)))))
            }
            if complete {
                finish(context: context)
            } else {
                cut(after: last, context: context)
            }

        case .truncated(let headerList, let declaredLength, let body):
            var headers = HTTPHeaders(headerList)
            headers.replaceOrAdd(name: "content-length", value: String(declaredLength))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .ok, headers: headers))),
                          promise: nil)
            let last = context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))))
            cut(after: last, context: context)
        }
    }

    /// Ends the response; closes the connection when the client asked to.
    private func finish(context: ChannelHandlerContext) {
        let keepAlive = self.keepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            self.end()
            if !keepAlive { context.close(promise: nil) }
        }
    }

    /// Closes the connection once `last` is written, the response unfinished.
    private func cut(after last: EventLoopFuture<Void>, context: ChannelHandlerContext) {
        last.assumeIsolated().whenComplete { _ in
            self.end()
            context.close(promise: nil)
        }
    }
}
