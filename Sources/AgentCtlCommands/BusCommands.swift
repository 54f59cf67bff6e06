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
    @Option(name: .customLong("json"), help: ArgumentHelp("The payload: a JSON document (checked).", valueName: "json"))
    var payloadJSON: String?
    @Option(name: .long, help: ArgumentHelp("The payload: text (content type text/plain).", valueName: "text"))
    var text: String?
    @Option(name: .long, help: ArgumentHelp("message (default), request, response or event.", valueName: "type"))
    var type: String?
    @Option(name: .long, help: ArgumentHelp("Correlation id (a response names its request's).", valueName: "id"))
    var correlationID: String?
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .customLong("output-json"), help: "Print the answer as JSON.")
    var outputJSON = false

    func validate() throws {
        guard (payloadJSON == nil) != (text == nil) else { throw ValidationError("give the payload with --json or --text (one of them)") }
        if let payloadJSON, (try? JSONSerialization.jsonObject(with: Data(payloadJSON.utf8), options: [.fragmentsAllowed])) == nil {
            throw ValidationError("--json: not a JSON document")
        }
    }

    func run() throws {
        var request = Agentos_V1_SendRequest()
        request.to = target
        request.payload = Data((payloadJSON ?? text ?? "").utf8)
        request.contentType = payloadJSON != nil ? "application/json" : "text/plain; charset=utf-8"
        request.type = type ?? ""
        request.correlationID = correlationID ?? ""
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
            enum CodingKeys: String, CodingKey {
                case id, from, type, payload
                case contentType = "content_type"
                case sentAt = "sent_at"
            }
        }
        let messages = info.messages.map {
            Message(id: $0.id, from: $0.from, type: $0.type, contentType: $0.contentType,
                    payload: String(decoding: $0.payload, as: UTF8.self), sentAt: Output.timestamp($0.sentAtNs))
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
