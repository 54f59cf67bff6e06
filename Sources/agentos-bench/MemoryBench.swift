import AgentOSClient
import AgentOSProtocol
import ArgumentParser
import Foundation

/// Memory search as memory grows: `mem search` (FTS5, BM25) through the
/// kernel on 1,000 entries and on `entries` (default 20,000), against a key
/// lookup (`mem get`) measured in the same run.
struct MemoryBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Memory search latency as memory grows, against a key lookup.")

    @Option(help: "Entries in the large case.")
    var entries = 20_000

    @Option(help: "Searches measured per case.")
    var searches = 500

    @Option(help: ArgumentHelp("Rewrite the memory section of this README with the results.", valueName: "path"))
    var updateReadme: String?

    func run() throws {
        let work = "/tmp/agentos-bench-memory-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let (kernel, client) = try Bench.startKernel(work: work)
        defer { Bench.stopProcess(kernel) }
        var run = Agentos_V1_RunRequest()
        run.name = "rememberer"
        run.argv = ["/bin/sleep", "3600"]
        guard case .run = try client.call(.run(run)) else { throw ValidationError("run failed") }

        // Values of a few words from a small vocabulary: every word is in many entries.
        let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
                     "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
        var generator = SystemRandomNumberGenerator()
        var stored = 0
        func fill(upTo count: Int) throws {
            while stored < count {
                var put = Agentos_V1_MemoryRequest()
                put.agent = "rememberer"
                put.key = "k\(stored)"
                // 12 common words, a topic shared by 1% of entries, an id of its own.
                put.value = (0..<12).map { _ in words[Int(generator.next() % UInt64(words.count))] }.joined(separator: " ")
                    + " topic\(stored % 100) id\(stored)"
                put.tags = [words[stored % words.count]]
                guard case .memPut = try client.call(.memPut(put)) else { throw ValidationError("put failed") }
                stored += 1
            }
        }
        func search(_ query: String) -> () throws -> Void {
            var request = Agentos_V1_MemoryRequest()
            request.agent = "rememberer"
            request.query = query
            request.limit = 10
            return {
                guard case .memSearch(let list) = try client.call(.memSearch(request)), !list.entries.isEmpty else {
                    throw ValidationError("search found nothing")
                }
            }
        }
        func get() throws {
            var request = Agentos_V1_MemoryRequest()
            request.agent = "rememberer"
            request.key = "k\(Int(generator.next() % UInt64(stored)))"
            guard case .memGet = try client.call(.memGet(request)) else { throw ValidationError("get failed") }
        }
        try fill(upTo: 1_000)
        let (smallSearch, smallGet) = try Bench.measurePair(count: searches, warmup: 50, search("delta kilo"), get)
        let smallTopic = try Bench.measure(count: searches, warmup: 50, search("topic42"))
        let smallRare = try Bench.measure(count: searches, warmup: 50, search("id500"))
        try fill(upTo: entries)
        let (largeSearch, largeGet) = try Bench.measurePair(count: searches, warmup: 50, search("delta kilo"), get)
        let topic = try Bench.measure(count: searches, warmup: 50, search("topic42"))
        let rare = try Bench.measure(count: searches, warmup: 50, search("id\(entries / 2)"))

        let table = [
            "Measured \(ISO8601DateFormatter().string(from: Date())) by `agentos-bench memory` (release build) on: "
                + Machine.description + ".",
            "",
            "| through the kernel (top 10) | 1,000 entries, median | \(entries) entries, median | p99 at \(entries) |",
            "|---|---:|---:|---:|",
            "| `mem search` of a word in 1 entry | \(Bench.format(smallRare.median)) | \(Bench.format(rare.median)) | \(Bench.format(rare.p99)) |",
            "| `mem search` of a word in 1% of entries | \(Bench.format(smallTopic.median)) | \(Bench.format(topic.median)) | \(Bench.format(topic.p99)) |",
            "| `mem search` of two words, one of them in nearly every entry (worst case: every match is scored) | \(Bench.format(smallSearch.median)) | \(Bench.format(largeSearch.median)) | \(Bench.format(largeSearch.p99)) |",
            "| `mem get` of a key (the baseline) | \(Bench.format(smallGet.median)) | \(Bench.format(largeGet.median)) | \(Bench.format(largeGet.p99)) |",
            "",
            "| ratio (medians) | value |",
            "|---|---:|",
            "| 1-entry word: \(entries) / 1,000 entries | \(String(format: "%.2f×", rare.median / smallRare.median)) |",
            "| 1%-word: \(entries) / 1,000 entries | \(String(format: "%.2f×", topic.median / smallTopic.median)) |",
            "| common words: \(entries) / 1,000 entries | \(String(format: "%.2f×", largeSearch.median / smallSearch.median)) |",
            "| 1%-word search / key lookup, at \(entries) | \(String(format: "%.2f×", topic.median / largeGet.median)) |",
        ].joined(separator: "\n")
        print(table)
        if let updateReadme {
            try Bench.replaceSection(in: updateReadme, marker: "memory", with: table)
            FileHandle.standardError.write(Data("updated \(updateReadme)\n".utf8))
        }
    }
}
