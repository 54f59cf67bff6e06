import CAgentOSShim
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The one thread that creates and reaps children.
///
/// Spawning happens on this long-lived thread because PR_SET_PDEATHSIG fires
/// when the *thread* that created a child exits, not the process: children
/// must die with the kernel, not with some pooled worker thread. The same
/// thread waits on every child's pidfd with epoll (no SIGCHLD handler, no
/// waitpid(-1) that would steal other code's children).
public final class ProcessReactor: Sendable {
    private enum Command {
        case spawn(SpawnSpec, CheckedContinuation<ChildProcess, any Error>)
        case stop
    }

    private struct Shared {
        var commands: [Command] = []
        var running = true
    }

    private let epollFD: Int32
    private let wakeFD: Int32
    private let shared = Mutex(Shared())
    private static let wakeToken: UInt64 = .max

    public init() throws(ConfinementError) {
        let epollFD = aos_epoll_create()
        guard epollFD >= 0 else { throw .system("epoll_create1", errno: -epollFD) }
        let wakeFD = aos_eventfd()
        guard wakeFD >= 0 else {
            close(epollFD)
            throw .system("eventfd", errno: -wakeFD)
        }
        let rc = aos_epoll_add(epollFD, wakeFD, Self.wakeToken)
        guard rc == 0 else {
            close(epollFD)
            close(wakeFD)
            throw .system("epoll_ctl", errno: rc)
        }
        self.epollFD = epollFD
        self.wakeFD = wakeFD
        let thread = Thread { [self] in self.loop() }
        thread.name = "agentos-reactor"
        thread.start()
    }

