import AgentOSClient
import AgentOSConfinement
import AgentOSProtocol
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Restart latency of a confined one_for_one child through agentd against
/// the OS-process supervisors people use (daemontools' supervise, runit's
/// runsv, s6-supervise) and an Erlang supervisor restarting a port, all in
/// the same run; plus starting and stopping a 100-agent tree.
struct RestartBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Restart latency (death to the replacement's first instruction) vs daemontools, runit, s6, Erlang.",
        discussion: """
            Every supervisor runs the same tiny C program, which appends a CLOCK_MONOTONIC timestamp to a \
            file first thing in main. The benchmark SIGKILLs the running copy and measures from just before \
            the kill to the replacement's timestamp. Supervisors are measured round-robin, one kill at a \
            time, and each child has been up for over a second when it is killed (runit, s6 and \
            daemontools wait a second before restarting a child that died within its first second; that \
            penalty is measured separately, as "early deaths"). Needs cc, and for the baselines the \
            Debian packages daemontools, runit, s6 and erlang-base (missing ones are skipped).
            """)

    @Option(help: "Restarts measured per supervisor.")
    var restarts = 200

    @Option(help: "Early-death restarts measured per baseline supervisor (each costs them about a second).")
    var earlyDeaths = 5

    @Option(help: "Children in the tree whose start and stop are timed.")
    var treeSize = 100

    @Option(help: ArgumentHelp("Rewrite the restart section of this README with the results.", valueName: "path"))
    var updateReadme: String?

    func run() throws {
        let work = "/tmp/agentos-bench-restart-\(getpid())"
        try FileManager.default.createDirectory(atPath: work + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: work + "/out", withIntermediateDirectories: true)
        chmod(work + "/out", 0o777)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let stamp = work + "/bin/stamp"
        try Stamp.compile(to: stamp, fixedFile: nil, work: work)

        var subjects: [Subject] = []
        defer { for subject in subjects { subject.stop() } }

        let (kernel, client) = try Bench.startKernel(work: work)
        defer { Bench.stopProcess(kernel) }
        let oursFile = work + "/out/agentos"
        // Every start of a confined child runs as a new uid: the file must be writable by all.
        for name in ["agentos"] + Baseline.allCases.map(\.rawValue) {
            _ = FileManager.default.createFile(atPath: work + "/out/" + name, contents: nil)
            chmod(work + "/out/" + name, 0o666)
        }
        try apply(client, """
            version: 1
            name: bench
            supervisor:
              intensity: 1000000
              period: 1s
              children:
                - id: stamp
                  program: \(stamp)
                  args: ["\(oursFile)"]
                  sandbox: {ro: ["\(work)/bin"], rw: ["\(work)/out"]}
            """)
        subjects.append(Subject(name: "Agent OS (confined, one_for_one)", file: oursFile,
                                commandLine: [stamp, oursFile], process: nil))

        for baseline in Baseline.allCases {
            guard let subject = try baseline.start(work: work, stamp: stamp) else {
                FileHandle.standardError.write(Data("\(baseline.program) not installed: \(baseline.rawValue) skipped\n".utf8))
                continue
            }
            subjects.append(subject)
        }
        guard subjects[0].waitForStarts(1, timeout: 30) else { throw ValidationError("agentd did not start the child") }
        subjects = [subjects[0]] + subjects.dropFirst().filter { subject in
            if subject.waitForStarts(1, timeout: 30) { return true }
            FileHandle.standardError.write(Data("\(subject.name) did not start its child: skipped\n".utf8))
            subject.stop()
            return false
        }

        // Round-robin, one kill at a time, each child up for > 1 s.
        var latencies = [[Double]](repeating: [], count: subjects.count)
        for round in 0..<restarts {
            for (index, subject) in subjects.enumerated() {
                subject.waitForUptime(seconds: 1.1)
                guard let latency = subject.killAndTime(timeout: 10) else {
                    throw ValidationError("\(subject.name) did not restart its child (round \(round))")
                }
                latencies[index].append(latency)
            }
        }
        // Early deaths: killed as soon as it has started.
        var early = [[Double]](repeating: [], count: subjects.count)
        for (index, subject) in subjects.enumerated() {
            let count = index == 0 ? restarts : earlyDeaths
            for _ in 0..<count {
                guard let latency = subject.killAndTime(timeout: 10) else { break }
                early[index].append(latency)
            }
        }

        let (startSeconds, stopSeconds, orderKept) = try treeStartStop(client, size: treeSize)

        let reference = latencies.indices.first { subjects[$0].name.hasPrefix("daemontools") }
        var lines = [
            "Measured \(ISO8601DateFormatter().string(from: Date())) by `agentos-bench restart` (release build) on: "
                + Machine.description + ".",
            "",
            "| supervisor | restart latency median | p99 | vs daemontools | early death (killed at once) median |",
            "|---|---:|---:|---:|---:|",
        ]
        for (index, subject) in subjects.enumerated() {
            let sample = Sample(values: latencies[index])
            let ratio = reference.map { String(format: "%.2f×", sample.median / Sample(values: latencies[$0]).median) } ?? "–"
            let earlySample = Sample(values: early[index])
            lines.append("| \(subject.name) | \(Bench.format(sample.median)) | \(Bench.format(sample.p99)) | \(ratio) | "
                + (earlySample.count > 0 ? "\(Bench.format(earlySample.median)) (n=\(earlySample.count))" : "–") + " |")
        }
        lines += [
            "",
            "\(restarts) restarts per supervisor; cgroup2 `favordynmods` was "
                + (Self.favordynmodsOn ? "on" : "off (agentd's default; see `agentd --cgroup-favordynmods`)")
                + ". Target: Agent OS ≤ 1.5× daemontools' median (stretch ≤ 1.0×), no one-second penalty for early deaths.",
            "",
            "| \(treeSize)-worker tree (confined `/bin/sleep`s, one_for_one) | time |",
            "|---|---:|",
            "| `apply` until every child started, in start order (\(orderKept ? "checked" : "NOT kept")) | "
                + String(format: "%.2f s (%.1f ms per child)", startSeconds, startSeconds * 1000 / Double(treeSize)) + " |",
            "| `delete` until every child stopped (reverse order) | "
                + String(format: "%.2f s (%.1f ms per child)", stopSeconds, stopSeconds * 1000 / Double(treeSize)) + " |",
        ]
        let table = lines.joined(separator: "\n")
        print(table)
        if let updateReadme {
            try Bench.replaceSection(in: updateReadme, marker: "restart", with: table)
            FileHandle.standardError.write(Data("updated \(updateReadme)\n".utf8))
        }
    }

    static var favordynmodsOn: Bool {
        CgroupHost.detect().unified.map { CgroupTuning.favorsDynamicModifications($0.mountPoint) } ?? false
    }

    private func apply(_ client: KernelClient, _ source: String) throws {
        var request = Agentos_V1_ApplyRequest()
        request.source = source
        request.file = "bench.yaml"
        guard case .apply = try client.call(.apply(request)) else { throw ValidationError("apply failed") }
    }

    /// Applies a tree of `size` sleepers and deletes it; checks the start
    /// order from the event log.
    private func treeStartStop(_ client: KernelClient, size: Int) throws -> (Double, Double, Bool) {
        var source = "version: 1\nname: hundred\nsupervisor:\n  children:\n"
        for index in 0..<size {
            source += "    - id: w\(index)\n      program: /bin/sleep\n      args: [\"3600\"]\n      shutdown: brutal_kill\n"
        }
        var request = Agentos_V1_ApplyRequest()
        request.source = source
        request.file = "hundred.yaml"
        let started = Stamp.monotonicNanoseconds()
        guard case .apply = try client.call(.apply(request)) else { throw ValidationError("apply failed") }
        let startSeconds = Double(Stamp.monotonicNanoseconds() - started) / 1e9
        var delete = Agentos_V1_PolicyRequest()
        delete.name = "hundred"
        let stopping = Stamp.monotonicNanoseconds()
        guard case .deletePolicy = try client.call(.deletePolicy(delete)) else { throw ValidationError("delete failed") }
        let stopSeconds = Double(Stamp.monotonicNanoseconds() - stopping) / 1e9
        var events = Agentos_V1_EventsRequest()
        events.limit = UInt32(size * 12)
        var paths: [String] = []
        try client.stream(.events(events)) { item in
            if case .event(let event) = item, event.kind == "supervision.started", event.data["policy"] == "hundred" {
                paths.append(event.data["path"] ?? "")
            }
            return true
        }
        let expected = (0..<size).map { "hundred/w\($0)" }
        return (startSeconds, stopSeconds, paths == expected)
    }
}

