import AgentOSCapabilities
import AgentOSConfinement
import AgentOSTools
import Foundation

/// shell.execute: `/bin/sh -c COMMAND` or an argv, in a fresh tool sandbox
/// with no network. The ask is `shell execute` on the program started (its
/// canonical path: /bin/sh is /usr/bin/dash on Debian). With an `allowlist`
/// on the grant, the root holds only those programs (and the one started)
/// and Landlock lets nothing else be exec'd; without one, the system dirs
/// are there as for any agent. The child sees the dirs the calling agent's
/// file grants name whole (see `paths`).
struct ShellTool {
    let services: KernelServices
    let limits: ResourceLimits
    let agentID: String

    /// The file grants' dirs one run may see (the rest are left out, said in the result).
    static let maximumPaths = 32

    func prepare(_ arguments: ToolArguments) throws -> ToolCalls.Prepared {
        let argv: [String]
        if let command = arguments.string("command") {
            argv = ["/bin/sh", "-c", command]
        } else {
            argv = arguments.strings("argv") ?? []
        }
        guard let name = argv.first, !name.isEmpty else { throw KernelError(.invalidArgument, "shell.execute: no program") }
        if let bad = argv.first(where: { $0.utf8.contains(0) }) {
            throw KernelError(.invalidArgument, "shell.execute: '\(bad.replacingOccurrences(of: "\0", with: "\\0"))' contains a NUL byte")
        }
        let program: String
        do {
            program = try FilePaths.canonical(try ProgramLookup.resolve(name))
        } catch let error as CapabilityError {
            throw KernelError(.invalidArgument, "shell.execute: \(error.message)")
        } catch {
            throw KernelError.from(error)
        }
        let timeout = arguments.integer("timeout_ms") ?? BuiltinTools.defaultTimeoutMilliseconds
        var plan = ToolSandbox.Plan(program: program, arguments: Array(argv.dropFirst()),
                                    limits: ToolCalls.toolLimits(limits), timeoutMilliseconds: timeout,
                                    stdoutLimit: BuiltinTools.outputLimit, stderrLimit: BuiltinTools.outputLimit)
        let (readOnly, readWrite, grants) = paths()
        plan.readOnly = readOnly
        plan.readWrite = readWrite
        plan.grants = grants
        // The allowlist applies once the check has chosen the grant: see `restrict`.
        return ToolCalls.Prepared(resource: program, plan: plan) { Self.result($0) }
    }

