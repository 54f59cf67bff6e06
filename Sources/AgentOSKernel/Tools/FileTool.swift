import AgentOSCapabilities
import AgentOSConfinement
import AgentOSTools
import Foundation

/// file.read, file.write and file.list: agentos-file-tool in a tool
/// sandbox whose mount namespace holds only the path asked for (resolved
/// here, then bound with no symlink followed): read-only for read and
/// list, writable for write (the file, or its dir when it is to be created).
struct FileTool {
    let services: KernelServices
    let limits: ResourceLimits

    /// How long a file tool may run.
    static let timeoutMilliseconds: Int64 = 30_000

    func prepare(_ tool: ToolDefinition, _ arguments: ToolArguments) throws -> ToolCalls.Prepared {
        guard let asked = arguments.string("path") else { throw KernelError(.invalidArgument, "\(tool.name): no path") }
        guard asked.hasPrefix("/") else {
            throw KernelError(.invalidArgument, "\(tool.name): path '\(asked)' is not absolute")
        }
        let path: String
        do {
            path = try FilePaths.canonical(asked)
        } catch {
            throw KernelError(.invalidArgument, "\(tool.name): \(error.message)")
        }
        if let problem = Lifecycle.shareProblem(path, stateDirectory: services.configuration.stateDirectory),
           Lifecycle.systemDirectory(containing: path) == nil {
            throw KernelError(.invalidArgument, "\(tool.name) \(path): \(problem)")
        }
        let helper = services.configuration.fileToolHelper
        // A helper installed in a system dir is in every sandbox already.
        var plan = ToolSandbox.Plan(program: helper, arguments: [],
                                    readOnly: Lifecycle.systemDirectory(containing: helper) == nil ? [helper] : [],
                                    limits: ToolCalls.toolLimits(limits), timeoutMilliseconds: Self.timeoutMilliseconds,
                                    stdoutLimit: 0)
        // A path in a system dir is in every sandbox already (read-only).
        let visible = Lifecycle.systemDirectory(containing: path) != nil
        var info = stat()
        let exists = lstat(path, &info) == 0
        let missing = (JSONValue.object(["path": .string(path), "error": .string("No such file or directory")]), true)
        switch tool.name {
        case BuiltinTools.fileRead.name:
            let limit = Int(arguments.integer("max_bytes") ?? Int64(BuiltinTools.readLimit))
            plan.arguments = ["read", path, String(limit)]
            plan.stdoutLimit = limit
            if !visible { plan.readOnly.append(path) }
            return ToolCalls.Prepared(resource: path, plan: plan, result: { Self.readResult($0, path: path, limit: limit) },
                                      immediate: exists ? nil : missing)
        case BuiltinTools.fileList.name:
            let limit = Int(arguments.integer("max_entries") ?? Int64(BuiltinTools.listLimit))
            plan.arguments = ["list", path, String(limit)]
            plan.stdoutLimit = limit * 300
            if !visible { plan.readOnly.append(path) }
            return ToolCalls.Prepared(resource: path, plan: plan, result: { Self.listResult($0, path: path) },
                                      immediate: exists ? nil : missing)
        default:
            if visible {
                throw KernelError(.invalidArgument,
                                  "file.write \(path): inside \(Lifecycle.systemDirectory(containing: path) ?? "/"), which tools see read-only")
            }
            let content: [UInt8]
            if let text = arguments.string("content") {
                content = Array(text.utf8)
            } else if let encoded = arguments.string("content_base64") {
                guard let data = Data(base64Encoded: encoded) else {
                    throw KernelError(.invalidArgument, "file.write: content_base64 is not valid base64")
                }
                content = [UInt8](data)
            } else {
                content = []
            }
            guard content.count <= BuiltinTools.writeLimit else {
                throw KernelError(.invalidArgument, "file.write: \(content.count) bytes; at most \(BuiltinTools.writeLimit)")
            }
            let mode = arguments.string("mode") ?? "create"
            // What exists is told only once the check allowed the ask (as an
            // answer without a run): nothing about paths the agent may not see.
            var immediate: (JSONValue, Bool)?
            func fails(_ message: String) -> (JSONValue, Bool) {
                (.object(["path": .string(path), "error": .string(message)]), true)
            }
            // An existing file is bound itself; a new one needs its dir.
            if exists {
                if (info.st_mode & S_IFMT) == S_IFREG { plan.readWrite.append(path) } else { immediate = fails("not a regular file") }
            } else {
                let parent = (path as NSString).deletingLastPathComponent
                var isDirectory: ObjCBool = false
                if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) || !isDirectory.boolValue {
                    immediate = fails("the dir \(parent) does not exist")
                } else if let problem = Lifecycle.shareProblem(parent, stateDirectory: services.configuration.stateDirectory) {
                    throw KernelError(.invalidArgument, "file.write \(path): \(problem)")
                } else {
                    plan.readWrite.append(parent)
                }
            }
            plan.input = content
            plan.arguments = ["write", path, mode, ToolSandbox.inputName]
            return ToolCalls.Prepared(resource: path, plan: plan, result: { Self.writeResult($0, path: path, mode: mode) },
                                      immediate: immediate)
        }
    }

    // MARK: Results

    /// agentos-file-tool's last stderr line: "ok N..." or "error ERRNO: what".
    private static func outcomeLine(_ outcome: ToolSandbox.Outcome) -> (ok: [Int]?, error: String) {
        let text = String(decoding: outcome.stderr, as: UTF8.self)
        let line = text.split(separator: "\n").last.map(String.init) ?? ""
        if line.hasPrefix("ok ") {
            return (line.dropFirst(3).split(separator: " ").compactMap { Int($0) }, "")
        }
        if outcome.timedOut { return (nil, "timed out") }
        if line.hasPrefix("error ") {
            // "error 2: open /x: No such file or directory" -> the part after the number.
            let message = line.drop { $0 != ":" }.dropFirst().trimmingCharacters(in: .whitespaces)
            return (nil, message)
        }
        return (nil, line.isEmpty ? "the file tool \(outcome.exit)" : line)
    }

    private static func failure(_ message: String, path: String) -> (JSONValue, Bool) {
        (.object(["path": .string(path), "error": .string(message)]), true)
    }

    static func readResult(_ outcome: ToolSandbox.Outcome, path: String, limit: Int) -> (JSONValue, Bool) {
        let (numbers, error) = outcomeLine(outcome)
        guard let size = numbers?.first else { return failure(error, path: path) }
        var result: [String: JSONValue] = [
            "path": .string(path), "size": .integer(Int64(size)),
            "truncated": .bool(size > outcome.stdout.count),
        ]
        if let text = String(validating: outcome.stdout, as: UTF8.self) {
            result["content"] = .string(text)
            result["encoding"] = .string("utf-8")
        } else {
            result["content"] = .string(Data(outcome.stdout).base64EncodedString())
            result["encoding"] = .string("base64")
        }
        return (.object(result), false)
    }

    static func listResult(_ outcome: ToolSandbox.Outcome, path: String) -> (JSONValue, Bool) {
        let (numbers, error) = outcomeLine(outcome)
        guard let numbers, numbers.count == 2 else { return failure(error, path: path) }
        var entries: [JSONValue] = []
        for record in outcome.stdout.split(separator: 0) {
            // "TYPE SIZE NAME"
            let parts = record.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let size = Int64(String(decoding: parts[1], as: UTF8.self)) else { continue }
            let type = switch String(decoding: parts[0], as: UTF8.self) {
            case "f": "file"
            case "d": "dir"
            case "l": "symlink"
            default: "other"
            }
            entries.append(.object(["name": .string(String(decoding: parts[2], as: UTF8.self)), "type": .string(type),
                                    "size": .integer(size)]))
        }
        return (.object(["path": .string(path), "entries": .array(entries),
                         "truncated": .bool(numbers[1] > entries.count), "total": .integer(Int64(numbers[1]))]), false)
    }

    static func writeResult(_ outcome: ToolSandbox.Outcome, path: String, mode: String) -> (JSONValue, Bool) {
        let (numbers, error) = outcomeLine(outcome)
        guard let written = numbers?.first else { return failure(error, path: path) }
        return (.object(["path": .string(path), "bytes_written": .integer(Int64(written)), "mode": .string(mode)]), false)
    }
}
