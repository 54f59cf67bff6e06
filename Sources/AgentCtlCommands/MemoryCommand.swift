import AgentOSProtocol
import ArgumentParser
import Foundation

/// `agentctl mem ...`: agents' memory.
struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mem",
        abstract: "Read and write agents' memory, and shared memory.",
        discussion: """
            TARGET is an agent (id, unique prefix or name) or shared/NAME, a namespace agents \
            share (each agent's use checked against capability://memory/shared/NAME). An agent's \
            scopes: long-term (the default; its policy path's or name's, across runs and kernel \
            restarts), working (a policy worker's, across its restarts until the policy is \
            deleted), context (this run's; gone when it ends). Search ranks values and tags by \
            SQLite FTS5's BM25.

            Examples:
              agentctl mem put researcher topic "licenses of GPL family" --tag legal --tag todo
              agentctl mem get researcher topic
              agentctl mem search researcher "gpl licenses"
              agentctl mem ls researcher --scope working
              agentctl mem put shared/team plan "ship on friday" --ttl 7d
              agentctl mem rm researcher topic
            """,
        subcommands: [MemPutCommand.self, MemGetCommand.self, MemSearchCommand.self, MemListCommand.self,
                      MemRemoveCommand.self])
}

/// Whose memory, and which scope: shared by every `mem` subcommand.
struct MemoryTarget: ParsableArguments {
    @Argument(help: ArgumentHelp("An agent (id, unique prefix or name), or shared/NAME.", valueName: "target"))
    var target: String

    @Option(name: .long, help: ArgumentHelp("An agent's scope: long-term (default), working or context.", valueName: "scope"))
    var scope: String?

    func request() throws -> Agentos_V1_MemoryRequest {
        var request = Agentos_V1_MemoryRequest()
        if target.hasPrefix("shared/") {
            guard scope == nil else { throw ValidationError("--scope is for an agent's memory, not shared/NAME") }
            request.scope = target
        } else {
            request.agent = target
            request.scope = scope ?? ""
        }
        return request
    }
}

struct MemPutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Store a value under a key (replacing one there).")

    @OptionGroup var target: MemoryTarget
    @Argument(help: "The key.") var key: String
    @Argument(help: "The value (UTF-8, at most 64K).") var value: String
    @Option(name: .customLong("tag"), help: ArgumentHelp("A word searched with the value (repeatable).", valueName: "word"))
    var tags: [String] = []
    @Option(name: .long, help: ArgumentHelp("Forget it after this long, e.g. 1h or 7d.", valueName: "duration"))
    var ttl: String?
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = try target.request()
        request.key = key
        request.value = value
        request.tags = tags
        if let ttl {
            do {
                request.ttlMs = UInt64(max(1, try Units.milliseconds(ttl)))
            } catch {
                throw ValidationError("--ttl \(ttl): give a duration like 30s, 1h or 7d")
            }
        }
        guard case .memPut(let list) = try connection.withKernel({ try $0.call(.memPut(request)) }) else {
            throw unexpectedResponse("mem put")
        }
        MemoryOutput.show(list, json: output.json, keysOnly: true)
    }
}

struct MemGetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Print the value under a key.")

    @OptionGroup var target: MemoryTarget
    @Argument(help: "The key.") var key: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = try target.request()
        request.key = key
        guard case .memGet(let list) = try connection.withKernel({ try $0.call(.memGet(request)) }) else {
            throw unexpectedResponse("mem get")
        }
        if output.json { MemoryOutput.show(list, json: true) } else { list.entries.forEach { Output.line($0.value) } }
    }
}

struct MemSearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "search",
                                                    abstract: "Entries whose value or tags hold any of the words, best first.")

    @OptionGroup var target: MemoryTarget
    @Argument(help: "Words to look for.") var query: String
    @Option(name: .long, help: "At most this many (default 20).") var limit: UInt32 = 20
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = try target.request()
        request.query = query
        request.limit = limit
        guard case .memSearch(let list) = try connection.withKernel({ try $0.call(.memSearch(request)) }) else {
            throw unexpectedResponse("mem search")
        }
        MemoryOutput.show(list, json: output.json, scores: true)
    }
}

struct MemListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "Entries by key.")

    @OptionGroup var target: MemoryTarget
    @Option(name: .long, help: "At most this many (default 20).") var limit: UInt32 = 20
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = try target.request()
        request.limit = limit
        guard case .memList(let list) = try connection.withKernel({ try $0.call(.memList(request)) }) else {
            throw unexpectedResponse("mem ls")
        }
        MemoryOutput.show(list, json: output.json)
    }
}

struct MemRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a key.")

    @OptionGroup var target: MemoryTarget
    @Argument(help: "The key.") var key: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = try target.request()
        request.key = key
        guard case .memDelete(let list) = try connection.withKernel({ try $0.call(.memDelete(request)) }) else {
            throw unexpectedResponse("mem rm")
        }
        MemoryOutput.show(list, json: output.json, keysOnly: true)
    }
}

enum MemoryOutput {
    struct Entry: Encodable {
        let key: String
        let value: String
        let tags: [String]
        let scope: String
        let updatedAt: String?
        let expiresAt: String?
        let score: Double?

        enum CodingKeys: String, CodingKey {
            case key, value, tags, scope, score
            case updatedAt = "updated_at"
            case expiresAt = "expires_at"
        }
    }

    static func show(_ list: Agentos_V1_MemoryList, json: Bool, keysOnly: Bool = false, scores: Bool = false) {
        if json {
            Output.json(list.entries.map {
                Entry(key: $0.key, value: $0.value, tags: $0.tags, scope: $0.scope, updatedAt: Output.timestamp($0.updatedAtNs),
                      expiresAt: $0.expiresAtNs == 0 ? nil : Output.timestamp($0.expiresAtNs), score: scores ? $0.score : nil)
            })
            return
        }
        if keysOnly {
            list.entries.forEach { Output.line($0.key) }
            return
        }
        let header = (scores ? ["SCORE"] : []) + ["KEY", "VALUE", "TAGS", "UPDATED"]
        Output.table(header, list.entries.map { entry in
            let value = entry.value.replacingOccurrences(of: "\n", with: " ")
            return (scores ? [String(format: "%.3g", entry.score)] : [])
                + [entry.key, value.count > 60 ? String(value.prefix(57)) + "..." : value, entry.tags.joined(separator: " "),
                   Output.timestamp(entry.updatedAtNs) ?? "-"]
        })
    }
}
