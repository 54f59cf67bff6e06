import AgentOSClient
import AgentOSProtocol
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `agentos-bench`: measures the system against baselines taken in the same
/// run on the same machine, and reports ratios.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentos-bench",
        abstract: "Benchmarks of Agent OS against baselines measured in the same run.",
        discussion: """
            Build in release mode for meaningful figures:
              swift run -c release agentos-bench kernel
            --update-readme README.md rewrites the section between the markers
            <!-- bench:kernel:begin --> and <!-- bench:kernel:end --> with this run's table.
            """,
        subcommands: [KernelBench.self, AgentsBench.self, RestartBench.self, CapabilityBench.self, ToolBench.self, MemoryBench.self,
                      ModelBench.self, SchedulerBench.self,
                      BusBench.self, EchoServer.self, BusAgent.self]
    )
}

struct KernelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel",
        abstract: "Kernel round trip vs a raw Unix-socket echo; agent spawn-to-exit vs posix_spawn.")

    /// The idle time after each spawn of the (c)/(d) pairs.
    static let spawnPause: Duration = .milliseconds(15)

    @Option(help: "Round trips measured for (a) and (b).")
    var roundTrips = 5_000

    @Option(help: "Spawns measured for (c).")
    var spawns = 300

    @Option(help: ArgumentHelp("Rewrite the kernel section of this README with the results.", valueName: "path"))
    var updateReadme: String?

    @Flag(help: "Print the results as JSON.")
    var json = false

    func run() throws {
        let work = "/tmp/agentos-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }

        let (kernel, client) = try Bench.startKernel(work: work)
        defer { Bench.stopProcess(kernel) }

        // (b)'s peer: a raw echo server process answering frames the size
        // of status's, read and written the same way.
        let requestSize = (try Envelope.request(id: 1, .status(.init())).serializedBytes() as [UInt8]).count
        guard case .status(let sampleStatus) = try client.call(.status(.init())) else {
            throw ValidationError("unexpected response")
        }
        let statusSize = (try sampleStatus.serializedBytes() as [UInt8]).count
        let echoPath = work + "/echo.sock"
        let echo = try Bench.startProcess(Bench.executablePath,
                                          ["echo-server", echoPath, "--reply-size", String(statusSize + 8)])
        defer { Bench.stopProcess(echo) }
        guard Bench.waitFor({ FileManager.default.fileExists(atPath: echoPath) }) else {
            throw ValidationError("echo server did not start")
        }
        let echoFD = try openUnixSocket(path: echoPath)
        defer { close(echoFD) }
        let request = Frame.encode([UInt8](repeating: 0x42, count: requestSize))
        var reader = FrameReader()
        var buffer = [UInt8](repeating: 0, count: 65_536)

        // Each pair is measured interleaved (A B A B ...), so both see the
        // same machine: on a small VM the idle-state and scheduler noise
        // moves single runs by a third.
        let (kernelRoundTrip, rawRoundTrip) = try Bench.measurePair(count: roundTrips, warmup: 200, {
            // (a) kernel request round trip: `status` over the kernel socket.
            guard case .status = try client.call(.status(.init())) else { throw ValidationError("unexpected response") }
        }, {
            // (b) the same framed round trip against the raw echo process.
            try Bench.writeAll(echoFD, request)
            while try reader.next() == nil {
                let n = buffer.withUnsafeMutableBytes { read(echoFD, $0.baseAddress, $0.count) }
                guard n > 0 else { throw ValidationError("echo server closed") }
                reader.append(buffer[0..<n])
            }
        })

        // (c) spawn-to-exit of /bin/true: through the kernel (run + wait)
        // against (c') a plain posix_spawn + waitpid.
        let (throughKernel, plainSpawn) = try Bench.measurePair(count: spawns, warmup: 20, {
            try Bench.runToExit(client)
        }, {
            try Bench.posixSpawnTrue()
        })

        // (d) the same /bin/true under a hardened bubblewrap line (all
        // namespaces, new session, no capabilities, read-only system dirs,
        // /proc, /dev, /tmp), interleaved with (c) again.
        var bubblewrap: (Sample, Sample)?
        if let bwrap = ["/usr/bin/bwrap", "/bin/bwrap"].first(where: FileManager.default.isExecutableFile) {
            // With the BPF of our own default profile, which agentd compiled.
            let filter = work + "/state/seccomp/default.bpf"
            let arguments = ["--seccomp", "9"] + Bench.bubblewrapArguments()
            // Each followed by an idle moment: the kernel's refill of its
            // pool must not run while bubblewrap is measured (it would slow
            // (d), to our credit). (An ended sandbox's teardown, 50-100 ms
            // later, still lands in a later sample of either side.)
            bubblewrap = try Bench.measurePair(count: spawns, warmup: 20, pause: Self.spawnPause, {
                try Bench.runToExit(client)
            }, {
                try Bench.spawnAndWait(bwrap, arguments, fd9: filter)
            })
        } else {
            FileHandle.standardError.write(Data("bubblewrap not installed (apt-get install bubblewrap): (d) skipped\n".utf8))
        }

        var results2: [Row] = []
        var ratios = [
            ("(a) / (b)", kernelRoundTrip.median / rawRoundTrip.median, 3.0),
            // Issue 2's ≤ 3× held for the unconfined spawn (2.4–2.9×); the
            // confined one is held to (d) instead.
            ("(c) / (c')", throughKernel.median / plainSpawn.median, 0),
        ]
        if let (ours, theirs) = bubblewrap {
            results2 = [Row(name: "(c) again, interleaved with (d), the machine idle 15 ms after each", sample: ours),
                        Row(name: "(d) hardened bubblewrap line + our seccomp BPF, /bin/true", sample: theirs)]
            ratios.append(("(c) / (d)", ours.median / theirs.median, 0.6))
        }
        let results: [Row] = [
            Row(name: "(a) kernel request round trip (status)", sample: kernelRoundTrip),
            Row(name: "(b) raw Unix-socket echo round trip", sample: rawRoundTrip),
            Row(name: "(c) confined agent /bin/true spawn-to-exit via kernel (one run call with wait)", sample: throughKernel),
            Row(name: "(c') plain posix_spawn + waitpid of /bin/true", sample: plainSpawn),
        ] + results2
        if json {
            let document: [String: Any] = [
                "machine": Machine.description,
                "results": results.map { ["name": $0.name, "median_us": $0.sample.median, "p99_us": $0.sample.p99,
                                          "count": $0.sample.count] },
                "ratios": ratios.map { ["name": $0.0, "median_ratio": $0.1, "target": $0.2] },
            ]
            let data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
        let table = Bench.markdown(results: results, ratios: ratios, roundTrips: roundTrips, spawns: spawns)
        if !json { print(table) }
        if let updateReadme {
            try Bench.replaceSection(in: updateReadme, marker: "kernel", with: table)
            FileHandle.standardError.write(Data("updated \(updateReadme)\n".utf8))
        }
    }
}

