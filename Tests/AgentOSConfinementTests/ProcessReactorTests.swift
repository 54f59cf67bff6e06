import AgentOSConfinement
import Foundation
import Synchronization
import Testing

/// Collects a child's output the way the kernel's log does.
final class CollectingSink: OutputSink {
    private let state = Mutex<(out: [UInt8], err: [UInt8], finished: Bool)>(([], [], false))

    func write(_ bytes: UnsafeRawBufferPointer, stream: AgentOSConfinement.OutputStream) {
        state.withLock { state in
            if stream == .stdout { state.out += bytes } else { state.err += bytes }
        }
    }

    func finish() { state.withLock { $0.finished = true } }

    var stdout: String { state.withLock { String(decoding: $0.out, as: UTF8.self) } }
    var stderr: String { state.withLock { String(decoding: $0.err, as: UTF8.self) } }
    var finished: Bool { state.withLock { $0.finished } }

    /// Output arrives on the reactor thread; give it a moment after exit.
    func waitFinished() async {
        for _ in 0..<200 where !finished { try? await Task.sleep(for: .milliseconds(10)) }
    }
}

@Suite("Process reactor")
struct ProcessReactorTests {
    let reactor: ProcessReactor

    init() throws {
        reactor = try ProcessReactor()
    }

    func spawn(_ argv: [String], env: [String: String] = ["PATH": "/usr/bin:/bin"], sink: CollectingSink? = nil,
               socket: Int32? = nil) async throws -> ChildProcess {
        try await reactor.spawn(SpawnSpec(executable: try ProgramLookup.resolve(argv[0]), arguments: argv,
                                          environment: env, workingDirectory: "/", output: sink,
                                          protocolSocket: socket))
    }

    @Test func capturesStdoutAndStderrSeparately() async throws {
        let sink = CollectingSink()
        let child = try await spawn(["/bin/sh", "-c", "echo out; echo err >&2"], sink: sink)
        #expect(await child.exit() == .exited(code: 0))
        await sink.waitFinished()
        #expect(sink.stdout == "out\n")
        #expect(sink.stderr == "err\n")
        #expect(sink.finished)
    }

    /// A sandbox monitor reports the agent's exit on its ready pipe before it
    /// is itself reaped: waiters learn it then; the reaper still reaps it.
    @Test func anExitReportedOnTheReadyPipeComesBeforeTheReap() async throws {
        let script = "echo ok >&4; sleep 0.1; echo 'exit 2304' >&4; exec 4>&-; sleep 30"
        let child = try await reactor.spawn(SpawnSpec(executable: "/bin/sh", arguments: ["/bin/sh", "-c", script],
                                                      environment: ["PATH": "/usr/bin:/bin"], readyPipeTarget: 4))
        let started = ContinuousClock.now
        #expect(await child.exit() == .exited(code: 9))
        #expect(ContinuousClock.now - started < .seconds(20), "the report did not come before the exit")
        #expect(child.exitStatus == .exited(code: 9))
        // The process still runs (its own exit comes later), and is reaped then.
        #expect(kill(child.pid, 0) == 0)
        try child.signal(SIGKILL)
        for _ in 0..<200 where kill(child.pid, 0) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(kill(child.pid, 0) != 0, "the monitor was not reaped")
        let signalled = try await reactor.spawn(SpawnSpec(executable: "/bin/sh",
                                                          arguments: ["/bin/sh", "-c", "echo ok >&4; echo 'exit 9' >&4; sleep 1"],
                                                          environment: [:], readyPipeTarget: 4))
        #expect(await signalled.exit() == .signaled(signal: SIGKILL, coreDumped: false))
    }

    @Test func reportsExitCodesAndSignals() async throws {
        #expect(try await spawn(["/bin/sh", "-c", "exit 7"]).exit() == .exited(code: 7))
        let sleeper = try await spawn(["/bin/sleep", "30"])
        #expect(try sleeper.signal(SIGKILL))
        #expect(await sleeper.exit() == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(sleeper.exitStatus?.shellStatus == 137)
        // Signalling an exited child is not an error, and hits nothing.
        #expect(try sleeper.signal(SIGTERM) == false)
    }

    @Test func theChildGetsExactlyTheEnvironmentItIsGiven() async throws {
        setenv("AGENTOS_TEST_SECRET", "leak", 1)
        let sink = CollectingSink()
        let child = try await spawn(["/usr/bin/env"], env: ["ONLY": "this"], sink: sink)
        _ = await child.exit()
        await sink.waitFinished()
        #expect(sink.stdout == "ONLY=this\n")
    }