    /// Starts a child per `spec`; returns once it has exec'd.
    public func spawn(_ spec: SpawnSpec) async throws -> ChildProcess {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = shared.withLock { shared -> Bool in
                guard shared.running else { return false }
                shared.commands.append(.spawn(spec, continuation))
                return true
            }
            if accepted {
                wake()
            } else {
                continuation.resume(throwing: ConfinementError(.reactorStopped, "the process reactor has stopped"))
            }
        }
    }

    /// Stops the thread. Children already spawned are not touched.
    public func shutdown() {
        let first = shared.withLock { shared -> Bool in
            defer { shared.running = false }
            if shared.running { shared.commands.append(.stop) }
            return shared.running
        }
        if first { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    // MARK: The thread

    private enum TokenKind: UInt64 {
        case child = 1
        case output = 2
        case ready = 3
        /// The ready pipe after "ok": the monitor's "exit STATUS" line.
        case exitReport = 4
    }

    /// A spawn waiting for its sandbox to say the agent runs.
    private struct PendingReady {
        let child: ChildProcess
        let continuation: CheckedContinuation<ChildProcess, any Error>
        var received: [UInt8] = []
    }

    private struct OutputPipe {
        let group: OutputGroup
        let stream: OutputStream
    }

    /// The two pipes of one child share a sink; it finishes when both end.
    private final class OutputGroup {
        let sink: any OutputSink
        var open = 2
        init(sink: any OutputSink) { self.sink = sink }
    }

    private static func token(_ kind: TokenKind, _ fd: Int32) -> UInt64 {
        kind.rawValue << 32 | UInt64(UInt32(bitPattern: fd))
    }

    private func loop() {
        var children: [Int32: ChildProcess] = [:]    // by pidfd
        var pipes: [Int32: OutputPipe] = [:]         // by read end
        var readiness: [Int32: PendingReady] = [:]   // by read end
        var reports: [Int32: (child: ChildProcess, received: [UInt8])] = [:]   // by read end
        var tokens = [UInt64](repeating: 0, count: 64)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)

        while true {
            let count = aos_epoll_wait(epollFD, &tokens, 64, -1)
            if count < 0 { continue }
            for index in 0..<Int(count) {
                let token = tokens[index]
                let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: token))
                if token == Self.wakeToken {
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                    let commands = shared.withLock { shared -> [Command] in
                        defer { shared.commands.removeAll() }
                        return shared.commands
                    }
                    for command in commands {
                        switch command {
                        case .spawn(let spec, let continuation):
                            do {
                                let (child, readEnds, readyEnd) = try spawnNow(spec, devNull: devNull)
                                children[child.pidfd] = child
                                _ = aos_epoll_add(epollFD, child.pidfd, Self.token(.child, child.pidfd))
                                if let readEnds, let sink = spec.output {
                                    let group = OutputGroup(sink: sink)
                                    pipes[readEnds.stdout] = OutputPipe(group: group, stream: .stdout)
                                    pipes[readEnds.stderr] = OutputPipe(group: group, stream: .stderr)
                                    _ = aos_epoll_add(epollFD, readEnds.stdout, Self.token(.output, readEnds.stdout))
                                    _ = aos_epoll_add(epollFD, readEnds.stderr, Self.token(.output, readEnds.stderr))
                                }
                                if let readyEnd {
                                    readiness[readyEnd] = PendingReady(child: child, continuation: continuation)
                                    _ = aos_epoll_add(epollFD, readyEnd, Self.token(.ready, readyEnd))
                                } else {
                                    continuation.resume(returning: child)
                                }
                            } catch {
                                continuation.resume(throwing: error)
                            }
                        case .stop:
                            finish(pipes: pipes, readiness: readiness, reports: reports)
                            if devNull >= 0 { close(devNull) }
                            return
                        }
                    }
                } else if token >> 32 == TokenKind.child.rawValue {
                    guard let child = children[fd] else { continue }
                    _ = aos_epoll_remove(epollFD, fd)
                    if child.reap() {
                        children[fd] = nil
                    } else {
                        _ = aos_epoll_add(epollFD, fd, token)
                    }
                } else if token >> 32 == TokenKind.ready.rawValue {
                    guard var pending = readiness[fd] else { continue }
                    let n = read(fd, buffer.baseAddress, buffer.count)
                    if n > 0 {
                        pending.received += UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                        readiness[fd] = pending
                        if !pending.received.contains(UInt8(ascii: "\n")) { continue }
                    } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                        continue
                    }
                    readiness[fd] = nil
                    // After "ok" the same pipe brings the agent's exit, ahead of the monitor's.
                    let started = Self.resolve(pending)
                    if started, let rest = Self.afterFirstLine(pending.received) {
                        reports[fd] = (pending.child, rest)
                        _ = aos_epoll_remove(epollFD, fd)
                        _ = aos_epoll_add(epollFD, fd, Self.token(.exitReport, fd))
                        if let exit = Self.exitReport(rest) {
                            pending.child.report(exit)
                            _ = aos_epoll_remove(epollFD, fd)
                            close(fd)
                            reports[fd] = nil
                        }
                    } else {
                        _ = aos_epoll_remove(epollFD, fd)
                        close(fd)
                    }
                } else if token >> 32 == TokenKind.exitReport.rawValue {
                    guard var report = reports[fd] else { continue }
                    let n = read(fd, buffer.baseAddress, buffer.count)
                    if n > 0 {
                        report.received += UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                        reports[fd] = report
                        guard let exit = Self.exitReport(report.received) else { continue }
                        report.child.report(exit)
                    } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                        continue
                    }
                    // Reported, or EOF without a report (the pidfd tells then).
                    _ = aos_epoll_remove(epollFD, fd)
                    close(fd)
                    reports[fd] = nil
                } else if token >> 32 == TokenKind.output.rawValue {
                    guard let pipe = pipes[fd] else { continue }
                    let n = read(fd, buffer.baseAddress, buffer.count)
                    if n > 0 {
                        pipe.group.sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), stream: pipe.stream)
                    } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                        _ = aos_epoll_remove(epollFD, fd)
                        close(fd)
                        pipes[fd] = nil
                        pipe.group.open -= 1
                        if pipe.group.open == 0 { pipe.group.sink.finish() }
                    }
                }
            }
        }
    }

    /// What came after the first line, if the first line is complete.
    private static func afterFirstLine(_ bytes: [UInt8]) -> [UInt8]? {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        return Array(bytes[(newline + 1)...])
    }

    /// "exit STATUS\n": the agent's wait status, as the monitor will end.
    private static func exitReport(_ bytes: [UInt8]) -> ProcessExit? {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = String(decoding: bytes[..<newline], as: UTF8.self)
        guard line.hasPrefix("exit "), let status = Int32(line.dropFirst(5)) else { return nil }
        let signal = status & 0x7f
        if signal == 0 { return .exited(code: (status >> 8) & 0xff) }
        return .signaled(signal: signal, coreDumped: status & 0x80 != 0)
    }

    /// The sandbox's first line: "ok", or why the agent could not start.
    /// Returns whether the agent started.
    @discardableResult
    private static func resolve(_ pending: PendingReady) -> Bool {
        let text = String(decoding: pending.received, as: UTF8.self)
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        if line == "ok" {
            pending.continuation.resume(returning: pending.child)
            return true
        }
        // "error ERRNO: what: why" from the sandbox helper.
        var reason = line.isEmpty ? "the sandbox exited before the agent started" : line
        var number: Int32 = 0
        if line.hasPrefix("error "), let colon = line.firstIndex(of: ":") {
            number = Int32(line[line.index(line.startIndex, offsetBy: 6)..<colon]) ?? 0
            reason = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        }
        let isExec = reason.hasPrefix("exec ")
        let code: ConfinementError.Code
        switch number {
        case ENOENT where isExec: code = .programNotFound
        case EACCES where isExec, ENOEXEC where isExec: code = .programNotExecutable
        default: code = .spawnFailed
        }
        pending.continuation.resume(throwing: ConfinementError(code, "sandbox: \(reason)", errno: number == 0 ? nil : number))
        return false
    }

    private func finish(pipes: [Int32: OutputPipe], readiness: [Int32: PendingReady],
                        reports: [Int32: (child: ChildProcess, received: [UInt8])]) {
        // Spawns waiting for their sandbox's first line get an answer; the
        // pipes go (their children stay owned by their ChildProcess).
        for (fd, pending) in readiness {
            close(fd)
            pending.continuation.resume(throwing: ConfinementError(.reactorStopped, "the process reactor has stopped"))
        }
        for fd in reports.keys { close(fd) }
        // Refuse spawns queued after stop; end every capture so readers stop
        // waiting. Live children stay owned by their ChildProcess.
        let leftover = shared.withLock { shared -> [Command] in
            defer { shared.commands.removeAll() }
            return shared.commands
        }
        for case .spawn(_, let continuation) in leftover {
            continuation.resume(throwing: ConfinementError(.reactorStopped, "the process reactor has stopped"))
        }
        var finished = Set<ObjectIdentifier>()
        for (fd, pipe) in pipes {
            close(fd)
            if finished.insert(ObjectIdentifier(pipe.group)).inserted { pipe.group.sink.finish() }
        }
        close(epollFD)
        close(wakeFD)
    }

    private struct ReadEnds {
        let stdout: Int32
        let stderr: Int32
    }

    private func spawnNow(_ spec: SpawnSpec, devNull: Int32) throws(ConfinementError) -> (ChildProcess, ReadEnds?, Int32?) {
        guard devNull >= 0 else { throw ConfinementError(.spawnFailed, "cannot open /dev/null") }
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        var readEnds: ReadEnds?
        if spec.output != nil {
            let outRC = aos_pipe(&outPipe)
            guard outRC == 0 else { throw .system("pipe2", errno: -outRC) }
            let errRC = aos_pipe(&errPipe)
            guard errRC == 0 else {
                close(outPipe[0]); close(outPipe[1])
                outPipe = [-1, -1]
                throw .system("pipe2", errno: -errRC)
            }
            _ = fcntl(outPipe[0], F_SETFL, O_NONBLOCK)
            _ = fcntl(errPipe[0], F_SETFL, O_NONBLOCK)
            readEnds = ReadEnds(stdout: outPipe[0], stderr: errPipe[0])
        }
        var readyPipe: [Int32] = [-1, -1]
        if spec.readyPipeTarget != nil {
            let rc = aos_pipe(&readyPipe)
            guard rc == 0 else {
                if let readEnds { close(readEnds.stdout); close(readEnds.stderr) }
                close(outPipe[1]); close(errPipe[1])
                outPipe = [-1, -1]
                errPipe = [-1, -1]
                throw .system("pipe2", errno: -rc)
            }
            _ = fcntl(readyPipe[0], F_SETFL, O_NONBLOCK)
        }
        // The parent's copies of the child's ends close whatever happens.
        defer {
            if outPipe[1] >= 0 { close(outPipe[1]) }
            if errPipe[1] >= 0 { close(errPipe[1]) }
            if readyPipe[1] >= 0 { close(readyPipe[1]) }
        }
        let argv = CStringArray(spec.arguments)
        let envp = CStringArray(spec.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        var result = aos_spawn_result()
        let cgroupFDs = spec.cgroupProcsFDs
        let rc: Int32 = spec.executable.withCString { path in
            withOptionalCString(spec.workingDirectory) { cwd in cgroupFDs.withUnsafeBufferPointer { cgroups in
                var request = aos_spawn_request()
                request.path = path
                request.argv = UnsafePointer(argv.pointer)
                request.envp = UnsafePointer(envp.pointer)
                request.cwd = cwd
                request.stdin_fd = devNull
                request.stdout_fd = outPipe[1] >= 0 ? outPipe[1] : devNull
                request.stderr_fd = errPipe[1] >= 0 ? errPipe[1] : devNull
                request.extra_fd = spec.protocolSocket ?? -1
                request.extra_fd_target = spec.protocolSocketTarget
                request.second_fd = readyPipe[1]
                request.second_fd_target = spec.readyPipeTarget ?? -1
                request.pdeath_signal = SIGKILL
                request.new_session = 1
                request.cgroup_procs_fds = cgroups.baseAddress
                request.cgroup_procs_count = Int32(cgroups.count)
                return aos_spawn(&request, &result)
            } }
        }
        guard rc == 0 else {
            if let readEnds {
                close(readEnds.stdout)
                close(readEnds.stderr)
            }
            if readyPipe[0] >= 0 { close(readyPipe[0]) }
            let code = result.error
            let text = errnoDescription(code)
            switch result.stage {
            case AOS_STAGE_EXEC where code == ENOENT:
                throw ConfinementError(.programNotFound, "cannot exec \(spec.executable): \(text)", errno: code)
            case AOS_STAGE_EXEC where code == EACCES || code == ENOEXEC:
                throw ConfinementError(.programNotExecutable, "cannot exec \(spec.executable): \(text)", errno: code)
            case AOS_STAGE_CGROUP:
                throw ConfinementError(.spawnFailed, "cannot join the agent's cgroup: \(text)", errno: code)
            case AOS_STAGE_CHDIR:
                throw ConfinementError(.spawnFailed, "cannot enter work dir \(spec.workingDirectory ?? ""): \(text)",
                                       errno: code)
            default:
                throw ConfinementError(.spawnFailed,
                                       "spawn of \(spec.executable) failed at \(stageName(result.stage)): \(text)",
                                       errno: code)
            }
        }
        return (ChildProcess(pid: result.pid, pidfd: result.pidfd), readEnds, readyPipe[0] >= 0 ? readyPipe[0] : nil)
    }

    private func stageName(_ stage: aos_spawn_stage) -> String {
        switch stage {
        case AOS_STAGE_PIPE: return "pipe"
        case AOS_STAGE_CLONE: return "clone"
        case AOS_STAGE_SIGNALS: return "signal setup"
        case AOS_STAGE_PDEATHSIG: return "PR_SET_PDEATHSIG"
        case AOS_STAGE_SETSID: return "setsid"
        case AOS_STAGE_FDS: return "descriptor setup"
        case AOS_STAGE_CHDIR: return "chdir"
        case AOS_STAGE_EXEC: return "exec"
        case AOS_STAGE_CGROUP: return "cgroup join"
        default: return "stage \(stage.rawValue)"
        }
    }
}

/// A NULL-terminated array of C strings that lives as long as the value.
final class CStringArray {
    let pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let count: Int

    init(_ strings: [String]) {
        count = strings.count
        pointer = .allocate(capacity: strings.count + 1)
        for (index, string) in strings.enumerated() {
            pointer[index] = strdup(string)
        }
        pointer[strings.count] = nil
    }

    deinit {
        for index in 0..<count { free(pointer[index]) }
        pointer.deallocate()
    }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}
