import AgentOSProtocol
import ArgumentParser
import Foundation

/// `agentctl publish`: an event to a topic's subscribers.
struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish an event to a topic; prints how many subscriptions it reached.",
        discussion: """
            A topic is segments joined by '.', e.g. news.sports. Events are not stored: they \
            reach the subscriptions open when they are published (agentctl subscribe, or agents \
            holding capability://topic/PATTERN?action=subscribe). For what must not be missed, \
            use agentctl send: mailboxes are durable.

            Example:
              agentctl publish builds.done --json '{"commit": "4f2a", "ok": true}'
            """)

    @Argument(help: ArgumentHelp("The topic, e.g. news.sports.", valueName: "topic"))
    var topic: String
    @OptionGroup var payload: MessagePayload
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .customLong("output-json"), help: "Print the answer as JSON.")
    var outputJSON = false

    func run() throws {
        var request = Agentos_V1_PublishRequest()
        request.topic = topic
        request.payload = payload.bytes
        request.contentType = payload.contentType
        guard case .publish(let response) = try connection.withKernel({ try $0.call(.publish(request)) }) else {
            throw unexpectedResponse("publish")
        }
        if outputJSON {
            struct Answer: Encodable { let id: String; let subscribers: UInt32 }
            Output.json(Answer(id: response.id, subscribers: response.subscribers))
        } else {
            Output.line("\(response.id) reached \(response.subscribers) subscription(s)")
        }
    }
}

/// `agentctl subscribe`: a topic's events as they are published.
struct SubscribeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Print the events published to topics matching a pattern, as they come (until Ctrl-C).",
        discussion: """
            PATTERN is a topic or a glob over its segments: '*' within a segment, '**' for any \
            number of segments (news.* matches news.sports; news.** also news.eu.sports). \
            A subscriber more than 1000 events behind is cut off (slow_consumer) so it cannot \
            stall the bus; subscribe again to go on.

            Examples:
              agentctl subscribe 'builds.*'
              agentctl subscribe '**' --json --count 10
            """)

    @Argument(help: ArgumentHelp("A topic or a pattern, e.g. news.* or '**'.", valueName: "pattern"))
    var pattern: String
    @Option(name: .long, help: ArgumentHelp("Stop after this many events.", valueName: "n"))
    var count: Int?
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        var request = Agentos_V1_SubscribeRequest()
        request.pattern = pattern
        let json = output.json
        var seen = 0
        try connection.withKernel { client in
            try client.stream(.subscribe(request)) { item in
                guard case .message(let event) = item else { return true }
                let payload = String(decoding: event.payload, as: UTF8.self)
                if json {
                    struct Event: Encodable {
                        let id: String, topic: String, from: String, content_type: String, payload: String, sent_at: String?
                    }
                    Output.json(Event(id: event.id, topic: event.to, from: event.from, content_type: event.contentType,
                                      payload: payload, sent_at: Output.timestamp(event.sentAtNs)), pretty: false)
                } else {
                    Output.line("\(Output.timestamp(event.sentAtNs) ?? "")  \(event.to)  \(event.from)  \(payload)")
                }
                seen += 1
                return count.map { seen < $0 } ?? true
            }
        }
    }
}