/// Many idle confined agents: what they cost the kernel, and whether it
/// stays responsive.
struct AgentsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents",
        abstract: "Start N idle confined agents; report kernel RSS per agent, start time, status latency.")

    @Option(help: "How many idle agents.")
    var count = 200

    @Option(help: ArgumentHelp("Rewrite the agents section of this README with the results.", valueName: "path"))
    var updateReadme: String?

    func run() throws {
        let work = "/tmp/agentos-bench-agents-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let (kernel, client) = try Bench.startKernel(work: work, arguments: ["--agent-uids", "400000-400999"])
        defer { Bench.stopProcess(kernel) }
        let idleStatus = try Bench.measure(count: 500, warmup: 50) { _ = try client.call(.status(.init())) }
        let before = Bench.residentKiB(kernel.processIdentifier)
        let started = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<count {
            var run = Agentos_V1_RunRequest()
            run.argv = ["/bin/sleep", "3600"]
            guard case .run = try client.call(.run(run)) else { throw ValidationError("run failed") }
        }
        let startSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        Thread.sleep(forTimeInterval: 1)
        let after = Bench.residentKiB(kernel.processIdentifier)
        let busyStatus = try Bench.measure(count: 500, warmup: 50) { _ = try client.call(.status(.init())) }
        var list = Agentos_V1_ListRequest()
        list.all = false
        let listing = try Bench.measure(count: 20, warmup: 2) { _ = try client.call(.list(list)) }
        guard case .status(let status) = try client.call(.status(.init())) else { throw ValidationError("status") }
        let table = [
            "Measured \(ISO8601DateFormatter().string(from: Date())) by `agentos-bench agents --count \(count)` (release build) on: "
                + Machine.description + ".",
            "",
            "| measurement | value |",
            "|---|---:|",
            "| idle confined agents running | \(status.agents.running) |",
            "| time to start them, one after another | \(String(format: "%.2f s (%.1f ms each)", startSeconds, startSeconds * 1000 / Double(count))) |",
            "| agentd RSS before / after | \(before / 1024) MiB / \(after / 1024) MiB |",
            "| agentd memory per idle agent | \(String(format: "%.0f KiB", Double(after - before) / Double(max(count, 1)))) |",
            "| `status` round trip, no agents (median / p99) | \(Bench.format(idleStatus.median)) / \(Bench.format(idleStatus.p99)) |",
            "| `status` round trip with \(count) agents (median / p99) | \(Bench.format(busyStatus.median)) / \(Bench.format(busyStatus.p99)) |",
            "| `ps` (list of \(count)) round trip, median | \(Bench.format(listing.median)) |",
        ].joined(separator: "\n")
        print(table)
        if let updateReadme {
            try Bench.replaceSection(in: updateReadme, marker: "agents", with: table)
            FileHandle.standardError.write(Data("updated \(updateReadme)\n".utf8))
        }
    }
}

