#if canImport(Glibc)
import Glibc
#endif

/// Finds the program an agent names, before anything is spawned, so a
/// typo is a clear error instead of a child that dies with code 127.
public enum ProgramLookup {
    public static let defaultSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The absolute path for `name`: itself when it holds a slash (it must
    /// then be absolute), else the first executable match in `searchPath`.
    public static func resolve(_ name: String, searchPath: String = defaultSearchPath) throws(ConfinementError) -> String {
        guard !name.isEmpty else {
            throw ConfinementError(.invalidSpec, "no program given")
        }
        if name.contains("/") {
            guard name.hasPrefix("/") else {
                throw ConfinementError(.invalidSpec, "program path '\(name)' is relative; give an absolute path")
            }
            try checkExecutable(name)
            return name
        }
        var sawNonExecutable: String?
        for directory in searchPath.split(separator: ":", omittingEmptySubsequences: true) {
            let candidate = directory + "/" + name
            do {
                try checkExecutable(candidate)
                return candidate
            } catch where error.code == .programNotExecutable {
                sawNonExecutable = sawNonExecutable ?? candidate
            } catch {
                continue
            }
        }
        if let sawNonExecutable {
            throw ConfinementError(.programNotExecutable, "program '\(sawNonExecutable)' is not executable")
        }
        throw ConfinementError(.programNotFound, "program '\(name)' not found in PATH (\(searchPath))")
    }

    static func checkExecutable(_ path: String) throws(ConfinementError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR {
                throw ConfinementError(.programNotFound, "program '\(path)' does not exist")
            }
            throw ConfinementError(.programNotExecutable, "program '\(path)': \(errnoDescription(code))", errno: code)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ConfinementError(.programNotExecutable, "program '\(path)' is not a regular file")
        }
        guard access(path, X_OK) == 0 else {
            throw ConfinementError(.programNotExecutable, "program '\(path)' is not executable")
        }
    }
}
