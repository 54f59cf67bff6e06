import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Paths as capability checks see them: absolute, with `.`, `..`, repeated
/// slashes and every symlink resolved, so that a path matches a pattern only
/// if the file it reaches is inside what the pattern names.
public enum FilePaths {
    /// The canonical form of `path`. Its existing part is resolved by the
    /// host (`realpath`: symlinks followed); a part that does not exist yet
    /// (a file about to be written) is appended as given, and must not hold
    /// `..` (there is nothing to resolve it against).
    public static func canonical(_ path: String) throws(CapabilityError) -> String {
        guard path.hasPrefix("/") else { throw CapabilityError(.invalidPath, "\(path): not an absolute path") }
        guard !path.utf8.contains(0) else { throw CapabilityError(.invalidPath, "a path with a NUL byte") }
        var existing = path
        var missing: [String] = []
        while true {
            if let resolved = realpath(existing, nil) {
                defer { free(resolved) }
                let base = String(cString: resolved)
                if missing.contains(where: { $0 == ".." || $0 == "." }) {
                    throw CapabilityError(.invalidPath, "\(path): '..' or '.' below a part that does not exist")
                }
                return missing.reversed().reduce(base) { $0 == "/" ? "/" + $1 : $0 + "/" + $1 }
            }
            guard errno == ENOENT, existing != "/" else {
                throw CapabilityError(.invalidPath, "\(path): \(String(cString: strerror(errno)))")
            }
            let ns = existing as NSString
            let last = ns.lastPathComponent
            if !last.isEmpty && last != "/" { missing.append(last) }
            existing = ns.deletingLastPathComponent
            if existing.isEmpty { existing = "/" }
        }
    }

    /// `path` (absolute) without empty or "." components or a trailing
    /// slash, decided on its text alone (nothing is looked up); nil if it
    /// has a ".." component, which only the host can resolve.
    public static func lexical(_ path: String) -> String? {
        var components: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            if component == ".." { return nil }
            if component != "." { components.append(component) }
        }
        return "/" + components.joined(separator: "/")
    }
}