struct Row {
    var name: String
    var sample: Sample

    /// `| name | median | p99 | n |`
    var markdown: String {
        "| \(name) | \(Bench.format(sample.median)) | \(Bench.format(sample.p99)) | \(sample.count) |"
    }
}

/// A raw echo peer for baseline (b): reads frames, answers each with a
/// frame of `reply-size` bytes, as the kernel answers `status`.
struct EchoServer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "echo-server", shouldDisplay: false)

    @Argument var path: String
    @Option var replySize = 64

    func run() throws {
        unlink(path)
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, listen(listener, 4) == 0 else { throw ValidationError("cannot listen on \(path)") }
        let reply = Frame.encode([UInt8](repeating: 0x24, count: max(0, replySize - Frame.headerSize)))
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { continue }
            var reader = FrameReader()
            var buffer = [UInt8](repeating: 0, count: 65_536)
            serve: while true {
                let n = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
                if n <= 0 { break serve }
                reader.append(buffer[0..<n])
                while (try? reader.next()) ?? nil != nil {
                    guard (try? Bench.writeAll(connection, reply)) != nil else { break serve }
                }
            }
            close(connection)
        }
    }
}

/// Latencies in microseconds.
struct Sample {
    var values: [Double]

    var count: Int { values.count }
    var median: Double { percentile(0.5) }
    var p99: Double { percentile(0.99) }

    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
        return sorted[index]
    }
}

enum Machine {
    static var description: String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let memory = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8))?
            .split(separator: "\n").first?.split(separator: " ").dropFirst().first.flatMap { Double($0) }
            .map { String(format: "%.0f GiB", $0 / 1_048_576) } ?? "?"
        return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(memory), Linux \(release)"
    }
}

