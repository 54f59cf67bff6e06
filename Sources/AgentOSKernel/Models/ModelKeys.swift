import Foundation

/// The providers' API keys: from a secrets file only the kernel can read,
/// else from the kernel's environment. They are handed to the HTTP request
/// and nowhere else: never to an agent, a log line, an event, the audit
/// chain or memory (Integration/Tests/ModelTests proves it by grepping the
/// state dir after a run).
struct ModelKeys: Sendable {
    private let secrets: [String: String]
    private let environment: [String: String]
    /// The secrets file, for error messages.
    let secretsFile: String?

    init(secretsFile: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws(KernelError) {
        self.secretsFile = secretsFile
        self.environment = environment
        secrets = try secretsFile.map { path throws(KernelError) in try Self.read(path) } ?? [:]
    }

    /// The key `name` names, or nil.
    func key(_ name: String) -> String? {
        if let value = secrets[name], !value.isEmpty { return value }
        if let value = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty,
           !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            return value
        }
        return nil
    }

    /// Where a missing key was looked for, for the error an agent gets.
    func whereLooked(_ name: String) -> String {
        "the kernel's environment variable \(name)" + (secretsFile.map { " or the entry \(name) of \($0)" } ?? "")
    }

    /// `NAME=value` lines (`#` comments, blank lines, optional quotes).
    /// Refused when anyone but the kernel's user could read or change it.
    static func read(_ path: String) throws(KernelError) -> [String: String] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw KernelError(.invalidArgument, "secrets file \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw KernelError(.invalidArgument, "secrets file \(path) is not a regular file")
        }
        guard info.st_uid == geteuid() else {
            throw KernelError(.invalidArgument, "secrets file \(path) belongs to uid \(info.st_uid), not the kernel's uid \(geteuid()): refused")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw KernelError(.invalidArgument, "secrets file \(path) has mode \(String(mode, radix: 8)): others could read the keys; "
                                  + "chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path), data.count <= 1 << 20,
              let text = String(data: data, encoding: .utf8) else {
            throw KernelError(.invalidArgument, "secrets file \(path) cannot be read as UTF-8 text (at most 1 MiB)")
        }
        var entries: [String: String] = [:]
        for (number, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let body = line.hasPrefix("export ") ? String(line.dropFirst(7)) : line
            guard let equals = body.firstIndex(of: "=") else {
                // The line may be a key: do not echo it.
                throw KernelError(.invalidArgument, "secrets file \(path), line \(number + 1): expected NAME=value")
            }
            let name = body[..<equals].trimmingCharacters(in: .whitespaces)
            var value = body[body.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                throw KernelError(.invalidArgument, "secrets file \(path), line \(number + 1): the name must be letters, digits and _")
            }
            // A key goes into an HTTP header: no control characters (and never echoed).
            guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
                throw KernelError(.invalidArgument, "secrets file \(path), line \(number + 1): the value of \(name) holds control characters")
            }
            entries[name] = value
        }
        return entries
    }
}
