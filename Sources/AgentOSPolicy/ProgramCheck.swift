// Whether a worker's program exists: checked when a policy is validated so
// that a typo is an error with a line number, not a child that fails to
// start at 3 a.m. Injectable, so tests do not depend on the host.

import Foundation

extension PolicyParser {
    /// Answers whether a program, as written in a policy (an absolute path
    /// or a bare name), names an executable file.
    public typealias ProgramCheck = @Sendable (String) -> Bool

    /// The PATH bare program names are looked up in.
    public static let systemPath = PolicyKeys.systemPath.joined(separator: ":")

    /// The real filesystem: an absolute path must be an executable regular
    /// file; a bare name must be one in a directory of the system PATH.
    public static let systemProgramExists: ProgramCheck = { program in
        if program.hasPrefix("/") { return isExecutableFile(program) }
        guard !program.isEmpty, !program.contains("/") else { return false }
        return PolicyKeys.systemPath.contains { isExecutableFile($0 + "/" + program) }
    }

    private static func isExecutableFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && FileManager.default.isExecutableFile(atPath: path)
    }
}
