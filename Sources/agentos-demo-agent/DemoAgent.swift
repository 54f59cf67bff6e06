import AgentOSClient
import AgentOSProtocol
import Foundation

/// A minimal agent that speaks the protocol: it says hello on the socket the
/// kernel gave it (AGENTOS_FD), prints what it learned about itself, asks the
/// kernel for its status, then works (prints a line per tick) until told to
/// stop. The quick-start demo and the integration tests run it.
///
/// Under a supervisor (AGENTOS_CHILD_PATH set) it also resumes from its last
/// checkpoint, says it is ready, and saves a checkpoint at every tick.
/// It lists the capabilities it holds, and asks the kernel about each ask in
/// AGENTOS_DEMO_ASK ("ACTION KIND/RESOURCE", several joined by ";"). It calls
/// each tool in AGENTOS_DEMO_TOOLS (lines of "TOOL {JSON arguments}" or
/// "TOOL @FILE" with the arguments in FILE),
/// AGENTOS_DEMO_TOOL_REPEAT times (default 1), printing one JSON line per
/// call: {"tool", "ok", "is_error", "result" or "error", "us" (round trip)}.
/// AGENTOS_DEMO_MEMORY: lines of "put SCOPE KEY VALUE...", "get SCOPE KEY" or
/// "search SCOPE WORDS...", each answered on a "memory-result {json}" line.
/// AGENTOS_DEMO_SEND: lines of "TARGET TEXT", each sent as a message
/// ("send-result {json}"); AGENTOS_DEMO_RECEIVE=N: it waits for N messages
/// from its mailbox, prints each ("message {json}"), answers each request
/// ("echo: PAYLOAD") and acks them.
@main
struct DemoAgent {
    static func main() {
        let environment = ProcessInfo.processInfo.environment
        let arguments = CommandLine.arguments.dropFirst()
        let ticks = arguments.first.flatMap(Int.init) ?? 3
        let interval = arguments.dropFirst().first.flatMap(Double.init) ?? 0.2

        guard let fdText = environment[AgentEnvironment.socketFD], let fd = Int32(fdText) else {
            print("not started by agentd: \(AgentEnvironment.socketFD) is not set; running without kernel services")
            work(ticks: ticks, interval: interval)
            return
        }
        let kernel: KernelClient
        var first = 1
        do {
            kernel = try KernelClient.adopt(fd: fd, client: "agentos-demo-agent \(AgentOSVersion.release)")
            let me = kernel.welcome.agent
            print("hello from \(me.name) (\(me.id)): kernel \(kernel.welcome.kernelVersion), protocol \(kernel.welcome.version)")
            if case .status(let status) = try kernel.call(.status(.init())) {
                print("kernel pid \(status.pid) has \(status.agents.running) running agent(s)")
            }
            if case .myCapabilities(let held) = try kernel.call(.myCapabilities(.init())), !held.capabilities.isEmpty {
                print("holds \(held.capabilities.map { "\($0.id) \($0.uri)" }.joined(separator: "; "))")
            }
            for ask in (environment["AGENTOS_DEMO_ASK"] ?? "").split(separator: ";") {
                let parts = ask.split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                var check = Agentos_V1_CapCheckRequest()
                check.action = parts[0]
                check.resource = parts[1]
                if case .capCheck(let answer) = try kernel.call(.capCheck(check)) {
                    print("\(ask): " + (answer.allowed ? "allowed by \(answer.grantID)"
                                                         : "denied (\(answer.reasons.joined(separator: "; ")))"))
                }
            }
            let repeats = environment["AGENTOS_DEMO_TOOL_REPEAT"].flatMap(Int.init) ?? 1
            for line in (environment["AGENTOS_DEMO_TOOLS"] ?? "").split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                guard let tool = parts.first else { continue }
                // "@FILE": the arguments are in that file (too big for an environment variable).
                var arguments = parts.count > 1 ? parts[1] : "{}"
                if arguments.hasPrefix("@"), let data = FileManager.default.contents(atPath: String(arguments.dropFirst())) {
                    arguments = String(decoding: data, as: UTF8.self)
                }
                for _ in 0..<max(1, repeats) { callTool(kernel, tool, arguments) }
            }
            for line in (environment["AGENTOS_DEMO_MEMORY"] ?? "").split(separator: "\n") {
                useMemory(kernel, line.split(separator: " ", maxSplits: 3).map(String.init))
            }
            for line in (environment["AGENTOS_DEMO_SEND"] ?? "").split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                var send = Agentos_V1_SendRequest()
                send.to = parts[0]
                send.payload = Data(parts[1].utf8)
                send.contentType = "text/plain"
                var report: [String: Any] = ["to": parts[0]]
                do {
                    if case .send(let answer) = try kernel.call(.send(send)) {
                        report["ok"] = true
                        report["id"] = answer.id
                    }
                } catch {
                    report["ok"] = false
                    report["error"] = "\(error)"
                }
                if let data = try? JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]) {
                    print("send-result " + String(decoding: data, as: UTF8.self))
                }
            }
            if let wanted = environment["AGENTOS_DEMO_RECEIVE"].flatMap(Int.init), wanted > 0 {
                var received: [String] = []
                var requests: [(String, String, String)] = []
                try kernel.stream(.receive(.init())) { item in
                    guard case .message(let message) = item else { return true }
                    // At least once: a repeat (same id) is dropped.
                    if !received.contains(message.id) {
                        received.append(message.id)
                        if message.type == "request" {
                            requests.append((message.id, message.from, String(decoding: message.payload, as: UTF8.self)))
                        }
                        let report: [String: Any] = ["id": message.id, "from": message.from, "type": message.type,
                                                     "payload": String(decoding: message.payload, as: UTF8.self)]
                        if let data = try? JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]) {
                            print("message " + String(decoding: data, as: UTF8.self))
                            fflush(nil)
                        }
                    }
                    return received.count < wanted
                }
                // Requests get their response (after the stream: one reader per socket).
                for (id, from, payload) in requests {
                    var reply = Agentos_V1_SendRequest()
                    reply.to = from
                    reply.type = "response"
                    reply.correlationID = id
                    reply.payload = Data(("echo: " + payload).utf8)
                    reply.contentType = "text/plain"
                    _ = try kernel.call(.send(reply))
                }
                var ack = Agentos_V1_AckRequest()
                ack.ids = received
                _ = try kernel.call(.ack(ack))
            }
            if let path = environment["AGENTOS_CHILD_PATH"] {
                if case .loadCheckpoint(let checkpoint) = try kernel.call(.loadCheckpoint(.init())),
                   checkpoint.savedAtNs != 0, let last = Int(String(decoding: checkpoint.data, as: UTF8.self)) {
                    first = last + 1
                    print("\(path): resumed at tick \(first) from the checkpoint of agent \(checkpoint.agentID)")
                }
                _ = try kernel.call(.ready(.init()))
            }
        } catch {
            FileHandle.standardError.write(Data("demo agent: \(error)\n".utf8))
            exit(2)
        }
        let supervised = environment["AGENTOS_CHILD_PATH"] != nil
        work(from: first, ticks: ticks, interval: interval) { tick in
            guard supervised else { return }
            var save = Agentos_V1_SaveCheckpointRequest()
            save.data = Data(String(tick).utf8)
            _ = try? kernel.call(.saveCheckpoint(save))
        }
    }

    /// One memory call ("put SCOPE KEY VALUE", "get SCOPE KEY", "search SCOPE WORDS"), reported as a JSON line.
    static func useMemory(_ kernel: KernelClient, _ words: [String]) {
        guard words.count >= 3 else { return }
        var request = Agentos_V1_MemoryRequest()
        request.scope = words[1]
        var report: [String: Any] = ["op": words[0]]
        do {
            let response: KernelResponse.OneOf_Result
            switch words[0] {
            case "put":
                request.key = words[2]
                request.value = words.count > 3 ? words[3] : ""
                response = try kernel.call(.memPut(request))
            case "get":
                request.key = words[2]
                response = try kernel.call(.memGet(request))
            default:
                request.query = words.dropFirst(2).joined(separator: " ")
                response = try kernel.call(.memSearch(request))
            }
            switch response {
            case .memPut(let list), .memGet(let list), .memSearch(let list):
                report["ok"] = true
                report["entries"] = list.entries.map { ["key": $0.key, "value": $0.value] }
            default:
                report["ok"] = false
            }
        } catch {
            report["ok"] = false
            report["error"] = "\(error)"
        }
        if let data = try? JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]) {
            print("memory-result " + String(decoding: data, as: UTF8.self))
            fflush(nil)
        }
    }

    /// One tool call, reported as a JSON line on stdout.
    static func callTool(_ kernel: KernelClient, _ tool: String, _ arguments: String) {
        var request = Agentos_V1_ToolCallRequest()
        request.tool = tool
        request.argumentsJson = arguments
        let start = DispatchTime.now().uptimeNanoseconds
        var report: [String: Any] = ["tool": tool]
        do {
            let response = try kernel.call(.toolCall(request))
            report["us"] = (DispatchTime.now().uptimeNanoseconds - start) / 1_000
            if case .toolCall(let answer) = response {
                report["ok"] = true
                report["is_error"] = answer.isError
                report["call"] = answer.callID
                report["result"] = (try? JSONSerialization.jsonObject(with: Data(answer.resultJson.utf8))) ?? answer.resultJson
            }
        } catch {
            report["ok"] = false
            report["error"] = "\(error)"
        }
        if let data = try? JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]) {
            print("tool-result " + String(decoding: data, as: UTF8.self))
            fflush(nil)
        }
    }

    static func work(from first: Int = 1, ticks: Int, interval: Double, each: (Int) -> Void = { _ in }) {
        for tick in first...max(first, ticks) {
            print("tick \(tick)/\(ticks)")
            fflush(nil)
            each(tick)
            Thread.sleep(forTimeInterval: interval)
        }
        print("done")
    }
}
