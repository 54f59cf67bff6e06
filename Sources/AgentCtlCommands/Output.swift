import AgentOSProtocol
import Foundation

/// Printing for people and for programs.
enum Output {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func error(_ text: String, prefix: String = "agentctl: ") {
        FileHandle.standardError.write(Data((prefix + text + "\n").utf8))
    }

    /// Text without a newline (a streamed answer, as it arrives).
    static func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func json<T: Encodable>(_ value: T, pretty: Bool = true) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            : [.sortedKeys, .withoutEscapingSlashes]
        if let data = try? encoder.encode(value) {
            FileHandle.standardOutput.write(data)
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }

    /// Columns padded to their widest cell; the last column is not padded.
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = (header.isEmpty ? [] : [header]) + rows
        var widths = [Int](repeating: 0, count: all.map(\.count).max() ?? 0)
        for row in all {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        for row in all {
            let cells = row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }
            line(cells.joined(separator: "  "))
        }
    }

    static func timestamp(_ nanoseconds: Int64) -> String? {
        guard nanoseconds > 0 else { return nil }
        let date = Date(timeIntervalSince1970: Double(nanoseconds) / 1e9)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    /// "3s", "4m12s", "2h3m", "5d2h".
    static func duration(nanoseconds: Int64) -> String {
        let seconds = max(0, nanoseconds / 1_000_000_000)
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3_600 { return "\(seconds / 60)m\(seconds % 60)s" }
        if seconds < 86_400 { return "\(seconds / 3_600)h\(seconds % 3_600 / 60)m" }
        return "\(seconds / 86_400)d\(seconds % 86_400 / 3_600)h"
    }

    /// "512K", "256M", "1.5G".
    static func bytes(_ value: UInt64) -> String {
        let units: [(UInt64, String)] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")]
        for (size, suffix) in units where value >= size {
            let amount = Double(value) / Double(size)
            return (amount >= 10 || amount == amount.rounded() ? String(format: "%.0f", amount)
                : String(format: "%.1f", amount)) + suffix
        }
        return "\(value)B"
    }

    static func now() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1e9)
    }
}

/// Short text for how an agent ended: "exit 0", "SIGKILL (killed)".
func exitSummary(_ info: AgentInfo) -> String {
    guard info.hasExit else { return "" }
    let exit = info.exit
    var text: String
    if exit.reason == "lost" || exit.reason == "spawn-failed" {
        text = exit.reason
    } else if exit.reason == "oom" || exit.reason == "timeout" {
        return exit.reason == "oom" ? "OOM-killed" : "timed out"
    } else if exit.exited {
        text = "exit \(exit.code)"
    } else {
        text = signalName(exit.signal)
    }
    if !["exited", "signaled", "lost", "spawn-failed"].contains(exit.reason) { text += " (\(exit.reason))" }
    return text
}

func signalName(_ signal: Int32) -> String {
    let names: [Int32: String] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
        8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
        14: "SIGALRM", 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS",
    ]
    return names[signal] ?? "signal \(signal)"
}

/// The exit code `agentctl wait` returns for an agent: its code, 128 +
/// its signal, or 1 when it never ran or was lost.
func shellStatus(_ info: AgentInfo) -> Int32 {
    guard info.hasExit else { return 1 }
    if info.exit.reason == "lost" || info.exit.reason == "spawn-failed" { return 1 }
    return info.exit.exited ? info.exit.code : 128 + info.exit.signal
}
