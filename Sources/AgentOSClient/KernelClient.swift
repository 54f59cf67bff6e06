import AgentOSProtocol
import SwiftProtobuf
#if canImport(Glibc)
import Glibc
#endif

/// A blocking client of the kernel protocol over one Unix socket: connect,
/// handshake, then calls and streams one at a time. Built on plain syscalls
/// so a command-line tool starts fast and the benchmark measures the kernel,
/// not a client runtime.
public final class KernelClient {
    public private(set) var welcome: Welcome
    public let endpoint: String
    private let fd: Int32
    private var reader: FrameReader
    private var nextRequestID: UInt64 = 1
    /// Reused for every read: a fresh 64 KiB buffer per answer costs more
    /// than the answer.
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)

    /// Connects to the kernel socket at `socketPath` and says hello.
    public static func connect(socketPath: String, client: String = "agentctl \(AgentOSVersion.release)") throws(ClientError) -> KernelClient {
        let fd = try openUnixSocket(path: socketPath)
        return try KernelClient(fd: fd, endpoint: socketPath, client: client)
    }

    /// Uses an already connected socket (an agent's inherited AGENTOS_FD).
    public static func adopt(fd: Int32, client: String) throws(ClientError) -> KernelClient {
        try KernelClient(fd: fd, endpoint: "fd \(fd)", client: client)
    }

    private init(fd: Int32, endpoint: String, client: String) throws(ClientError) {
        self.fd = fd
        self.endpoint = endpoint
        // The kernel is trusted; still, a bound keeps a corrupt stream from
        // asking for gigabytes.
        self.reader = FrameReader(maximumPayloadSize: 256 * 1024 * 1024)
        self.welcome = Welcome()
        do {
            try Self.writeAll(fd, try Envelope.hello(client: client).framed())
        } catch let error as ClientError {
            close(fd)
            throw error
        } catch {
            close(fd)
            throw ClientError(.protocolViolation, "cannot encode hello: \(error)")
        }
        let reply: Envelope
        do {
            reply = try readEnvelope()
        } catch {
            close(fd)
            throw error
        }
        switch reply.body {
        case .welcome(let welcome)?:
            self.welcome = welcome
        case .error(let error)?:
            close(fd)
            throw ClientError(.kernel(error.code), error.message)
        default:
            close(fd)
            throw ClientError(.protocolViolation, "the kernel answered hello with something other than welcome")
        }
    }

    deinit {
        close(fd)
    }

    /// Sends one request and returns its response.
    public func call(_ call: KernelRequest.OneOf_Call) throws(ClientError) -> KernelResponse.OneOf_Result {
        let id = try send(call)
        while true {
            let envelope = try readEnvelope()
            guard envelope.correlationID == id else { continue }
            switch envelope.body {
            case .response(let response)?:
                guard let result = response.result else {
                    throw ClientError(.protocolViolation, "empty response to request \(id)")
                }
                return result
            case .error(let error)?:
                throw ClientError(.kernel(error.code), error.message)
            default:
                throw ClientError(.protocolViolation, "unexpected frame in answer to request \(id)")
            }
        }
    }

    /// Sends a streaming request (logs, events) and hands each chunk to
    /// `onChunk` until the stream ends; returns the end reason. `onChunk`
    /// returns false to stop early.
    @discardableResult
    public func stream(_ call: KernelRequest.OneOf_Call,
                       onChunk: (StreamChunk.OneOf_Item) throws -> Bool) throws -> String {
        let id = try send(call)
        while true {
            let envelope = try readEnvelope()
            guard envelope.correlationID == id else { continue }
            switch envelope.body {
            case .chunk(let chunk)?:
                if let item = chunk.item, try !onChunk(item) { return "stopped" }
            case .streamEnd(let end)?:
                return end.reason
            case .error(let error)?:
                throw ClientError(.kernel(error.code), error.message)
            default:
                throw ClientError(.protocolViolation, "unexpected frame in stream \(id)")
            }
        }
    }

    private func send(_ call: KernelRequest.OneOf_Call) throws(ClientError) -> UInt64 {
        let id = nextRequestID
        nextRequestID += 1
        let bytes: [UInt8]
        do {
            bytes = try Envelope.request(id: id, call).framed()
        } catch {
            throw ClientError(.protocolViolation, "cannot encode request: \(error)")
        }
        try Self.writeAll(fd, bytes)
        return id
    }

    private func readEnvelope() throws(ClientError) -> Envelope {
        try FrameSocket.readEnvelope(fd, &reader, &readBuffer)
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(ClientError) {
        try FrameSocket.write(fd, bytes)
    }
}

