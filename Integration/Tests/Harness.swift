import AgentOSClient
import AgentOSProtocol
import Foundation
import Testing

/// The built binaries: $AGENTOS_BIN_DIR, else this checkout's .build/debug.
enum Binaries {
    static var directory: String {
        if let explicit = ProcessInfo.processInfo.environment["AGENTOS_BIN_DIR"], !explicit.isEmpty { return explicit }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return repository.appendingPathComponent(".build/debug").path
    }

    static var agentd: String { directory + "/agentd" }
    static var agentctl: String { directory + "/agentctl" }
    static var demoAgent: String { directory + "/agentos-demo-agent" }

    /// `--ro` flags that make the demo agent runnable inside a sandbox: its
    /// own directory and those of the shared libraries it loads from
    /// outside the system dirs (the Swift runtime).
    static var demoAgentSandboxFlags: [String] {
        var directories = [directory]
        if let ldd = try? runProgram("/usr/bin/ldd", [demoAgent]) {
            for line in ldd.lines {
                guard let arrow = line.range(of: "=> /") else { continue }
                let path = String(line[line.index(before: arrow.upperBound)...].split(separator: " ")[0])
                let parent = (path as NSString).deletingLastPathComponent
                let system = ["/usr/", "/lib/", "/lib64/", "/lib32/"].contains { parent.hasPrefix($0) || parent + "/" == $0 }
                if !system && !directories.contains(parent) { directories.append(parent) }
            }
        }
        return directories.flatMap { ["--ro", $0] }
    }
}

/// The host pid of the process running exactly `arguments`, once it exists.
func waitForHostPid(_ arguments: [String], timeout: Double = 10) throws -> Int32 {
    var found: Int32?
    _ = eventually(timeout: timeout) {
        found = hostPids(commandLine: arguments).first
        return found != nil
    }
    guard let found else { throw HarnessError("no process \(arguments.joined(separator: " ")) appeared") }
    return found
}

/// Host pids of processes whose command line is exactly `arguments`
/// (agents live in their own pid namespace: the pids they print are not
/// the host's).
func hostPids(commandLine arguments: [String]) -> [Int32] {
    let wanted = arguments.joined(separator: "\0") + "\0"
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: data, as: UTF8.self) == wanted && processExists(pid)
    }
}

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String

    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// Runs a program to completion and captures its output.
@discardableResult
func runProgram(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read before waiting so a chatty child cannot fill the pipe and block.
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                         stderr: String(decoding: stderr, as: UTF8.self))
}

func temporaryDirectory(_ label: String) throws -> String {
    let path = "/tmp/aos-\(label)-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Whether a process with this pid still exists (and is not a zombie).
func processExists(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    guard let state = stat.split(separator: ")").last?.split(separator: " ").first else { return false }
    return state != "Z" && state != "X"
}

func eventually(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return try condition()
}

/// A real `agentd` on a private state dir and socket.
final class KernelProcess {
    let directory: String
    let stateDirectory: String
    let socketPath: String
    let extraArguments: [String]
    private(set) var process: Process
    let logPath: String

    init(label: String, arguments: [String] = [], directory: String? = nil) throws {
        self.directory = try directory ?? temporaryDirectory(label)
        self.stateDirectory = self.directory + "/state"
        self.socketPath = self.directory + "/kernel.sock"
        self.extraArguments = arguments
        self.logPath = self.directory + "/agentd-\(UInt32.random(in: 0...UInt32.max)).log"
        self.process = Process()
        try start()
    }

    var pid: Int32 { process.processIdentifier }

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.agentd)
        process.arguments = ["--state-dir", stateDirectory, "--socket", socketPath, "--log-level", "debug"]
            + extraArguments
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let ready = eventually(timeout: 20) {
            guard process.isRunning else { return true }
            return (try? KernelClient.connect(socketPath: socketPath, client: "test")) != nil
        }
        guard ready, process.isRunning else {
            throw HarnessError("agentd did not start: \(kernelLog)")
        }
    }

    var kernelLog: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func client() throws -> KernelClient {
        try KernelClient.connect(socketPath: socketPath, client: "integration-test")
    }

    /// `agentctl ARGS` against this kernel (through AGENTOS_SOCKET, as a
    /// user's shell would set it).
    @discardableResult
    func ctl(_ arguments: [String]) throws -> CommandResult {
        var environment = ProcessInfo.processInfo.environment
        environment["AGENTOS_SOCKET"] = socketPath
        return try runProgram(Binaries.agentctl, arguments, environment: environment)
    }

    /// `agentctl ARGS --json`, decoded.
    func json(_ arguments: [String]) throws -> Any {
        let result = try ctl(Self.insertJSON(arguments))
        guard result.status == 0 else { throw HarnessError("agentctl \(arguments) failed: \(result.stderr)") }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }

    /// `--json` before any `--` separator, so it is not taken as the program's.
    static func insertJSON(_ arguments: [String]) -> [String] {
        var copy = arguments
        copy.insert("--json", at: arguments.firstIndex(of: "--") ?? arguments.count)
        return copy
    }

    func agent(_ reference: String) throws -> [String: Any] {
        guard let object = try json(["inspect", reference]) as? [String: Any] else { throw HarnessError("not an object") }
        return object
    }

    /// Runs an agent and returns its id.
    func run(_ arguments: [String]) throws -> String {
        let result = try ctl(["run"] + arguments)
        guard result.status == 0, let id = result.lines.last else {
            throw HarnessError("agentctl run \(arguments) failed (\(result.status)): \(result.stderr)")
        }
        return id
    }

    /// SIGTERM and wait: a clean shutdown. Returns agentd's exit status.
    @discardableResult
    func stop() -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
