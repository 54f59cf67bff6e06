import ArgumentParser
import CAgentOSShim
#if canImport(Glibc)
import Glibc
#endif

/// Which CPUs the calling thread may run on. A process inherits the mask
/// of the thread that starts it, so a benchmark places the processes it
/// compares (on one core, or on two) by setting its own thread's mask
/// around their start. CPUs 0-63 only.
enum CPUAffinity {
    /// The CPUs the calling thread may run on, in order.
    static func allowed() -> [Int] {
        var mask: UInt64 = 0
        guard aos_thread_cpus(&mask) == 0 else { return [] }
        return (0..<64).filter { mask & (1 << UInt64($0)) != 0 }
    }

    /// Runs `body` with the calling thread on `cpus` only, then restores its mask.
    static func on<T>(_ cpus: [Int], _ body: () throws -> T) throws -> T {
        let before = allowed()
        try set(cpus)
        defer { try? set(before) }
        return try body()
    }

    private static func set(_ cpus: [Int]) throws {
        let mask = cpus.filter { (0..<64).contains($0) }.reduce(UInt64(0)) { $0 | (1 << UInt64($1)) }
        let result = aos_thread_set_cpus(mask)
        guard result == 0 else {
            throw ValidationError("sched_setaffinity to CPUs \(cpus): \(String(cString: strerror(-result)))")
        }
    }
}