/// Frames over a connected stream socket with plain syscalls: shared by
/// this client and the agents' SDK (AgentKit).
public enum FrameSocket {
    /// The next envelope: from what `reader` holds, else read into `buffer`.
    public static func readEnvelope(_ fd: Int32, _ reader: inout FrameReader,
                                    _ buffer: inout [UInt8]) throws(ClientError) -> Envelope {
        while true {
            if let envelope = try nextEnvelope(&reader) { return envelope }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                reader.append(buffer[0..<n])
            } else if n == 0 {
                throw ClientError(.connectionClosed, "the kernel closed the connection")
            } else if errno != EINTR {
                throw ClientError(.system, "read from the kernel socket: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// The next whole envelope among the bytes `reader` holds, if any.
    public static func nextEnvelope(_ reader: inout FrameReader) throws(ClientError) -> Envelope? {
        let payload: [UInt8]?
        do {
            payload = try reader.next()
        } catch {
            throw ClientError(.protocolViolation, "bad frame from the kernel: \(error)")
        }
        guard let payload else { return nil }
        // The bus's hot frames without SwiftProtobuf's generic decoding.
        if let hot = HotFrames.decode(payload) { return hot }
        do {
            return try Envelope(serializedBytes: payload)
        } catch {
            throw ClientError(.protocolViolation, "undecodable frame from the kernel")
        }
    }

    /// All of `bytes` (no SIGPIPE: a closed peer is `connectionClosed`).
    public static func write(_ fd: Int32, _ bytes: [UInt8]) throws(ClientError) {
        guard try send(fd, bytes[...], flags: 0) == bytes.count else {
            throw ClientError(.system, "write to the kernel socket: \(String(cString: strerror(EAGAIN)))")
        }
    }

    /// As much of `bytes` as the socket takes: all of it, unless `flags`
    /// has MSG_DONTWAIT and the socket fills (then what went).
    public static func send(_ fd: Int32, _ bytes: ArraySlice<UInt8>, flags: Int32) throws(ClientError) -> Int {
        var failure: Int32 = 0
        var written = 0
        bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            while written < buffer.count {
                let n = Glibc.send(fd, base + written, buffer.count - written, Int32(MSG_NOSIGNAL) | flags)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno != EAGAIN && errno != EWOULDBLOCK { failure = errno }
                    return
                }
                written += n
            }
        }
        if failure == EPIPE || failure == ECONNRESET {
            throw ClientError(.connectionClosed, "the kernel closed the connection")
        }
        if failure != 0 {
            throw ClientError(.system, "write to the kernel socket: \(String(cString: strerror(failure)))")
        }
        return written
    }
}

/// Connects a stream socket to `path` (CLOEXEC).
public func openUnixSocket(path: String) throws(ClientError) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw ClientError(.system, "socket: \(String(cString: strerror(errno)))") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    let pathBytes = Array(path.utf8)
    guard pathBytes.count < capacity else {
        close(fd)
        throw ClientError(.cannotConnect, "socket path \(path) is longer than \(capacity - 1) bytes")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
        raw[pathBytes.count] = 0
    }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    guard rc == 0 else {
        let code = errno
        close(fd)
        throw ClientError.cannotConnect(path, errno: code)
    }
    return fd
}
