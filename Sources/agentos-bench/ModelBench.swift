import AgentOSClient
import AgentOSProtocol
import ArgumentParser
import Foundation
import ModelProviderFake

/// The model gateway's added latency: one chat completion through the
/// kernel (`model_complete` over the kernel socket, the kernel calling the
/// provider) against the same request sent straight to the same local
/// server over a kept-alive HTTP connection, measured interleaved.
struct ModelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Model gateway overhead per call vs calling the same local server directly.")

    @Option(help: "Calls measured per case.")
    var calls = 2_000

    @Option(help: ArgumentHelp("Rewrite the models section of this README with the results.", valueName: "path"))
    var updateReadme: String?

    func run() throws {
        let work = "/tmp/agentos-bench-models-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let fake = try Self.blocking { try await FakeModelProvider.start(apiKey: nil) }
        defer { _ = try? Self.blocking { try await fake.shutdown() } }
        let config = work + "/agentd.yaml"
        try """
            version: 1
            models:
              providers:
                local: {kind: openai-compatible, base_url: "\(fake.baseURL)", concurrency: 64}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let (kernel, client) = try Bench.startKernel(work: work, arguments: ["--config", config])
        defer { Bench.stopProcess(kernel) }

        var request = Agentos_V1_ModelCompleteRequest()
        request.model = "local:echo"
        var message = Agentos_V1_ModelMessage()
        message.role = "user"
        message.content = "how long does the gateway take"
        request.messages = [message]
        request.maxTokens = 64
        let viaKernel = {
            guard case .modelComplete(let answer) = try client.call(.modelComplete(request)),
                  answer.content == "echo: how long does the gateway take" else { throw ValidationError("bad answer through the kernel") }
        }
        // The same request body the gateway sends, to the same server.
        let body = #"{"max_tokens":64,"messages":[{"content":"how long does the gateway take","role":"user"}],"model":"echo"}"#
        let direct = try DirectHTTP(port: fake.port)
        let straight = {
            let answer = try direct.post("/v1/chat/completions", body: body)
            guard answer.contains("echo: how long does the gateway take") else { throw ValidationError("bad direct answer") }
        }
        let (through, baseline) = try Bench.measurePair(count: calls, warmup: 200, viaKernel, straight)
        let added = through.median - baseline.median
        let addedP99 = through.p99 - baseline.p99
        let table = [
            "Measured \(ISO8601DateFormatter().string(from: Date())) by `agentos-bench models` (release build) on: "
                + Machine.description + ".",
            "",
            "| one chat completion (OpenAI format, the fake provider on 127.0.0.1) | median | p99 | n |",
            "|---|---:|---:|---:|",
            "| (a) straight to the server: one kept-alive HTTP/1.1 connection, the same body | \(Bench.format(baseline.median)) | \(Bench.format(baseline.p99)) | \(baseline.count) |",
            "| (b) through the kernel: `model_complete` on the kernel socket, the gateway calling the server | \(Bench.format(through.median)) | \(Bench.format(through.p99)) | \(through.count) |",
            "",
            "| the gateway's added latency | value | target |",
            "|---|---:|---:|",
            "| (b) − (a), medians | \(Bench.format(added)) | ≤ 1 ms |",
            "| (b) − (a), p99s | \(Bench.format(addedP99)) | |",
            "| (b) / (a), medians | \(String(format: "%.2f×", through.median / baseline.median)) | |",
        ].joined(separator: "\n")
        print(table)
        if let updateReadme {
            try Bench.replaceSection(in: updateReadme, marker: "models", with: table)
            FileHandle.standardError.write(Data("updated \(updateReadme)\n".utf8))
        }
    }

    /// Runs async work from this synchronous command (the fake runs on NIO's own threads).
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { box.set(.success(try await work())) } catch { box.set(.failure(error)) }
            done.signal()
        }
        done.wait()
        return try box.get()
    }
}

final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, any Error>?

    func set(_ value: Result<T, any Error>) { lock.withLock { result = value } }

    func get() throws -> T {
        guard let result = lock.withLock({ result }) else { throw ValidationError("no result") }
        return try result.get()
    }
}

/// The baseline's client: a blocking HTTP/1.1 client on one kept-alive
/// TCP connection, reading a Content-Length answer.
final class DirectHTTP {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ValidationError("socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw ValidationError("connect: \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    func post(_ path: String, body: String) throws -> String {
        let request = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        try Bench.writeAll(fd, Array(request.utf8))
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while headerEnd == nil {
            try fill()
            headerEnd = buffer.indices.dropLast(3).first { Array(buffer[$0..<$0 + 4]) == separator }
        }
        guard let end = headerEnd else { throw ValidationError("no headers") }
        let head = String(decoding: buffer[..<end], as: UTF8.self).lowercased()
        guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
              let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("no content-length")
        }
        while buffer.count < end + 4 + length { try fill() }
        let answer = String(decoding: buffer[(end + 4)..<(end + 4 + length)], as: UTF8.self)
        buffer.removeFirst(end + 4 + length)
        return answer
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let count = read(fd, &chunk, chunk.count)
        guard count > 0 else { throw ValidationError("the server closed the connection") }
        buffer += chunk[..<count]
    }
}
