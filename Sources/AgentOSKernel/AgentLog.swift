import AgentOSConfinement
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One chunk of captured output as stored in an agent's log file.
struct LogRecord: Sendable, Equatable {
    enum Stream: UInt8, Sendable {
        case stdout = 1
        case stderr = 2
        case kernel = 3
    }

    var stream: Stream
    var time: Int64
    var data: [UInt8]
}

/// An agent's captured stdout/stderr.
///
/// File format (all integers big-endian), one record per chunk read:
/// magic 0xA5, stream (1 stdout, 2 stderr, 3 kernel note), 2 reserved bytes,
/// u32 data length, i64 unix-ns time, then the data. When the file would pass
/// `maximumBytes` it is renamed to `<path>.1` (replacing an older one) and a
/// new file begins with a kernel note, so the disk used stays under twice
/// the cap. A torn last record (kernel killed mid-write) is ignored on read.
final class AgentLog: OutputSink, Sendable {
    static let magic: UInt8 = 0xA5
    static let headerSize = 16
    static let followerBuffer = 4_096

    let path: String
    let maximumBytes: Int

    private struct State {
        var fd: Int32
        var size: Int
        var rotations = 0
        var finished = false
        var finishSignals: [Handoff<Void>] = []
    }

    private let state: Mutex<State>
    private let followers = SubscriberSet<LogRecord>()

    init(path: String, maximumBytes: Int) throws(KernelError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw KernelError(.internal, "cannot create log file \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        let size = fstat(fd, &info) == 0 ? Int(info.st_size) : 0
        self.path = path
        self.maximumBytes = max(maximumBytes, 4_096)
        self.state = Mutex(State(fd: fd, size: size))
    }

    // MARK: Writing (reactor thread)

    func write(_ bytes: UnsafeRawBufferPointer, stream: OutputStream) {
        // Records stay well under the cap so rotation can keep to it.
        let piece = max(1_024, maximumBytes / 4)
        let time = unixNanoseconds()
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + piece)
            append(LogRecord(stream: stream == .stdout ? .stdout : .stderr, time: time,
                             data: Array(bytes[offset..<end])))
            offset = end
        }
    }

    /// A line from the kernel itself, e.g. why output was dropped.
    func note(_ text: String) {
        append(LogRecord(stream: .kernel, time: unixNanoseconds(), data: Array(("[agentos] " + text + "\n").utf8)))
    }

    var isFinished: Bool { state.withLock { $0.finished } }

    func finish() {
        let signals = state.withLock { state -> [Handoff<Void>]? in
            guard !state.finished else { return nil }
            state.finished = true
            close(state.fd)
            state.fd = -1
            defer { state.finishSignals.removeAll() }
            return state.finishSignals
        }
        guard let signals else { return }
        followers.finishAll()
        for signal in signals { signal.fulfil(()) }
    }

    private func append(_ record: LogRecord) {
        state.withLock { state in
            guard !state.finished else { return }
            let encoded = Self.encode(record)
            if state.size > 0 && state.size + encoded.count > maximumBytes {
                rotate(&state)
            }
            if Self.writeAll(state.fd, encoded) { state.size += encoded.count }
            followers.deliver(record)
        }
    }

    private func rotate(_ state: inout State) {
        close(state.fd)
        _ = rename(path, path + ".1")
        state.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        state.size = 0
        state.rotations += 1
        let note = LogRecord(
            stream: .kernel, time: unixNanoseconds(),
            data: Array("[agentos] log rotated at \(maximumBytes) bytes (rotation \(state.rotations)); older output was dropped\n".utf8))
        let encoded = Self.encode(note)
        if Self.writeAll(state.fd, encoded) { state.size += encoded.count }
        followers.deliver(note)
    }

    // MARK: Reading

    /// Everything captured so far and, while the agent runs, a feed of what
    /// comes next, taken atomically so nothing is missed or repeated.
    func follow() -> (existing: [LogRecord], live: BoundedSubscription<LogRecord>?) {
        state.withLock { state in
            let existing = Self.read(path: path)
            guard !state.finished else { return (existing, nil) }
            return (existing, followers.add(buffer: Self.followerBuffer))
        }
    }

    /// Waits until both pipes reached end of file, or `milliseconds` passed
    /// (a descendant that inherited the pipes may keep them open for ever).
    func waitFinished(milliseconds: Int64) async {
        let signal = Handoff<Void>()
        let alreadyDone = state.withLock { state -> Bool in
            if state.finished { return true }
            state.finishSignals.append(signal)
            return false
        }
        if alreadyDone { return }
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(milliseconds))
            signal.fulfil(())
        }
        await signal.value()
        timer.cancel()
    }

    /// The records of `<path>.1` then `<path>`.
    static func read(path: String) -> [LogRecord] {
        readFile(path + ".1") + readFile(path)
    }

    static func readFile(_ path: String) -> [LogRecord] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                bytes.append(contentsOf: chunk[0..<n])
            } else if n == 0 || errno != EINTR {
                break
            }
        }
        return decode(bytes)
    }

    static func encode(_ record: LogRecord) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(headerSize + record.data.count)
        bytes.append(magic)
        bytes.append(record.stream.rawValue)
        bytes.append(0)
        bytes.append(0)
        let length = UInt32(record.data.count)
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: length >> UInt32(shift))) }
        let time = UInt64(bitPattern: record.time)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: time >> UInt64(shift))) }
        bytes.append(contentsOf: record.data)
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> [LogRecord] {
        var records = [LogRecord]()
        var offset = 0
        while bytes.count - offset >= headerSize {
            guard bytes[offset] == magic, let stream = LogRecord.Stream(rawValue: bytes[offset + 1]) else { break }
            var length = 0
            for index in 4..<8 { length = length << 8 | Int(bytes[offset + index]) }
            var time: UInt64 = 0
            for index in 8..<16 { time = time << 8 | UInt64(bytes[offset + index]) }
            let start = offset + headerSize
            guard bytes.count - start >= length else { break }
            records.append(LogRecord(stream: stream, time: Int64(bitPattern: time),
                                     data: Array(bytes[start..<start + length])))
            offset = start + length
        }
        return records
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        guard fd >= 0 else { return false }
        return bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return true }
            var written = 0
            while written < buffer.count {
                let n = Glibc.write(fd, base + written, buffer.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += n
            }
            return true
        }
    }
}