/// One supervisor under test and the child it keeps running.
final class Subject {
    let name: String
    let file: String
    /// How to find the running child's host pid when the pid it wrote is
    /// not the host's (a confined child sees its own pid namespace).
    let commandLine: [String]?
    let process: Process?
    private var starts = 0
    private var lastStart: Int64 = 0
    private var lastPID: Int32 = 0

    init(name: String, file: String, commandLine: [String]?, process: Process?) {
        self.name = name
        self.file = file
        self.commandLine = commandLine
        self.process = process
    }

    /// (timestamp, pid) lines the children wrote, oldest first.
    private func stamps() -> [(Int64, Int32)] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 2, let time = Int64(fields[0]), let pid = Int32(fields[1]) else { return nil }
            return (time, pid)
        }
    }

    func waitForStarts(_ count: Int, timeout: Double) -> Bool {
        let deadline = Stamp.monotonicNanoseconds() + Int64(timeout * 1e9)
        while Stamp.monotonicNanoseconds() < deadline {
            let all = stamps()
            if all.count >= count, let last = all.last {
                starts = all.count
                (lastStart, lastPID) = last
                return true
            }
            usleep(100)
        }
        return false
    }

    func waitForUptime(seconds: Double) {
        let due = lastStart + Int64(seconds * 1e9)
        let now = Stamp.monotonicNanoseconds()
        if due > now { usleep(useconds_t((due - now) / 1_000)) }
    }

    /// SIGKILLs the running child and returns microseconds until its
    /// replacement's first timestamp.
    func killAndTime(timeout: Double) -> Double? {
        var pid: Int32? = commandLine == nil ? lastPID : nil
        let deadline = Stamp.monotonicNanoseconds() + Int64(timeout * 1e9)
        while pid == nil, let commandLine, Stamp.monotonicNanoseconds() < deadline {
            pid = Stamp.hostPids(commandLine: commandLine).first
            if pid == nil { usleep(200) }
        }
        guard let pid else { return nil }
        let before = starts
        let killedAt = Stamp.monotonicNanoseconds()
        kill(pid, SIGKILL)
        guard waitForStarts(before + 1, timeout: timeout) else { return nil }
        // The old process must be gone before the next round finds "the" child.
        if let commandLine {
            while Stamp.hostPids(commandLine: commandLine).contains(pid), Stamp.monotonicNanoseconds() < deadline { usleep(200) }
        }
        return Double(lastStart - killedAt) / 1_000
    }

    func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        usleep(100_000)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        // What it left running (supervise and runsv leave their child).
        if lastPID > 0 { kill(lastPID, SIGKILL) }
    }
}

