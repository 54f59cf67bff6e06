import AgentOSClient
import AgentOSProtocol
import Foundation
import Testing

/// A raw client that sends whatever bytes a test wants.
final class RawConnection {
    let fd: Int32

    init(socketPath: String) throws {
        fd = try openUnixSocket(path: socketPath)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func send(_ envelope: Envelope) throws {
        send(try envelope.framed())
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Every frame until the kernel closes the connection (or 5 s pass).
    func readUntilClosed() -> (frames: [Envelope], closed: Bool) {
        var reader = FrameReader()
        var frames: [Envelope] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (frames, true) }
            if n < 0 { return (frames, errno == ECONNRESET) }
            reader.append(buffer[0..<n])
            while let payload = try? reader.next(), let envelope = try? Envelope(serializedBytes: payload) {
                frames.append(envelope)
            }
        }
    }

    /// Bytes read past the last frame returned.
    private var reader = FrameReader()

    /// The next frame, or nil on close/timeout.
    func readFrame() -> Envelope? {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            if let payload = try? reader.next() { return try? Envelope(serializedBytes: payload) }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            reader.append(buffer[0..<n])
        }
    }
}

@Suite("The kernel survives bad input, crashes and restarts", .serialized)
struct RobustnessTests {
    @Test func malformedClientsDoNotDisturbAWellBehavedOne() async throws {
        let kernel = try KernelProcess(label: "bad", arguments: ["--handshake-timeout", "700ms", "--max-frame-size", "64K"])
        defer { kernel.stop() }
        let good = try kernel.client()
        var goodCalls = 0
        var hello = Hello()
        hello.minVersion = 99
        hello.maxVersion = 120
        var wrongVersion = Envelope()
        wrongVersion.hello = hello

        // Each hostile client, and the error code it must be told (nil: none
        // can be sent), interleaved with calls on the good connection.
        let cases: [(String, ErrorCode?, (RawConnection) throws -> Void)] = [
            ("oversized length", .frameTooLarge, { $0.send([0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3]) }),
            ("frame over --max-frame-size", .frameTooLarge, { $0.send(Frame.encode([UInt8](repeating: 0, count: 65 * 1024))) }),
            ("garbage bytes", .malformedFrame, { $0.send([0, 0, 0, 4, 0xFF, 0xFE, 0xFD, 0xFC]) }),
            ("HTTP request", .frameTooLarge, { $0.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)) }),
            ("truncated frame", .malformedFrame, { $0.send([0, 0, 0, 50, 1, 2, 3]); $0.shutdownWrite() }),
            ("request before hello", .handshakeRequired, { try $0.send(.request(id: 1, .status(.init()))) }),
            ("wrong protocol version", .versionMismatch, { try $0.send(wrongVersion) }),
            ("unknown message kind", .unknownMessage, { raw in
                try raw.send(.hello(client: "raw"))
                raw.send(Frame.encode([0xFA, 0x06, 0x00]))   // field 111, empty: a body this kernel does not know
            }),
            ("silent client", .handshakeTimeout, { _ in }),
        ]
        for (name, expected, attack) in cases {
            let raw = try RawConnection(socketPath: kernel.socketPath)
            try attack(raw)
            guard case .status = try good.call(.status(.init())) else {
                Issue.record("good client got no status during \(name)")
                continue
            }
            goodCalls += 1
            let (frames, closed) = raw.readUntilClosed()
            #expect(closed, "\(name): connection not closed")
            let errors = frames.compactMap { frame -> ErrorCode? in
                if case .error(let error)? = frame.body { return error.code }
                return nil
            }
            if let expected { #expect(errors.last == expected, "\(name): got \(errors)") }
        }
        #expect(goodCalls == cases.count)
        // The kernel is still up and answers new connections too.
        #expect(try kernel.ctl(["status"]).status == 0)
        #expect(kernel.process.isRunning)
    }

    @Test func anUnknownCallIsAnErrorButTheConnectionStays() throws {
        let kernel = try KernelProcess(label: "unknowncall")
        defer { kernel.stop() }
        let raw = try RawConnection(socketPath: kernel.socketPath)
        try raw.send(.hello(client: "raw"))
        guard case .welcome? = raw.readFrame()?.body else {
            Issue.record("no welcome")
            return
        }
        // Envelope{request_id: 7, request: Request{<field 99 = 1>}}: a call
        // this kernel does not know, as a newer client would send.
        raw.send(Frame.encode([0x08, 0x07, 0x62, 0x03, 0x98, 0x06, 0x01]))
        let reply = raw.readFrame()
        #expect(reply?.correlationID == 7)
        #expect(reply?.error.code == .unknownMessage)
        try raw.send(.request(id: 8, .status(.init())))
        let status = raw.readFrame()
        #expect(status?.correlationID == 8)
        if case .status? = status?.response.result {} else { Issue.record("no status after the unknown call") }
    }

    @Test func aKillNineKeepsHistoryAndRecordsLostAgents() throws {
        let kernel = try KernelProcess(label: "crash")
        let finished = try kernel.run(["--name", "finished", "--", "/bin/sh", "-c", "exit 3"])
        #expect(try kernel.ctl(["wait", finished]).status == 3)
        let sleeper = try kernel.run(["--name", "sleeper", "--", "/bin/sleep", "300"])
        let pid = try #require(try kernel.agent(sleeper)["pid"] as? Int)
        #expect(processExists(Int32(pid)))

        kernel.kill9()
        // PR_SET_PDEATHSIG: the agent died with the kernel.
        #expect(eventually(timeout: 5) { !processExists(Int32(pid)) })

        try kernel.start()
        defer { kernel.stop() }
        let all = try #require(try kernel.json(["ps", "-a"]) as? [[String: Any]])
        let finishedEntry = try #require(all.first { $0["id"] as? String == finished })
        #expect(finishedEntry["state"] as? String == "failed")
        #expect((finishedEntry["exit"] as? [String: Any])?["code"] as? Int == 3)
        let lost = try #require(all.first { $0["id"] as? String == sleeper })
        #expect(lost["state"] as? String == "lost")
        #expect(((lost["exit"] as? [String: Any])?["detail"] as? String)?.contains("died") == true)
        let events = try kernel.ctl(["events", "--since", "0", "--json"]).lines
        #expect(events.contains { $0.contains("\"kernel.recovered\"") })
        #expect(events.contains { $0.contains("\"agent.lost\"") && $0.contains(sleeper) })
        // wait on a lost agent returns at once with status 1.
        #expect(try kernel.ctl(["wait", sleeper]).status == 1)
        // The name of a lost agent is free again.
        #expect(try kernel.ctl(["run", "--name", "sleeper", "--", "/bin/true"]).status == 0)
    }

    @Test func cleanShutdownLeavesNoProcessBehind() throws {
        let kernel = try KernelProcess(label: "shutdown", arguments: ["--shutdown-timeout", "500ms"])
        let polite = try kernel.run(["--", "/bin/sleep", "300"])
        let stubborn = try kernel.run(["--", "/bin/sh", "-c", "trap '' TERM; sleep 300.2 & wait"])
        let grandchild = try waitForHostPid(["sleep", "300.2"])
        let pids = try [polite, stubborn].map { Int32(try #require(try kernel.agent($0)["pid"] as? Int)) }
        let started = Date()
        #expect(kernel.stop() == 0)
        #expect(Date().timeIntervalSince(started) < 10)
        for pid in pids + [grandchild] {
            #expect(eventually(timeout: 3) { !processExists(pid) }, "pid \(pid) survived")
        }
        #expect(!FileManager.default.fileExists(atPath: kernel.socketPath))
        #expect(kernel.kernelLog.contains("agentd stopped cleanly"))

        // After a restart, history says why they ended, and no run was unclean.
        try kernel.start()
        defer { kernel.stop() }
        for id in [polite, stubborn] {
            let info = try kernel.agent(id)
            #expect(info["state"] as? String == "completed")
            #expect((info["exit"] as? [String: Any])?["reason"] as? String == "kernel-shutdown")
        }
        let events = try kernel.ctl(["events", "--since", "0", "--json"]).lines
        #expect(!events.contains { $0.contains("kernel.recovered") })
        #expect(events.contains { $0.contains("kernel.stopped") })
    }

    @Test func aSecondKernelOnTheSameStateOrSocketRefuses() throws {
        let kernel = try KernelProcess(label: "lock")
        defer { kernel.stop() }
        let sameState = try runProgram(Binaries.agentd, ["--state-dir", kernel.stateDirectory,
                                                         "--socket", kernel.directory + "/other.sock"])
        #expect(sameState.status != 0)
        #expect(sameState.stderr.contains("another agentd (pid \(kernel.pid)) is already using state dir"))
        let sameSocket = try runProgram(Binaries.agentd, ["--state-dir", kernel.directory + "/other-state",
                                                          "--socket", kernel.socketPath])
        #expect(sameSocket.status != 0)
        #expect(sameSocket.stderr.contains("is already using socket"))
        // The first kernel is unharmed.
        #expect(try kernel.ctl(["status"]).status == 0)
    }

    @Test func onlyAdminsMayUseAdminCalls() throws {
        let kernel = try KernelProcess(label: "perm")
        defer { kernel.stop() }
        let setpriv = "/usr/bin/setpriv"
        guard FileManager.default.isExecutableFile(atPath: setpriv) else {
            print("skipped: setpriv (util-linux) is not installed")
            return
        }
        let asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", Binaries.agentctl]
        // The directory must be traversable by nobody for the test.
        chmod(kernel.directory, 0o755)
        let attributes = try FileManager.default.attributesOfItem(atPath: kernel.socketPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o660)

        let refused = try runProgram(setpriv, asNobody + ["status", "--socket", kernel.socketPath])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("Permission denied"))

        // Opened up by hand: SO_PEERCRED still keeps admin calls to admins.
        chmod(kernel.socketPath, 0o666)
        let status = try runProgram(setpriv, asNobody + ["status", "--socket", kernel.socketPath])
        #expect(status.status == 0)
        let run = try runProgram(setpriv, asNobody + ["run", "--socket", kernel.socketPath, "--", "/bin/true"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("permission denied: 'run' is an admin call and uid 65534"))
        #expect(try #require(try kernel.json(["ps", "-a"]) as? [[String: Any]]).isEmpty)
    }
}

@Suite("Slow and cancelling clients", .serialized)
struct SlowClientTests {
    @Test func aClientThatNeverReadsIsStoppedNotBuffered() throws {
        let kernel = try KernelProcess(label: "noread")
        defer { kernel.stop() }
        let raw = try RawConnection(socketPath: kernel.socketPath)
        try raw.send(.hello(client: "never-reads"))
        // Pipeline status requests without reading a single answer, until
        // the kernel stops reading from us (send would block) or 64 MiB.
        let flags = fcntl(raw.fd, F_GETFL)
        _ = fcntl(raw.fd, F_SETFL, flags | O_NONBLOCK)
        var batch: [UInt8] = []
        for index in 0..<1_000 {
            batch += try Envelope.request(id: UInt64(index + 1), .status(.init())).framed()
        }
        var sent = 0
        var stalls = 0
        while sent < 64 * 1024 * 1024 && stalls < 50 {
            let n = batch.withUnsafeBytes { Glibc.send(raw.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
                stalls = 0
            } else {
                stalls += 1
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
        // Each ~10-byte request earns a ~90-byte answer: had the kernel kept
        // reading, it would be holding hundreds of MiB for us.
        #expect(sent < 16 * 1024 * 1024, "the kernel read \(sent) bytes from a client that never reads")
        // Meanwhile everyone else is served.
        #expect(try kernel.ctl(["status"]).status == 0)
        let rss = try String(contentsOfFile: "/proc/\(kernel.pid)/status", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        #expect(rss < 200 * 1024, "agentd RSS \(rss) KiB")
    }

    @Test func aCancelledWaitEndsAndTheConnectionGoesOn() throws {
        let kernel = try KernelProcess(label: "cancel")
        defer { kernel.stop() }
        let id = try kernel.run(["--", "/bin/sleep", "60"])
        let raw = try RawConnection(socketPath: kernel.socketPath)
        try raw.send(.hello(client: "canceller"))
        guard case .welcome? = raw.readFrame()?.body else {
            Issue.record("no welcome")
            return
        }
        var wait = Agentos_V1_WaitRequest()
        wait.agent = id
        try raw.send(.request(id: 5, .wait(wait)))
        Thread.sleep(forTimeInterval: 0.2)
        var cancel = Envelope()
        cancel.cancel.requestID = 5
        try raw.send(cancel)
        let ended = raw.readFrame()
        #expect(ended?.correlationID == 5)
        #expect(ended?.streamEnd.reason == "cancelled")
        try raw.send(.request(id: 6, .status(.init())))
        #expect(raw.readFrame()?.correlationID == 6)
        // The agent itself was not touched.
        #expect(try kernel.agent(id)["state"] as? String == "running")
    }
}