    /// The allowlist of the grant that allowed the run, applied to its plan:
    /// the programs the root holds (canonical) and the names leading to
    /// them. The program started must be on it (for a `command`, the shell).
    static func restrict(_ plan: inout ToolSandbox.Plan, to allowlist: [String], landlockABI: Int) throws {
        guard landlockABI > 0 else {
            throw KernelError(.unsupported,
                              "shell.execute with an allowlist needs Landlock (its exec fence); this kernel has none")
        }
        var programs: [String] = []
        var links: [(link: String, program: String)] = []
        for entry in allowlist {
            guard entry.hasPrefix("/") else {
                throw KernelError(.invalidArgument, "allowlist entry \(entry): give the program's absolute path")
            }
            let canonical: String
            do {
                canonical = try FilePaths.canonical(entry)
            } catch {
                throw KernelError(.invalidArgument, "allowlist entry \(entry): \(error.message)")
            }
            var info = stat()
            guard stat(canonical, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
                  FileManager.default.isExecutableFile(atPath: canonical) else {
                throw KernelError(.invalidArgument, "allowlist entry \(entry): not an executable file")
            }
            if !programs.contains(canonical) { programs.append(canonical) }
            // /bin/sh -> /usr/bin/sh -> dash: the name, in its resolved dir, leads to the program.
            let directory = (try? FilePaths.canonical((entry as NSString).deletingLastPathComponent)) ?? "/"
            let link = (directory == "/" ? "" : directory) + "/" + (entry as NSString).lastPathComponent
            if link != canonical, !links.contains(where: { $0.link == link }) { links.append((link, canonical)) }
        }
        guard programs.contains(plan.program) else {
            throw KernelError(.permissionDenied,
                              "shell.execute: \(plan.program) is not on the grant's allowlist (\(allowlist.joined(separator: ",")))"
                                  + (plan.arguments.first == "-c" ? "; a command runs /bin/sh: add /bin/sh to run commands" : ""))
        }
        guard programs.count <= 64, links.count <= 64 else {
            throw KernelError(.invalidArgument, "an allowlist of more than 64 programs")
        }
        plan.programs = programs
        plan.programLinks = links
    }

    /// The dirs the calling agent's file grants cover, as the grants name
    /// them: a pattern `DIR/**` (the whole tree) or a file named exactly;
    /// read-only for `read`, writable for `write`. A pattern that covers
    /// only part of a dir (`/srv/*.txt`), one whose path holds a symlink, a
    /// grant that needs approval or has nothing left, is not bound (the file
    /// tools serve those, each call checked). Returns the grants used too:
    /// revoking one kills the run.
    private func paths() -> (readOnly: [String], readWrite: [String], grants: [String]) {
        var readOnly: [String] = [], readWrite: [String] = [], used: [String] = []
        let state = services.configuration.stateDirectory
        for grant in services.capabilities.grants(of: agentID) where grant.capability.kind == .file {
            let capability = grant.capability
            let pattern = capability.resource.pattern
            let prefix = capability.resource.literalPrefix
            let wholeTree = pattern == prefix + "/**"
            guard wholeTree || pattern == prefix,
                  capability.constraints.approval == nil, services.capabilities.isUsable(grant),
                  let path = try? FilePaths.canonical(prefix), path == prefix,
                  FileManager.default.fileExists(atPath: path),
                  Lifecycle.systemDirectory(containing: path) == nil,
                  Lifecycle.shareProblem(path, stateDirectory: state) == nil else { continue }
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            // A literal dir pattern names the dir, not what is in it.
            if !wholeTree && isDirectory.boolValue { continue }
            if capability.actions.contains("write") {
                readOnly.removeAll { $0 == path }
                if !readWrite.contains(path) { readWrite.append(path) }
                used.append(grant.record.id)
            } else if capability.actions.contains("read") {
                if !readWrite.contains(path) && !readOnly.contains(path) { readOnly.append(path) }
                used.append(grant.record.id)
            }
        }
        // A read-only dir inside a writable one is writable through it; the
        // other way round, the writable bind (made after) sits on top.
        readOnly.removeAll { path in readWrite.contains { path.hasPrefix($0 + "/") } }
        // Nested paths: the mounts go outer first (the helper binds in order).
        let order = { (a: String, b: String) in a.count < b.count }
        return (Array(readOnly.sorted(by: order).prefix(Self.maximumPaths)),
                Array(readWrite.sorted(by: order).prefix(Self.maximumPaths)), used)
    }

    static func result(_ outcome: ToolSandbox.Outcome) -> (JSONValue, Bool) {
        var result: [String: JSONValue] = [
            "stdout": .string(String(decoding: outcome.stdout, as: UTF8.self)),
            "stderr": .string(String(decoding: outcome.stderr, as: UTF8.self)),
            "stdout_truncated": .bool(outcome.stdoutDropped > 0),
            "stderr_truncated": .bool(outcome.stderrDropped > 0),
            "stdout_bytes": .integer(Int64(outcome.stdout.count + outcome.stdoutDropped)),
            "stderr_bytes": .integer(Int64(outcome.stderr.count + outcome.stderrDropped)),
            "timed_out": .bool(outcome.timedOut),
        ]
        switch outcome.exit {
        case .exited(let code):
            result["exit_code"] = .integer(Int64(code))
            result["signal"] = .null
        case .signaled(let signal, _):
            result["exit_code"] = .null
            result["signal"] = .string(signalName(signal))
        }
        return (.object(result), outcome.timedOut || outcome.exit != .exited(code: 0))
    }
}
