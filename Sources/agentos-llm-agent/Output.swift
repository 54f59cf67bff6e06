import Foundation

/// What `agentctl logs` shows: progress on stdout, problems on stderr. Each
/// piece is one write(2) with no buffer in between, so a line is in the log
/// as soon as it is said, even if the agent is killed right after.
enum Output {
    static let prefix = "llm-agent: "

    static func say(_ line: String) {
        write(FileHandle.standardOutput, prefix + line + "\n")
    }

    /// Text without a line end (a streamed answer as it arrives).
    static func partial(_ text: String) {
        write(FileHandle.standardOutput, text)
    }

    static func warn(_ line: String, prefix: String = prefix) {
        write(FileHandle.standardError, prefix + line + "\n")
    }

    private static func write(_ handle: FileHandle, _ text: String) {
        // A closed log is no reason to stop working on the goal.
        try? handle.write(contentsOf: Data(text.utf8))
    }
}

extension String {
    /// At most `limit` bytes of UTF-8, cut on a character boundary, with a
    /// note of what was left out (tool output and results can be huge).
    func bounded(toBytes limit: Int) -> String {
        let bytes = Array(utf8)
        guard bytes.count > limit else { return self }
        var cut = limit
        // Never split a multi-byte sequence: back off over continuation bytes.
        while cut > 0 && bytes[cut] & 0xC0 == 0x80 { cut -= 1 }
        return String(decoding: bytes[..<cut], as: UTF8.self) + "\n[truncated: \(cut) of \(bytes.count) bytes shown]"
    }
}
