import AgentKit
import AgentOSClient
import AgentOSProtocol
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The message bus, agent to agent through the kernel (both confined, both
/// on AgentKit): request/response round trips against a raw Unix-socket
/// ping-pong between two processes measured in the same run, the rate of
/// one-way messages to a live agent, and the rate at which messages are
/// queued durably for an agent that is not running.
struct BusBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus",
        abstract: "Agent-to-agent request/response vs a raw Unix-socket ping-pong; message throughput.")

    @Option(help: "Round trips measured (each side).")
    var count = 5_000

    @Option(help: "One-way messages sent in each throughput run.")
    var messages = 50_000

    @Option(help: ArgumentHelp("Rewrite the bus section of this README with the results.", valueName: "path"))
    var updateReadme: String?

    func run() throws {
        let work = "/tmp/agentos-bench-bus-\(getpid())"
        try FileManager.default.createDirectory(atPath: work + "/one-core", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        chmod(work, 0o755)
        chmod(work + "/one-core", 0o755)
        let payload = 64
        let cpus = CPUAffinity.allowed()
        guard cpus.count >= 2 else {
            throw ValidationError("the bus benchmark compares one core with two; this process may use CPUs \(cpus)")
        }

        // Baselines: a frame of the same size to another process and back,
        // the two on two cores, then on one (where the scheduler puts them
        // moves the median by half or more, so each placement is set).
        let rawTwoCores = try rawPingPong(socket: work + "/echo-2.sock", payload: payload, echoCPU: cpus[1],
                                          clientCPU: cpus[0])
        let rawOneCore = try rawPingPong(socket: work + "/echo-1.sock", payload: payload, echoCPU: cpus[0],
                                         clientCPU: cpus[0])
        let rr: [(id: String, arguments: [String])] = [
            ("responder", ["respond"]),
            ("requester", ["request", "--to", "rr/responder", "--count", String(count), "--payload", String(payload)]),
        ]

        // Request/response with the kernel and both agents on one core: a
        // kernel started from a thread on that core, whose agents inherit it.
        let oneCore: [String: Double]
        do {
            let (kernel, client) = try CPUAffinity.on([cpus[0]]) { try Bench.startKernel(work: work + "/one-core") }
            defer { Bench.stopProcess(kernel) }
            try team("rr", rr, client)
            oneCore = try result(of: "rr.requester", "request-result", client)
        }

        let (kernel, client) = try Bench.startKernel(work: work, arguments: ["--mailbox-limit", "1000000"])
        defer { Bench.stopProcess(kernel) }

        // Request/response between two confined agents, placed by the scheduler.
        try team("rr", rr, client)
        let trips = try result(of: "rr.requester", "request-result", client)

        // One-way messages to a live agent, sent by another (concurrently, pipelined).
        try team("flow", [("sink", ["sink", "--count", String(messages)]),
                          ("flood", ["flood", "--to", "flow/sink", "--count", String(messages)])], client)
        let sent = try result(of: "flow.flood", "flood-result", client)
        let received = try result(of: "flow.sink", "sink-result", client)
        let liveRate = Double(messages) / (((received["last_ns"] ?? 0) - (sent["start_ns"] ?? 0)) / 1e9)

        // Queued durably for a worker that is not running.
        try team("backlog", [("queuer", ["flood", "--to", "backlog/offline", "--count", String(messages)])], client)
        let queued = try result(of: "backlog.queuer", "flood-result", client)
        let queueRate = Double(messages) / (((queued["end_ns"] ?? 0) - (queued["start_ns"] ?? 0)) / 1e9)

        func row(_ label: String, _ trips: [String: Double]) -> String {
            "| \(label) | \(Bench.format(trips["median_us"] ?? 0)) | \(Bench.format(trips["p99_us"] ?? 0)) | \(Int(trips["n"] ?? 0)) |"
        }
        func row(_ label: String, _ sample: Sample) -> String { Row(name: label, sample: sample).markdown }
        func ratio(_ trips: [String: Double], _ raw: Sample) -> String {
            String(format: "%.2f×", (trips["median_us"] ?? 0) / raw.median)
        }
        let table = [
            "Measured \(ISO8601DateFormatter().string(from: Date())) by `agentos-bench bus` (release build) on: "
                + Machine.description + ". Payload \(payload) bytes.",
            "",
            "| | median | p99 | n |",
            "|---|---:|---:|---:|",
            row("(a) request/response: confined agent → kernel → confined agent → kernel → agent (AgentKit), placed by the scheduler", trips),
            row("(b) raw Unix-socket ping-pong between two processes, on two cores", rawTwoCores),
            row("(a1) the request/response of (a), the kernel and both agents on one core", oneCore),
            row("(b1) the ping-pong of (b) on one core", rawOneCore),
            "",
            "| | value | target |",
            "|---|---:|---:|",
            "| (a) / (b), medians: two cores | \(ratio(trips, rawTwoCores)) | ≤ 4× |",
            "| (a1) / (b1), medians: one core | \(ratio(oneCore, rawOneCore)) | ≤ 4× |",
            "| one-way messages to a live agent of its team (agent → kernel → agent; each sender answered once its message is acked or stored) | \(Int(liveRate).formatted()) msgs/s | ≥ 100,000 msgs/s |",
            "| messages queued durably for a worker that is not running | \(Int(queueRate).formatted()) msgs/s | |",
        ].joined(separator: "\n")
        print(table)
        if let updateReadme {
            try Bench.replaceSection(in: updateReadme, marker: "bus", with: table)
            FileHandle.standardError.write(Data("updated \(updateReadme)\n".utf8))
        }
    }
}