enum Baseline: String, CaseIterable {
    case daemontools, runit, s6, erlang

    var program: String {
        switch self {
        case .daemontools: "/usr/bin/supervise"
        case .runit: "/usr/bin/runsv"
        case .s6: "/usr/bin/s6-supervise"
        case .erlang: "/usr/bin/escript"
        }
    }

    func start(work: String, stamp: String) throws -> Subject? {
        guard FileManager.default.isExecutableFile(atPath: program) else { return nil }
        let file = work + "/out/" + rawValue
        switch self {
        case .daemontools, .runit, .s6:
            // A service dir whose run is the stamp program itself (no shell).
            let directory = work + "/service-" + rawValue
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let run = directory + "/run"
            try Stamp.compile(to: run, fixedFile: file, work: work)
            let names = ["daemontools": "daemontools supervise", "runit": "runit runsv", "s6": "s6-supervise"]
            let process = try Bench.startProcess(program, [directory])
            return Subject(name: names[rawValue] ?? rawValue, file: file, commandLine: nil, process: process)
        case .erlang:
            let script = work + "/stampsup.escript"
            try Stamp.erlangSupervisor.write(toFile: script, atomically: true, encoding: .utf8)
            let process = try Bench.startProcess(program, [script, stamp, file], directory: work)
            return Subject(name: "Erlang/OTP supervisor (port)", file: file, commandLine: nil, process: process)
        }
    }
}