    @Test func onlyStdioAndTheProtocolSocketAreOpenAtExec() async throws {
        // A descriptor the parent holds without CLOEXEC must not leak.
        let leaked = open("/etc/hostname", O_RDONLY)
        defer { close(leaked) }
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[0]) }
        let sink = CollectingSink()
        let child = try await spawn(["/bin/ls", "/proc/self/fd"], sink: sink, socket: pair[1])
        close(pair[1])
        _ = await child.exit()
        await sink.waitFinished()
        // 0-2 stdio, 3 the socket, and ls's own directory fd.
        let fds = sink.stdout.split(separator: "\n").compactMap { Int($0) }.sorted()
        #expect(fds.prefix(4) == [0, 1, 2, 3])
        #expect(fds.count == 5)
        #expect(!fds.contains(Int(leaked)) || Int(leaked) == fds[4])
    }

    @Test func theChildLeadsItsOwnSessionWithNoTerminal() async throws {
        let sink = CollectingSink()
        let child = try await spawn(["/bin/sh", "-c", "cat /proc/self/stat"], sink: sink)
        _ = await child.exit()
        await sink.waitFinished()
        // Fields after "(comm)": state ppid pgrp session tty_nr ...
        let afterComm = try #require(sink.stdout.split(separator: ")").last)
        let fields = afterComm.split(separator: " ")
        let pgrp = Int32(fields[2]), session = Int32(fields[3]), tty = Int(fields[4])
        #expect(session == pgrp)
        #expect(tty == 0)
    }

    @Test func ignoredSignalsAreResetForTheChild() async throws {
        // SwiftNIO and others ignore SIGPIPE in the parent; exec keeps SIG_IGN
        // unless the spawner resets it.
        signal(SIGPIPE, SIG_IGN)
        let sink = CollectingSink()
        let child = try await spawn(["/bin/sh", "-c", "grep SigIgn /proc/self/status"], sink: sink)
        _ = await child.exit()
        await sink.waitFinished()
        let mask = sink.stdout.split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        let bits = UInt64(mask ?? "", radix: 16) ?? .max
        #expect(bits & (1 << (UInt64(SIGPIPE) - 1)) == 0)
    }

    @Test func missingAndNonExecutableProgramsAreClearErrors() throws {
        #expect(throws: ConfinementError.self) { try ProgramLookup.resolve("no-such-program-agentos") }
        do {
            _ = try ProgramLookup.resolve("/etc/passwd")
            Issue.record("a non-executable file resolved")
        } catch {
            #expect(error.code == .programNotExecutable)
        }
        do {
            _ = try ProgramLookup.resolve("relative/path")
            Issue.record("a relative path resolved")
        } catch {
            #expect(error.code == .invalidSpec)
        }
        #expect(try ProgramLookup.resolve("sh") == "/usr/bin/sh" || (try ProgramLookup.resolve("sh")) == "/bin/sh")
    }

    @Test func aFailedExecIsReportedNotRun() async throws {
        // Passes lookup (it exists) but cannot be exec'd: a directory.
        do {
            _ = try await reactor.spawn(SpawnSpec(executable: "/tmp", arguments: ["/tmp"], environment: [:]))
            Issue.record("exec of a directory succeeded")
        } catch let error as ConfinementError {
            #expect(error.code == .programNotExecutable)
        }
        do {
            _ = try await reactor.spawn(SpawnSpec(executable: "/bin/true", arguments: ["true"], environment: [:],
                                                  workingDirectory: "/nonexistent-dir"))
            Issue.record("chdir into a missing dir succeeded")
        } catch let error as ConfinementError {
            #expect(error.code == .spawnFailed)
            #expect(error.message.contains("/nonexistent-dir"))
        }
    }

    @Test func manyConcurrentSpawnsAllComplete() async throws {
        try await withThrowingTaskGroup(of: ProcessExit.self) { group in
            for index in 0..<50 {
                group.addTask {
                    try await spawn(["/bin/sh", "-c", "exit \(index % 5)"]).exit()
                }
            }
            var codes: [Int32] = []
            for try await exit in group {
                if case .exited(let code) = exit { codes.append(code) }
            }
            #expect(codes.count == 50)
            #expect(codes.filter { $0 == 0 }.count == 10)
        }
    }
}