extension BusBench {
    /// Applies a policy whose agents are a team (one supervisor's
    /// children), which may message each other without a capability, as
    /// the agents of a policy usually do.
    func team(_ name: String, _ children: [(id: String, arguments: [String])], _ client: KernelClient) throws {
        let paths = ToolBench.sandboxPaths(for: Bench.executablePath)
        var yaml = """
            version: 1
            name: \(name)
            supervisor:
              strategy: one_for_one
              children:

            """
        for child in children {
            let arguments = (["bus-agent"] + child.arguments).map { "\"\($0)\"" }.joined(separator: ", ")
            yaml += """
                    - id: \(child.id)
                      program: \(Bench.executablePath)
                      args: [\(arguments)]
                      restart: temporary
                      sandbox: {pids: 64, ro: [\(paths.joined(separator: ", "))]}

                """
        }
        var apply = Agentos_V1_ApplyRequest()
        apply.source = yaml
        apply.file = "\(name).yaml"
        guard case .apply = try client.call(.apply(apply)) else { throw ValidationError("apply \(name) failed") }
    }

    /// The JSON the agent logged on its line starting with `tag`, once it ended well.
    func result(of agent: String, _ tag: String, _ client: KernelClient) throws -> [String: Double] {
        var wait = Agentos_V1_WaitRequest()
        wait.agent = agent
        guard case .wait(let ended) = try client.call(.wait(wait)), ended.exit.exited, ended.exit.code == 0 else {
            throw ValidationError("\(agent) failed")
        }
        let log = ToolBench.log(of: ended, client: client)
        guard let line = log.split(separator: "\n").first(where: { $0.hasPrefix(tag + " ") }),
              let object = try JSONSerialization.jsonObject(with: Data(line.dropFirst(tag.count + 1).utf8)) as? [String: Any] else {
            throw ValidationError("no \(tag) line from \(agent): \(log)")
        }
        return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    /// `count` round trips of a `payload`-byte frame to an echo process on
    /// `echoCPU`, from this thread on `clientCPU`.
    func rawPingPong(socket path: String, payload: Int, echoCPU: Int, clientCPU: Int) throws -> Sample {
        let echo = try CPUAffinity.on([echoCPU]) {
            try Bench.startProcess(Bench.executablePath, ["echo-server", path, "--reply-size", String(payload)])
        }
        defer { Bench.stopProcess(echo) }
        var fd: Int32 = -1
        _ = Bench.waitFor {
            fd = (try? openUnixSocket(path: path)) ?? -1
            return fd >= 0
        }
        guard fd >= 0 else { throw ValidationError("the echo server did not start") }
        defer { close(fd) }
        let frame = Frame.encode([UInt8](repeating: 0x23, count: payload - Frame.headerSize))
        var buffer = [UInt8](repeating: 0, count: 4_096)
        return try CPUAffinity.on([clientCPU]) {
            try Bench.measure(count: count, warmup: 500) {
                try Bench.writeAll(fd, frame)
                var got = 0
                while got < payload {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    guard n > 0 else { throw ValidationError("the echo server went away") }
                    got += n
                }
            }
        }
    }
}

/// The agents of the bus benchmark (run confined by the kernel).
struct BusAgent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bus-agent", shouldDisplay: false)

    @Argument var role: String
    @Option var to = ""
    @Option var count = 1_000
    @Option var payload = 64
    @Option var concurrency = 256

    func run() async throws {
        let agent = try Agent.connect(client: "agentos-bench bus-agent")
        // Answers resume this work on the thread that read them.
        try await withTaskExecutorPreference(agent.executor) { try await work(agent) }
    }

    func work(_ agent: Agent) async throws {
        let body = Payload(bytes: Data(repeating: 0x2a, count: payload), contentType: "application/octet-stream")
        switch role {
        case "respond":
            try await agent.serve { request in Payload(bytes: request.payload, contentType: request.contentType) }
        case "request":
            for _ in 0..<200 { _ = try await agent.request(to, body) }
            var values: [Double] = []
            values.reserveCapacity(count)
            for _ in 0..<count {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try await agent.request(to, body)
                values.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000)
            }
            let sample = Sample(values: values)
            report("request-result", ["median_us": sample.median, "p99_us": sample.p99, "n": Double(sample.count)])
        case "sink":
            // Acks each message as it is handled, without waiting for the
            // answer (a sender is answered once its message is acked or
            // stored: a reader that acks late holds its senders).
            var received = 0
            var first: Int64 = 0
            for try await message in agent.messages() {
                if first == 0 { first = Self.now() }
                received += 1
                agent.ackLater(message)
                if received == count { break }
            }
            report("sink-result", ["first_ns": Double(first), "last_ns": Double(Self.now()), "count": Double(received)])
        case "flood":
            let start = Self.now()
            let perTask = count / concurrency
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<concurrency {
                    let share = index == concurrency - 1 ? count - perTask * (concurrency - 1) : perTask
                    group.addTask {
                        for _ in 0..<share { try await agent.send(to: to, body) }
                    }
                }
                try await group.waitForAll()
            }
            report("flood-result", ["start_ns": Double(start), "end_ns": Double(Self.now())])
        default:
            throw ValidationError("unknown role \(role)")
        }
    }

    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    func report(_ tag: String, _ values: [String: Double]) {
        guard let data = try? JSONSerialization.data(withJSONObject: values, options: [.sortedKeys]) else { return }
        print(tag + " " + String(decoding: data, as: UTF8.self))
        fflush(nil)
    }
}