enum Stamp {
    static let source = """
        #define _GNU_SOURCE
        #include <fcntl.h>
        #include <stdio.h>
        #include <time.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
        #ifdef STAMP_FILE
            const char *path = STAMP_FILE;
        #else
            if (argc < 2) return 2;
            const char *path = argv[1];
        #endif
            char line[64];
            int length = snprintf(line, sizeof line, "%lld %d\\n", (long long)now.tv_sec * 1000000000LL + now.tv_nsec, getpid());
            int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
            if (fd < 0 || write(fd, line, (size_t)length) != length) return 1;
            close(fd);
            for (;;) pause();
        }
        """

    /// One supervisor, one gen_server that owns a port running the stamp
    /// program and stops when the port exits; logging off.
    static let erlangSupervisor = """
        #!/usr/bin/env escript
        %%! -noshell
        -mode(compile).
        -export([init/1, handle_info/2, handle_call/3, handle_cast/2]).
        main([Stamp, File]) ->
            logger:set_primary_config(level, none),
            {ok, _} = supervisor:start_link(?MODULE, {sup, Stamp, File}),
            receive never -> ok end.
        init({sup, Stamp, File}) ->
            {ok, {#{strategy => one_for_one, intensity => 1000000, period => 1},
                  [#{id => stamp, start => {gen_server, start_link, [?MODULE, {worker, Stamp, File}, []]}}]}};
        init({worker, Stamp, File}) ->
            Port = open_port({spawn_executable, Stamp}, [{args, [File]}, exit_status]),
            {ok, Port}.
        handle_info({Port, {exit_status, _}}, Port) -> {stop, port_exited, Port};
        handle_info(_, State) -> {noreply, State}.
        handle_call(_, _, State) -> {reply, ok, State}.
        handle_cast(_, State) -> {noreply, State}.
        """

    static func compile(to output: String, fixedFile: String?, work: String) throws {
        let source = work + "/stamp.c"
        try Self.source.write(toFile: source, atomically: true, encoding: .utf8)
        var arguments = ["-O2", "-o", output, source]
        if let fixedFile { arguments.insert("-DSTAMP_FILE=\"\(fixedFile)\"", at: 0) }
        let compiler = Process()
        compiler.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
        compiler.arguments = arguments
        try compiler.run()
        compiler.waitUntilExit()
        guard compiler.terminationStatus == 0 else { throw ValidationError("cc failed to build the stamp program") }
    }

    static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    static func hostPids(commandLine arguments: [String]) -> [Int32] {
        let wanted = arguments.joined(separator: "\0") + "\0"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            guard String(decoding: data, as: UTF8.self) == wanted else { return false }
            // A zombie has not been reaped yet: it is dead already.
            let status = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            return !(status.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") ?? true)
        }
    }
}