extension Bench {
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static func residentKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
    }

    static func measure(count: Int, warmup: Int, _ body: () throws -> Void) throws -> Sample {
        for _ in 0..<warmup { try body() }
        var values: [Double] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            values.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000)
        }
        return Sample(values: values)
    }

    /// Measures two operations alternately, `count` times each; with
    /// `pause`, the machine idles that long after each (unmeasured), so
    /// that background work one side leaves (a kernel refilling its pool)
    /// is done before the other is measured, and does not slow it.
    static func measurePair(count: Int, warmup: Int, pause: Duration? = nil, _ first: () throws -> Void,
                            _ second: () throws -> Void) throws -> (Sample, Sample) {
        func idle() {
            if let pause { usleep(useconds_t(pause / .microseconds(1))) }
        }
        for _ in 0..<warmup {
            try first()
            try second()
        }
        var a: [Double] = [], b: [Double] = []
        a.reserveCapacity(count)
        b.reserveCapacity(count)
        for _ in 0..<count {
            var start = DispatchTime.now().uptimeNanoseconds
            try first()
            a.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000)
            idle()
            start = DispatchTime.now().uptimeNanoseconds
            try second()
            b.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000)
            idle()
        }
        return (Sample(values: a), Sample(values: b))
    }

    /// Starts the agentd built next to this benchmark on `work` (state dir
    /// and socket inside it) and connects to it.
    static func startKernel(work: String, arguments: [String] = []) throws -> (Process, KernelClient) {
        let binDirectory = URL(fileURLWithPath: executablePath).deletingLastPathComponent().path
        let kernel = try startProcess(binDirectory + "/agentd",
                                      ["--state-dir", work + "/state", "--socket", work + "/kernel.sock",
                                       "--log-level", "warning"] + arguments)
        do {
            return (kernel, try connect(work + "/kernel.sock"))
        } catch {
            stopProcess(kernel)
            throw error
        }
    }

    /// Starts a program; `directory` is its working directory (where an
    /// Erlang VM, say, drops its crash dump).
    static func startProcess(_ path: String, _ arguments: [String], directory: String? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        try process.run()
        return process
    }

    static func stopProcess(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    static func waitFor(_ condition: () -> Bool) -> Bool {
        for _ in 0..<1_000 {
            if condition() { return true }
            usleep(10_000)
        }
        return false
    }

    static func connect(_ socketPath: String) throws -> KernelClient {
        var client: KernelClient?
        _ = waitFor {
            client = try? KernelClient.connect(socketPath: socketPath, client: "agentos-bench")
            return client != nil
        }
        guard let client else { throw ValidationError("agentd did not start on \(socketPath)") }
        return client
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            var written = 0
            while written < buffer.count {
                let n = write(fd, base + written, buffer.count - written)
                guard n > 0 else { throw ValidationError("write failed") }
                written += n
            }
        }
    }

    /// The hardened bubblewrap line of the confinement issue (the caller
    /// adds `--seccomp 9` with agentd's compiled default profile).
    static func bubblewrapArguments() -> [String] {
        var arguments = ["--unshare-all", "--new-session", "--die-with-parent", "--cap-drop", "ALL",
                         "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
        for directory in ["bin", "sbin", "lib", "lib64"] {
            let path = "/" + directory
            if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
                arguments += ["--symlink", link, path]
            } else if FileManager.default.fileExists(atPath: path) {
                arguments += ["--ro-bind", path, path]
            }
        }
        return arguments + ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "/bin/true"]
    }

    static func spawnAndWait(_ path: String, _ arguments: [String], fd9: String? = nil) throws {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let fd9 { posix_spawn_file_actions_addopen(&actions, 9, fd9, O_RDONLY, 0) }
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw ValidationError("posix_spawn \(path): \(rc)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw ValidationError("\(path) exited with status \(status)") }
    }

    /// A confined /bin/true through the kernel, from the run call to its
    /// end: one run call with `wait` (the answer comes at the agent's exit).
    static func runToExit(_ client: KernelClient) throws {
        var run = Agentos_V1_RunRequest()
        run.argv = ["/bin/true"]
        run.wait = true
        guard case .run(let ended) = try client.call(.run(run)), ended.agent.exit.exited, ended.agent.exit.code == 0 else {
            throw ValidationError("/bin/true did not exit 0")
        }
    }

    static func posixSpawnTrue() throws {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { for pointer in argv { free(pointer) } }
        let rc = posix_spawn(&pid, "/bin/true", nil, nil, argv, environ)
        guard rc == 0 else { throw ValidationError("posix_spawn: \(rc)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    static func markdown(results: [Row], ratios: [(String, Double, Double)], roundTrips: Int, spawns: Int) -> String {
        var lines = [
            "Measured \(ISO8601DateFormatter().string(from: Date())) by `agentos-bench kernel` (release build) on: "
                + Machine.description + ".",
            "",
            "| measurement | median | p99 | n |",
            "|---|---:|---:|---:|",
        ]
        for row in results {
            lines.append(row.markdown)
        }
        lines.append("")
        lines.append("Each pair was measured interleaved (one of each in turn), so both saw the same machine; (c) and (d) "
                     + "with an idle moment after each, so that the kernel's refill of its pool does not run while bubblewrap "
                     + "is measured (an ended sandbox's teardown, 50-100 ms after its exit, still falls in a later sample of "
                     + "either side).")
        lines.append("")
        lines.append("| ratio (medians) | value | target |")
        lines.append("|---|---:|---:|")
        for (name, value, target) in ratios {
            let goal = target > 0 ? "≤ " + String(format: "%.1f", target) + "×" : "(cost of the sandbox)"
            lines.append("| \(name) | \(String(format: "%.2f", value))× | \(goal) |")
        }
        return lines.joined(separator: "\n")
    }

    static func format(_ microseconds: Double) -> String {
        microseconds >= 1_000 ? String(format: "%.2f ms", microseconds / 1_000) : String(format: "%.1f µs", microseconds)
    }

    static func replaceSection(in path: String, marker: String, with table: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let begin = "<!-- bench:\(marker):begin -->", end = "<!-- bench:\(marker):end -->"
        guard let start = text.range(of: begin), let stop = text.range(of: end), start.upperBound <= stop.lowerBound else {
            throw ValidationError("\(path) has no \(begin) ... \(end) section")
        }
        let updated = text.replacingCharacters(in: start.upperBound..<stop.lowerBound, with: "\n" + table + "\n")
        try updated.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
