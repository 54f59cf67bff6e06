import AgentKit
import Foundation

/// The Swift half of the example team (Policies/examples/duo.yaml): it hands
/// work items to the Python writer (`duo/writer`) as requests, reads each
/// result back from the memory namespace they share, and saves a checkpoint
/// after every item, so a restarted planner goes on where it stopped. When
/// all are done it searches the shared memory and announces it on a topic.
///
/// Settings (environment): PLANNER_ITEMS (default 6), PLANNER_PAUSE_MS
/// between items (default 300), PLANNER_WRITER (default duo/writer).
@main
struct Planner {
    struct Progress: Codable {
        var next = 1
        var words = 0
    }

    struct Result: Decodable {
        let item: Int
        let summary: String
        let words: Int
    }

    static let texts = [
        "agents that crash are restarted by their supervisor",
        "messages wait in a durable mailbox while the writer restarts",
        "every tool call is checked against a capability and audited",
        "memory is searched with the full text index of the state store",
        "the kernel keeps the model keys and the agents never see them",
        "a checkpoint lets a restarted agent resume where it stopped",
    ]

    static func main() async {
        let environment = ProcessInfo.processInfo.environment
        let items = environment["PLANNER_ITEMS"].flatMap(Int.init) ?? 6
        let pause = environment["PLANNER_PAUSE_MS"].flatMap(Int.init) ?? 300
        let writer = environment["PLANNER_WRITER"] ?? "duo/writer"
        do {
            let agent = try Agent.connect()
            // Its work resumes on the thread that reads the kernel's answers.
            try await withTaskExecutorPreference(agent.executor) {
                try await work(agent, items: items, pause: pause, writer: writer)
            }
        } catch {
            FileHandle.standardError.write(Data("planner: \(error)\n".utf8))
            exit(1)
        }
    }

    static func work(_ agent: Agent, items: Int, pause: Int, writer: String) async throws {
        var progress = try await agent.loadCheckpoint(as: Progress.self) ?? Progress()
        if progress.next > 1 { say("resumed from its checkpoint at item \(progress.next)") }
        try await agent.ready()
        while progress.next <= items {
            let item = progress.next
            let text = texts[(item - 1) % texts.count]
            let reply = try await agent.request(writer, .json(["item": "\(item)", "text": text]), timeout: .seconds(120))
            let result = try reply.decode(Result.self)
            let stored = try await agent.memory.get("item-\(item)", scope: .shared("duo"))
            say("item \(item): \(result.words) words, \"\(result.summary)\""
                + (stored == nil ? " (not in shared memory!)" : " (in shared memory)"))
            progress.next = item + 1
            progress.words += result.words
            try await agent.saveCheckpoint(json: progress)
            try await Task.sleep(for: .milliseconds(pause))
        }
        let found = try await agent.memory.search("MAILBOX OR CHECKPOINT", scope: .shared("duo"), limit: 10)
        say("all \(items) items done, \(progress.words) words; shared memory search found \(found.map(\.key).sorted())")
        let reached = try await agent.publish("duo.done", .json(["items": items, "words": progress.words]))
        say("announced on duo.done (\(reached) subscriber(s))")
    }

    static func say(_ line: String) {
        print("planner: " + line)
        fflush(nil)
    }
}
