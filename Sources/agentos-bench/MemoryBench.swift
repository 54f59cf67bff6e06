import AgentOSClient
import AgentOSProtocol
import ArgumentParser
import Foundation

/// Memory search as memory grows: `mem search` (FTS5, BM25) through the
/// kernel at 10,000, 100,000 and 1,000,000 entries in one agent's memory,
/// against a key lookup (`mem get`) measured in the same run, and the rate
/// of inserts (`mem put`, one call and one transaction each).
struct MemoryBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Memory search latency and insert rate as memory grows, against a key lookup.")

    @Option(help: "Entry counts measured, in order, comma-separated.")
    var sizes = "10000,100000,1000000"

    @Option(help: "Searches measured per case.")
    var searches = 300

    @Option(help: ArgumentHelp("Rewrite the memory section of this README with the results.", valueName: "path"))
    var updateReadme: String?

    struct Stage {
        let entries: Int
        let insertsPerSecond: Double
        let rare: Sample, topic: Sample, common: Sample, phrase: Sample, get: Sample
    }

    func run() throws {
        let counts = sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts == counts.sorted(), counts.allSatisfy({ $0 >= 100 }) else {
            throw ValidationError("--sizes: increasing counts of at least 100, e.g. 10000,100000")
        }
        let work = "/tmp/agentos-bench-memory-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        // A million entries are more than the default quota of one namespace.
        let (kernel, client) = try Bench.startKernel(work: work, arguments: ["--memory-quota", "0"])
        defer { Bench.stopProcess(kernel) }
        var run = Agentos_V1_RunRequest()
        run.name = "rememberer"
        run.argv = ["/bin/sleep", "36000"]
        guard case .run = try client.call(.run(run)) else { throw ValidationError("run failed") }

        // Values of a few words from a small vocabulary: every word is in many entries.
        let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
                     "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
        var generator = SystemRandomNumberGenerator()
        var stored = 0
        func fill(upTo count: Int) throws -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            let first = stored
            var put = Agentos_V1_MemoryRequest()
            put.agent = "rememberer"
            while stored < count {
                put.key = "k\(stored)"
                // 12 common words, a topic shared by 1% of entries, an id of its own.
                put.value = (0..<12).map { _ in words[Int(generator.next() % UInt64(words.count))] }.joined(separator: " ")
                    + " topic\(stored % 100) id\(stored)"
                put.tags = [words[stored % words.count]]
                guard case .memPut = try client.call(.memPut(put)) else { throw ValidationError("put failed") }
                stored += 1
            }
            return Double(stored - first) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        func search(_ query: String) -> () throws -> Void {
            var request = Agentos_V1_MemoryRequest()
            request.agent = "rememberer"
            request.query = query
            request.limit = 10
            return {
                guard case .memSearch(let list) = try client.call(.memSearch(request)), !list.entries.isEmpty else {
                    throw ValidationError("search for \(query) found nothing")
                }
            }
        }
        func get() throws {
            var request = Agentos_V1_MemoryRequest()
            request.agent = "rememberer"
            request.key = "k\(Int(generator.next() % UInt64(stored)))"
            guard case .memGet = try client.call(.memGet(request)) else { throw ValidationError("get failed") }
        }
        var stages: [Stage] = []
        for count in counts {
            let rate = try fill(upTo: count)
            let (common, lookup) = try Bench.measurePair(count: searches, warmup: 30, search("delta kilo"), get)
            let topic = try Bench.measure(count: searches, warmup: 30, search("topic42"))
            let rare = try Bench.measure(count: searches, warmup: 30, search("id\(count / 2)"))
            let phrase = try Bench.measure(count: searches, warmup: 30, search("\"alpha bravo\" topic7*"))
            stages.append(Stage(entries: count, insertsPerSecond: rate, rare: rare, topic: topic, common: common,
                                phrase: phrase, get: lookup))
            FileHandle.standardError.write(Data("memory: \(count) entries measured\n".utf8))
        }

        func row(_ title: String, _ sample: (Stage) -> Sample) -> String {
            "| \(title) | " + stages.map { Bench.format(sample($0).median) + " (p99 " + Bench.format(sample($0).p99) + ")" }
                .joined(separator: " | ") + " |"
        }
        let largest = stages[stages.count - 1]
        let worst = max(largest.rare.median, largest.topic.median, largest.common.median, largest.phrase.median)
        let table = [
            "Measured \(ISO8601DateFormatter().string(from: Date())) by `agentos-bench memory` (release build) on: "
                + Machine.description + ". One agent's long-term memory; each entry 12 words of a 20-word vocabulary, "
                + "a topic word shared by 1% of entries and a word of its own; top 10.",
            "",
            "| through the kernel, median | " + stages.map { "\($0.entries.formatted()) entries" }.joined(separator: " | ") + " |",
            "|---|" + stages.map { _ in "---:" }.joined(separator: "|") + "|",
            row("`mem search` of a word in 1 entry", \.rare),
            row("`mem search` of a word in 1% of entries", \.topic),
            row("`mem search` of two words in nearly every entry", \.common),
            row("`mem search` of a phrase or a prefix (`\"alpha bravo\" topic7*`)", \.phrase),
            row("`mem get` of a key (the baseline)", \.get),
            "| `mem put` rate while filling up to this size (one call, one transaction each) | "
                + stages.map { "\(Int($0.insertsPerSecond).formatted())/s" }.joined(separator: " | ") + " |",
            "",
            "| at \(largest.entries.formatted()) entries | value | target |",
            "|---|---:|---:|",
            "| slowest search kind, median | \(Bench.format(worst)) | ≤ 10 ms at 1,000,000 |",
            "| 1%-word search / key lookup | \(String(format: "%.2f×", largest.topic.median / largest.get.median)) | |",
        ].joined(separator: "\n")
        print(table)
        if let updateReadme {
            try Bench.replaceSection(in: updateReadme, marker: "memory", with: table)
            FileHandle.standardError.write(Data("updated \(updateReadme)\n".utf8))
        }
    }
}
