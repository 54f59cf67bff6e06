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
        case hold(SpawnSpec, CheckedContinuation<HeldSandbox, any Error>)
        case awaitStart(ChildProcess, StartPipes, CheckedContinuation<ChildProcess, any Error>)
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
            submit(.spawn(spec, continuation)) { continuation.resume(throwing: $0) }
        }
    }

    /// Starts a sandbox helper that prepares itself and then waits for its
    /// request (`spec` has a ready, an exec and a request pipe target);
    /// returns at once. `send` gives it the request, `HeldSandbox.discard`
    /// ends it.
    public func hold(_ spec: SpawnSpec) async throws -> HeldSandbox {
        guard spec.readyPipeTarget != nil, spec.execPipeTarget != nil, spec.requestPipeTarget != nil else {
            throw ConfinementError(.spawnFailed, "a held sandbox needs a ready, an exec and a request pipe")
        }
        return try await withCheckedThrowingContinuation { continuation in
            submit(.hold(spec, continuation)) { continuation.resume(throwing: $0) }
        }
    }

    /// Gives a held sandbox its request at once, so that the caller can work
    /// while the sandbox finishes itself; `awaitStart` (or the ticket's
    /// `abandon`) must follow.
    /// (For an armed sandbox, `request` is its start block.)
    public func send(_ held: HeldSandbox, request: [UInt8]) throws(ConfinementError) -> StartTicket {
        guard request.count <= held.requestCapacity else {
            throw ConfinementError(.spawnFailed, "the request (\(request.count) bytes) does not fit the held sandbox's pipe")
        }
        guard let (requestFD, pipes) = held.take() else {
            throw ConfinementError(.spawnFailed, "the held sandbox was already used or discarded")
        }
        let (written, writeErrno) = Self.writeAll(request, to: requestFD)
        close(requestFD)
        guard written == request.count else {
            throw Self.sendFailed(held, pipes, writeErrno)
        }
        return StartTicket(child: held.child, pipes: pipes)
    }

    /// Arms a held sandbox: gives it the sandbox part of its request (the
    /// options with `--start later`, and the filter), after which it builds
    /// everything up to its agent's exec and waits there, as the agent.
    /// `send` then gives it the start block (the program and environment);
    /// `HeldSandbox.discard` ends it.
    public func arm(_ held: HeldSandbox, request: [UInt8]) throws(ConfinementError) {
        guard request.count <= held.requestCapacity else {
            throw ConfinementError(.spawnFailed, "the request (\(request.count) bytes) does not fit the held sandbox's pipe")
        }
        guard let (written, writeErrno) = held.withRequestPipe({ Self.writeAll(request, to: $0) }) else {
            throw ConfinementError(.spawnFailed, "the held sandbox was already used or discarded")
        }
        guard written == request.count else {
            guard let (requestFD, pipes) = held.take() else {
                throw ConfinementError(.spawnFailed, "the held sandbox was discarded")
            }
            close(requestFD)
            throw Self.sendFailed(held, pipes, writeErrno)
        }
    }

    /// Writes all of `bytes` unless the reader is gone: (bytes written, errno).
    private static func writeAll(_ bytes: [UInt8], to fd: Int32) -> (Int, Int32) {
        let written = bytes.withUnsafeBytes { bytes -> Int in
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress.map { $0 + done }, bytes.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                done += n
            }
            return done
        }
        return (written, errno)
    }

    /// Why a held sandbox did not take its request; it is killed.
    private static func sendFailed(_ held: HeldSandbox, _ pipes: StartPipes, _ writeErrno: Int32) -> ConfinementError {
        // Most likely it died first: its own reason beats "broken pipe".
        var reason = [UInt8](repeating: 0, count: 700)
        let n = read(pipes.ready, &reason, reason.count)
        pipes.close()
        _ = try? held.child.signal(SIGKILL)
        let line = n > 0 ? Self.firstLine(Array(reason[0..<n])) : ""
        if line.hasPrefix("error ") {
            return ConfinementError(.spawnFailed, "the held sandbox failed before its request: \(line)")
        }
        return ConfinementError.system("send the request to the held sandbox", errno: writeErrno)
    }

    /// After `send`: returns once the agent has exec'd (or throws why it
    /// could not start, as `spawn` does).
    public func awaitStart(_ ticket: StartTicket) async throws -> ChildProcess {
        try await withCheckedThrowingContinuation { continuation in
            submit(.awaitStart(ticket.child, ticket.pipes, continuation)) { error in
                ticket.pipes.close()
                continuation.resume(throwing: error)
            }
        }
    }

    private func submit(_ command: Command, refused: (ConfinementError) -> Void) {
        let accepted = shared.withLock { shared -> Bool in
            guard shared.running else { return false }
            shared.commands.append(command)
            return true
        }
        if accepted {
            wake()
        } else {
            refused(ConfinementError(.reactorStopped, "the process reactor has stopped"))
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

    /// A spawn waiting for its sandbox to say the agent runs: on the exec
    /// pipe when there is one (its end of file: the agent exec'd; a line:
    /// why not), else on the ready pipe ("ok" or why not).
    private struct PendingReady {
        let child: ChildProcess
        let continuation: CheckedContinuation<ChildProcess, any Error>
        var received: [UInt8] = []
        /// With an exec pipe (the fd watched): the ready pipe, for the
        /// sandbox's own setup errors and then the exit report.
        let readyFD: Int32?
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

        func awaitStart(_ child: ChildProcess, _ pipes: StartPipes,
                        _ continuation: CheckedContinuation<ChildProcess, any Error>) {
            let watched = pipes.exec ?? pipes.ready
            readiness[watched] = PendingReady(child: child, continuation: continuation,
                                              readyFD: pipes.exec == nil ? nil : pipes.ready)
            _ = aos_epoll_add(epollFD, watched, Self.token(.ready, watched))
        }

        /// The ready pipe after the start: it brings the agent's exit,
        /// ahead of the monitor's own.
        func watchReport(_ fd: Int32, _ child: ChildProcess, _ received: [UInt8]) {
            if let exit = Self.exitReport(received) {
                child.report(exit)
                close(fd)
                return
            }
            reports[fd] = (child, received)
            _ = aos_epoll_add(epollFD, fd, Self.token(.exitReport, fd))
        }

        func watch(_ child: ChildProcess, _ readEnds: ReadEnds?, _ output: (any OutputSink)?) {
            children[child.pidfd] = child
            _ = aos_epoll_add(epollFD, child.pidfd, Self.token(.child, child.pidfd))
            if let readEnds, let sink = output {
                let group = OutputGroup(sink: sink)
                pipes[readEnds.stdout] = OutputPipe(group: group, stream: .stdout)
                pipes[readEnds.stderr] = OutputPipe(group: group, stream: .stderr)
                _ = aos_epoll_add(epollFD, readEnds.stdout, Self.token(.output, readEnds.stdout))
                _ = aos_epoll_add(epollFD, readEnds.stderr, Self.token(.output, readEnds.stderr))
            }
        }

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
                                let started = try spawnNow(spec, devNull: devNull)
                                watch(started.child, started.output, spec.output)
                                if let ready = started.ready {
                                    awaitStart(started.child, StartPipes(ready: ready, exec: started.exec), continuation)
                                } else {
                                    continuation.resume(returning: started.child)
                                }
                            } catch {
                                continuation.resume(throwing: error)
                            }
                        case .hold(let spec, let continuation):
                            do {
                                let started = try spawnNow(spec, devNull: devNull)
                                watch(started.child, started.output, spec.output)
                                if let ready = started.ready, let exec = started.exec, let request = started.request {
                                    continuation.resume(returning: HeldSandbox(
                                        child: started.child, requestFD: request.fd, requestCapacity: request.capacity,
                                        pipes: StartPipes(ready: ready, exec: exec)))
                                } else {
                                    continuation.resume(throwing: ConfinementError(.spawnFailed, "no pipes for a held sandbox"))
                                }
                            } catch {
                                continuation.resume(throwing: error)
                            }
                        case .awaitStart(let child, let pipes, let continuation):
                            awaitStart(child, pipes, continuation)
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
                    _ = aos_epoll_remove(epollFD, fd)
                    if let readyFD = pending.readyFD {
                        close(fd)
                        // The exec pipe ended. Nothing on it: the agent exec'd,
                        // unless the sandbox failed before it (said on the
                        // ready pipe, or it ended without a word).
                        let (early, ended) = Self.readAvailable(readyFD, buffer)
                        if !pending.received.isEmpty {
                            close(readyFD)
                            Self.failStart(pending.continuation, Self.firstLine(pending.received))
                        } else if Self.firstLine(early).hasPrefix("error ")
                                    || (early.isEmpty && (ended || pending.child.hasEnded)) {
                            // (A ready pipe at its end: every sandbox process is gone.)
                            close(readyFD)
                            Self.failStart(pending.continuation, Self.firstLine(early))
                        } else {
                            pending.continuation.resume(returning: pending.child)
                            watchReport(readyFD, pending.child, early)
                        }
                    } else if Self.firstLine(pending.received) == "ok" {
                        pending.continuation.resume(returning: pending.child)
                        watchReport(fd, pending.child, Self.afterFirstLine(pending.received) ?? [])
                    } else {
                        close(fd)
                        Self.failStart(pending.continuation, Self.firstLine(pending.received))
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

    static func firstLine(_ bytes: [UInt8]) -> String {
        let end = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
        return String(decoding: bytes[..<end], as: UTF8.self)
    }

    /// What a non-blocking pipe holds right now, and whether it is at its
    /// end (every writer gone).
    private static func readAvailable(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> ([UInt8], Bool) {
        var bytes: [UInt8] = []
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n > 0 {
                bytes += UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return (bytes, n == 0)
            }
        }
    }

    /// The agent did not start: `line` is the sandbox's "error ERRNO: what:
    /// why", or empty when it ended without a word.
    private static func failStart(_ continuation: CheckedContinuation<ChildProcess, any Error>, _ line: String) {
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
        continuation.resume(throwing: ConfinementError(code, "sandbox: \(reason)", errno: number == 0 ? nil : number))
    }

    private func finish(pipes: [Int32: OutputPipe], readiness: [Int32: PendingReady],
                        reports: [Int32: (child: ChildProcess, received: [UInt8])]) {
        // Spawns waiting for their sandbox's first line get an answer; the
        // pipes go (their children stay owned by their ChildProcess).
        for (fd, pending) in readiness {
            close(fd)
            if let readyFD = pending.readyFD { close(readyFD) }
            pending.continuation.resume(throwing: ConfinementError(.reactorStopped, "the process reactor has stopped"))
        }
        for fd in reports.keys { close(fd) }
        // Refuse spawns queued after stop; end every capture so readers stop
        // waiting. Live children stay owned by their ChildProcess.
        let leftover = shared.withLock { shared -> [Command] in
            defer { shared.commands.removeAll() }
            return shared.commands
        }
        let stopped = ConfinementError(.reactorStopped, "the process reactor has stopped")
        for command in leftover {
            switch command {
            case .spawn(_, let continuation): continuation.resume(throwing: stopped)
            case .hold(_, let continuation): continuation.resume(throwing: stopped)
            case .awaitStart(_, let pipes, let continuation):
                pipes.close()
                continuation.resume(throwing: stopped)
            case .stop: break
            }
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

    /// A started child and the parent's ends of its pipes.
    private struct Started {
        let child: ChildProcess
        let output: ReadEnds?
        /// Read end of the ready pipe (the sandbox's errors, "ok", the exit report).
        let ready: Int32?
        /// Read end of the exec pipe: end of file once the agent has exec'd.
        let exec: Int32?
        /// Write end of a held sandbox's request pipe and what it holds.
        let request: (fd: Int32, capacity: Int)?
    }

    private func spawnNow(_ spec: SpawnSpec, devNull: Int32) throws(ConfinementError) -> Started {
        guard devNull >= 0 else { throw ConfinementError(.spawnFailed, "cannot open /dev/null") }
        // Every fd made here: the parent's ends are kept on success, the
        // child's ends always closed once it has its copies.
        var parentEnds: [Int32] = []
        var childEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }
        func pipe(parentReads: Bool) throws(ConfinementError) -> (parent: Int32, child: Int32) {
            var fds: [Int32] = [-1, -1]
            let rc = aos_pipe(&fds)
            guard rc == 0 else {
                for fd in parentEnds { close(fd) }
                parentEnds = []
                throw .system("pipe2", errno: -rc)
            }
            let ends = parentReads ? (parent: fds[0], child: fds[1]) : (parent: fds[1], child: fds[0])
            parentEnds.append(ends.parent)
            childEnds.append(ends.child)
            _ = fcntl(ends.parent, F_SETFL, O_NONBLOCK)
            return ends
        }
        var extraFDs: [Int32] = []
        var extraTargets: [Int32] = []
        if let socket = spec.protocolSocket {
            extraFDs.append(socket)
            extraTargets.append(spec.protocolSocketTarget)
        }
        var output: (stdout: (parent: Int32, child: Int32), stderr: (parent: Int32, child: Int32))?
        if spec.output != nil { output = (try pipe(parentReads: true), try pipe(parentReads: true)) }
        /// A pipe whose child end goes to `target` in the child; its parent end.
        func pipe(to target: Int32?, parentReads: Bool) throws(ConfinementError) -> Int32? {
            guard let target else { return nil }
            let ends = try pipe(parentReads: parentReads)
            extraFDs.append(ends.child)
            extraTargets.append(target)
            return ends.parent
        }
        let ready = try pipe(to: spec.readyPipeTarget, parentReads: true)
        let exec = try pipe(to: spec.execPipeTarget, parentReads: true)
        // A request never blocks the kernel: it is written only if it fits
        // the pipe (1 MiB where the host allows, 64 KiB at least).
        let request = try pipe(to: spec.requestPipeTarget, parentReads: false).map { fd -> (fd: Int32, capacity: Int) in
            let size = aos_pipe_set_size(fd, 1 << 20)
            return (fd, size > 0 ? Int(size) : 65_536)
        }
        let argv = CStringArray(spec.arguments)
        let envp = CStringArray(spec.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        var result = aos_spawn_result()
        let cgroupFDs = spec.cgroupProcsFDs
        let rc: Int32 = spec.executable.withCString { path in
            withOptionalCString(spec.workingDirectory) { cwd in
                cgroupFDs.withUnsafeBufferPointer { cgroups in
                    extraFDs.withUnsafeBufferPointer { fds in
                        extraTargets.withUnsafeBufferPointer { targets in
                            var request = aos_spawn_request()
                            request.path = path
                            request.argv = UnsafePointer(argv.pointer)
                            request.envp = UnsafePointer(envp.pointer)
                            request.cwd = cwd
                            request.stdin_fd = devNull
                            request.stdout_fd = output?.stdout.child ?? devNull
                            request.stderr_fd = output?.stderr.child ?? devNull
                            request.extra_fds = fds.baseAddress
                            request.extra_fd_targets = targets.baseAddress
                            request.extra_fd_count = Int32(fds.count)
                            request.pdeath_signal = SIGKILL
                            request.new_session = 1
                            request.cgroup_procs_fds = cgroups.baseAddress
                            request.cgroup_procs_count = Int32(cgroups.count)
                            return aos_spawn(&request, &result)
                        }
                    }
                }
            }
        }
        guard rc == 0 else {
            for fd in parentEnds { close(fd) }
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
        return Started(child: ChildProcess(pid: result.pid, pidfd: result.pidfd),
                       output: output.map { ReadEnds(stdout: $0.stdout.parent, stderr: $0.stderr.parent) },
                       ready: ready, exec: exec, request: request)
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
