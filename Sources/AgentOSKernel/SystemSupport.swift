import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Wall-clock time as the protocol carries it: unix nanoseconds.
func unixNanoseconds() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
}

/// Message ids: unique and unguessable enough to de-duplicate by, made
/// without a system call each (a bus message needs one on the hot path;
/// ids that guard anything come from `randomHexID`). SplitMix64 of a
/// random seed plus a counter: a bijection, so no repeat within a run, and
/// another run's seed lands elsewhere in 2^64.
enum MessageIDs {
    private static let seed: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()
    private static let counter = Atomic<UInt64>(0)

    /// 16 lower-case hex digits.
    static func next() -> String {
        var z = seed &+ counter.add(1, ordering: .relaxed).newValue &* 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        z ^= z >> 31
        let text = String(z, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }
}

/// A random lower-case hex identifier of `length` characters.
func randomHexID(length: Int = 12) -> String {
    var generator = SystemRandomNumberGenerator()
    let digits = Array("0123456789abcdef")
    var result = ""
    result.reserveCapacity(length)
    var bits: UInt64 = 0
    for index in 0..<length {
        if index % 16 == 0 { bits = generator.next() }   // one draw per 16 digits
        result.append(digits[Int(bits & 0xF)])
        bits >>= 4
    }
    return result
}

/// mkdir -p with a mode for the directories it creates.
func makeDirectories(_ path: String, mode: mode_t) throws(KernelError) {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/" + component
        if mkdir(current, mode) != 0 && errno != EEXIST {
            throw KernelError(.internal, "cannot create directory \(current): \(String(cString: strerror(errno)))")
        }
    }
}

/// An exclusive flock held for the life of the process, with the holder's
/// pid written inside so the refusal can name it.
final class ExclusiveLock: Sendable {
    let path: String
    private let fd: Int32

    init(path: String, purpose: String) throws(KernelError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw KernelError(.internal, "cannot open lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, 31, 0)
            close(fd)
            let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines) : "unknown"
            throw KernelError(.alreadyExists,
                              "another agentd (pid \(holder)) is already using \(purpose) (lock \(path))")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.path = path
        self.fd = fd
    }

    /// Releases the lock; the file stays (removing it would race a new holder).
    func release() {
        _ = flock(fd, LOCK_UN)
        close(fd)
    }
}

