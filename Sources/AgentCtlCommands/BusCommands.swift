import AgentOSProtocol
import ArgumentParser
import Foundation

/// `agentctl send`: a message into a mailbox.
struct SendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a message to an agent's mailbox; prints the message's id.",
        discussion: """
            TARGET is an agent (id, unique prefix or name) or a policy path POLICY/CHILD: a \
            worker's mailbox is its path's, so a message to a worker that is restarting waits \
            for it. Mailboxes are durable (a message accepted survives kill -9 of the kernel) \
            and bounded (agentd --mailbox-limit; a full one refuses). Delivery is at least \
            once: the recipient acks what it handled; the id lets it drop a repeat.

            Examples:
              agentctl send team/researcher --json '{"task": "read the licenses"}'
              agentctl send worker --text "stop after this batch" --type event
            """)

    @Argument(help: ArgumentHelp("An agent or a policy path POLICY/CHILD.", valueName: "target"))
    var target: String
    @OptionGroup var payload: MessagePayload
    @Option(name: .long, help: ArgumentHelp("message (default), request, response, event or stream.", valueName: "type"))
    var type: String?
    @Option(name: .long, help: ArgumentHelp("Correlation id (a response names its request's; stream chunks their stream's).",
                                            valueName: "id"))
    var correlationID: String?
    @Flag(name: .long, help: "With --type stream: this chunk ends the stream.")
    var end = false
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .customLong("output-json"), help: "Print the answer as JSON.")
    var outputJSON = false

    func run() throws {
        var request = Agentos_V1_SendRequest()
        request.to = target
        payload.fill(&request)
        request.type = type ?? ""
        request.correlationID = correlationID ?? ""
        request.end = end
        guard case .send(let response) = try connection.withKernel({ try $0.call(.send(request)) }) else {
            throw unexpectedResponse("send")
        }
        if outputJSON {
            struct Answer: Encodable { let id: String; let to: String; let depth: UInt32 }
            Output.json(Answer(id: response.id, to: response.to, depth: response.depth))
        } else {
            Output.line(response.id)
        }
    }
}

/// `agentctl mailbox`: what waits for an agent.
struct MailboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mailbox", abstract: "How many messages wait for an agent, since when, and the first of them.")

    @Argument(help: ArgumentHelp("An agent or a policy path POLICY/CHILD.", valueName: "target"))
    var target: String
    @Option(name: .long, help: "Messages to show (default 10).") var limit: UInt32 = 10
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var request = Agentos_V1_MailboxRequest()
        request.to = target
        request.limit = limit
        guard case .mailbox(let info) = try connection.withKernel({ try $0.call(.mailbox(request)) }) else {
            throw unexpectedResponse("mailbox")
        }
        struct Message: Encodable {
            let id: String, from: String, type: String, contentType: String, payload: String, sentAt: String?
            let correlationID: String?, end: Bool?
            enum CodingKeys: String, CodingKey {
                case id, from, type, payload, end
                case contentType = "content_type"
                case sentAt = "sent_at"
                case correlationID = "correlation_id"
            }
        }
        let messages = info.messages.map {
            Message(id: $0.id, from: $0.from, type: $0.type, contentType: $0.contentType,
                    payload: String(decoding: $0.payload, as: UTF8.self), sentAt: Output.timestamp($0.sentAtNs),
                    correlationID: $0.correlationID.isEmpty ? nil : $0.correlationID, end: $0.type == "stream" ? $0.end : nil)
        }
        if output.json {
            struct Info: Encodable { let identity: String; let depth: UInt32; let oldest: String?; let messages: [Message] }
            Output.json(Info(identity: info.identity, depth: info.depth,
                             oldest: info.oldestNs == 0 ? nil : Output.timestamp(info.oldestNs), messages: messages))
            return
        }
        Output.line("\(info.identity): \(info.depth) waiting" + (info.oldestNs == 0 ? "" : ", oldest \(Output.timestamp(info.oldestNs) ?? "")"))
        if !messages.isEmpty {
            Output.table(["ID", "FROM", "TYPE", "PAYLOAD"], messages.map { [$0.id, $0.from, $0.type, String($0.payload.prefix(60))] })
        }
    }
}

/// `agentctl request`: a request, and the response it gets.
struct RequestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Send a request to an agent and print its response's payload.",
        discussion: """
            The request goes into TARGET's mailbox (type request); the recipient answers with a \
            message of type response whose correlation id is the request's id. Without an answer \
            within --timeout the request is withdrawn (if it was not received yet) and this fails.

            Example:
              agentctl request team/researcher --json '{"question": "status?"}' --timeout 5s
            """)

    @Argument(help: ArgumentHelp("An agent or a policy path POLICY/CHILD.", valueName: "target"))
    var target: String
    @OptionGroup var payload: MessagePayload
    @Option(name: .long, help: ArgumentHelp("How long to wait for the response (default 30s).", valueName: "duration"))
    var timeout: String = "30s"
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .customLong("output-json"), help: "Print the whole response message as JSON.")
    var outputJSON = false

    func run() throws {
        var request = Agentos_V1_BusRequest()
        request.message.to = target
        payload.fill(&request.message)
        do {
            request.timeoutMs = UInt64(max(1, try Units.milliseconds(timeout)))
        } catch {
            throw ValidationError("--timeout \(timeout): give a duration like 5s")
        }
        guard case .request(let response) = try connection.withKernel({ try $0.call(.request(request)) }) else {
            throw unexpectedResponse("request")
        }
        if outputJSON {
            struct Answer: Encodable { let id: String; let from: String; let correlation_id: String; let payload: String }
            Output.json(Answer(id: response.id, from: response.from, correlation_id: response.correlationID,
                               payload: String(decoding: response.payload, as: UTF8.self)))
        } else {
            Output.line(String(decoding: response.payload, as: UTF8.self))
        }
    }
}

/// A message's payload on the command line: shared by send and request.
struct MessagePayload: ParsableArguments {
    @Option(name: .customLong("json"), help: ArgumentHelp("The payload: a JSON document (checked).", valueName: "json"))
    var json: String?
    @Option(name: .long, help: ArgumentHelp("The payload: text (content type text/plain).", valueName: "text"))
    var text: String?

    func validate() throws {
        guard (json == nil) != (text == nil) else { throw ValidationError("give the payload with --json or --text (one of them)") }
        if let json, (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) == nil {
            throw ValidationError("--json: not a JSON document")
        }
    }

    var bytes: Data { Data((json ?? text ?? "").utf8) }
    var contentType: String { json != nil ? "application/json" : "text/plain; charset=utf-8" }

    func fill(_ message: inout Agentos_V1_SendRequest) {
        message.payload = bytes
        message.contentType = contentType
    }
}
