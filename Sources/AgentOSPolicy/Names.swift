// The spelling rules for names a policy introduces.

enum Names {
    private static func isLowerAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        (scalar >= "a" && scalar <= "z") || (scalar >= "0" && scalar <= "9")
    }

    private static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        isLowerAlphanumeric(scalar) || (scalar >= "A" && scalar <= "Z")
    }

    /// A policy's name: `[a-z0-9][a-z0-9_-]*`, at most 63 characters (it
    /// appears in agent names, paths and commands).
    static func isPolicyName(_ name: String) -> Bool {
        let scalars = name.unicodeScalars
        guard let first = scalars.first, scalars.count <= 63, isLowerAlphanumeric(first) else { return false }
        return scalars.allSatisfy { isLowerAlphanumeric($0) || $0 == "_" || $0 == "-" }
    }

    static let policyNameRule = "use 1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit"

    /// A child id: the kernel's rule for agent names (ids become parts of
    /// them), which also keeps '/' out of a path segment.
    static func isChildID(_ id: String) -> Bool {
        let scalars = id.unicodeScalars
        guard let first = scalars.first, scalars.count <= 63, isAlphanumeric(first) else { return false }
        return scalars.allSatisfy { isAlphanumeric($0) || $0 == "." || $0 == "_" || $0 == "-" }
    }

    static let childIDRule = "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"

    /// A seccomp profile: a file name in the kernel's Policies/seccomp, without `.json`.
    static func isProfileName(_ name: String) -> Bool {
        isChildID(name)
    }

    /// What the kernel accepts as an environment variable name.
    static func isEnvironmentName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("=") && !name.unicodeScalars.contains("\0")
    }

    /// Why `path` cannot be shared with an agent as written, or nil.
    static func hostPathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "'\(path)' is relative: give an absolute path" }
        guard !path.split(separator: "/").contains("..") else { return "'\(path)' has '..': give a plain absolute path" }
        guard path.contains(where: { $0 != "/" }) else { return "the host root cannot be shared" }
        return nil
    }
}
