import Foundation
import ModelProviderFake
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The fake model provider itself, over plain HTTP: the shapes our codecs are
/// tested against must be the documented ones.
@Suite struct FakeProviderTests {
    struct Reply {
        var status: Int
        var response: HTTPURLResponse
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { response.value(forHTTPHeaderField: name) }
    }

    static let anthropicHeaders = ["x-api-key": "test-key", "anthropic-version": "2023-06-01"]
    static let openAIHeaders = ["Authorization": "Bearer test-key"]

    func post(_ fake: FakeModelProvider, _ path: String, headers: [String: String], json: String) async throws -> Reply {
        let url = try #require(URL(string: fake.baseURL + path))
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = Data(json.utf8)
        let session = URLSession(configuration: .ephemeral)
        defer { session.finishTasksAndInvalidate() }
        let (data, response) = try await session.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        return Reply(status: http.statusCode, response: http, body: data)
    }

    /// Runs body with a fresh fake, shut down afterwards whatever happens.
    func withFake(_ body: (FakeModelProvider) async throws -> Void) async throws {
        let fake = try await FakeModelProvider.start()
        do {
            try await body(fake)
        } catch {
            try? await fake.shutdown()
            throw error
        }
        try await fake.shutdown()
    }

    @Test func anthropicEcho() async throws {
        try await withFake { fake in
            let reply = try await post(fake, "/v1/messages", headers: Self.anthropicHeaders, json: """
                {"model":"echo","max_tokens":100,"system":"be brief",
                 "messages":[{"role":"user","content":"first question"},{"role":"assistant","content":"ok"},
                             {"role":"user","content":[{"type":"text","text":"hello there"}]}]}
                """)
            #expect(reply.status == 200)
            #expect(reply.header("content-type") == "application/json")
            let body = reply.json
            #expect((body["id"] as? String)?.hasPrefix("msg_") == true)
            #expect(body["type"] as? String == "message")
            #expect(body["role"] as? String == "assistant")
            #expect(body["model"] as? String == "echo")
            #expect(body["stop_reason"] as? String == "end_turn")
            #expect(body["stop_sequence"] is NSNull)
            let content = try #require(body["content"] as? [[String: Any]])
            #expect(content.count == 1)
            #expect(content.first?["type"] as? String == "text")
            #expect(content.first?["text"] as? String == "echo: hello there")
            let usage = try #require(body["usage"] as? [String: Any])
            #expect(usage["input_tokens"] as? Int == 7)   // be brief / first question / ok / hello there
            #expect(usage["output_tokens"] as? Int == 3)

            let recorded = fake.requests()
            #expect(recorded.count == 1)
            #expect(recorded.first?.path == "/v1/messages")
            #expect(recorded.first?.header("anthropic-version") == "2023-06-01")
            #expect(recorded.first?.json?["model"] as? String == "echo")
        }
    }

    @Test func openAIEcho() async throws {
        try await withFake { fake in
            let reply = try await post(fake, "/v1/chat/completions", headers: Self.openAIHeaders, json: """
                {"model":"echo","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there"}]}
                """)
            #expect(reply.status == 200)
            let body = reply.json
            #expect((body["id"] as? String)?.hasPrefix("chatcmpl-") == true)
            #expect(body["object"] as? String == "chat.completion")
            #expect(body["created"] is Int)
            #expect(body["model"] as? String == "echo")
            let choice = try #require((body["choices"] as? [[String: Any]])?.first)
            #expect(choice["index"] as? Int == 0)
            #expect(choice["logprobs"] is NSNull)
            #expect(choice["finish_reason"] as? String == "stop")
            let message = try #require(choice["message"] as? [String: Any])
            #expect(message["role"] as? String == "assistant")
            #expect(message["content"] as? String == "echo: hello there")
            #expect(message["tool_calls"] == nil)
            let usage = try #require(body["usage"] as? [String: Any])
            #expect(usage["prompt_tokens"] as? Int == 4)
            #expect(usage["completion_tokens"] as? Int == 3)
            #expect(usage["total_tokens"] as? Int == 7)
        }
    }

    @Test func ollamaEcho() async throws {
        try await withFake { fake in
            let reply = try await post(fake, "/api/chat", headers: [:], json: """
                {"model":"echo","stream":false,"messages":[{"role":"user","content":"hello there"}]}
                """)
            #expect(reply.status == 200)
            let body = reply.json
            #expect(body["model"] as? String == "echo")
            #expect((body["created_at"] as? String)?.hasSuffix("Z") == true)
            #expect(body["done"] as? Bool == true)
            #expect(body["done_reason"] as? String == "stop")
            let message = try #require(body["message"] as? [String: Any])
            #expect(message["role"] as? String == "assistant")
            #expect(message["content"] as? String == "echo: hello there")
            #expect(body["prompt_eval_count"] as? Int == 2)
            #expect(body["eval_count"] as? Int == 3)
            for field in ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"] {
                #expect(body[field] is Int, "\(field)")
            }
        }
    }

    @Test func ollamaStreamsLinesEndingInDone() async throws {
        try await withFake { fake in
            let reply = try await post(fake, "/api/chat", headers: [:], json: """
                {"model":"echo","messages":[{"role":"user","content":"hello there"}]}
                """)
            #expect(reply.status == 200)
            #expect(reply.header("content-type") == "application/x-ndjson")
            let lines = reply.text.split(separator: "\n").map {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) ?? [:]
            }
            #expect(lines.count >= 2)
            let pieces = lines.dropLast().compactMap { ($0["message"] as? [String: Any])?["content"] as? String }
            #expect(pieces.joined() == "echo: hello there")
            #expect(lines.dropLast().allSatisfy { $0["done"] as? Bool == false })
            #expect(lines.last?["done"] as? Bool == true)
            #expect(lines.last?["eval_count"] as? Int == 3)
        }
    }

    @Test func wrongKeysAre401() async throws {
        try await withFake { fake in
            let anthropic = try await post(fake, "/v1/messages", headers: ["x-api-key": "wrong", "anthropic-version": "2023-06-01"],
                                           json: #"{"model":"echo","max_tokens":10,"messages":[]}"#)
            #expect(anthropic.status == 401)
            #expect(anthropic.json["type"] as? String == "error")
            let anthropicError = anthropic.json["error"] as? [String: Any]
            #expect(anthropicError?["type"] as? String == "authentication_error")
            #expect(anthropicError?["message"] as? String == "invalid x-api-key")

            let openAI = try await post(fake, "/v1/chat/completions", headers: [:], json: #"{"model":"echo","messages":[]}"#)
            #expect(openAI.status == 401)
            let openAIError = openAI.json["error"] as? [String: Any]
            #expect(openAIError?["message"] as? String == "Incorrect API key provided")
            #expect(openAIError?["type"] as? String == "invalid_request_error")
            #expect(openAIError?["param"] is NSNull)
            #expect(openAIError?["code"] as? String == "invalid_api_key")
        }
    }

    @Test func anthropicValidatesHeadersAndBody() async throws {
        try await withFake { fake in
            let noVersion = try await post(fake, "/v1/messages", headers: ["x-api-key": "test-key"],
                                           json: #"{"model":"echo","max_tokens":10,"messages":[]}"#)
            #expect(noVersion.status == 400)
            #expect((noVersion.json["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")
            let noMaxTokens = try await post(fake, "/v1/messages", headers: Self.anthropicHeaders, json: #"{"model":"echo","messages":[]}"#)
            #expect(noMaxTokens.status == 400)
            let unknown = try await post(fake, "/v1/messages", headers: Self.anthropicHeaders,
                                         json: #"{"model":"nope","max_tokens":10,"messages":[]}"#)
            #expect(unknown.status == 404)
            #expect((unknown.json["error"] as? [String: Any])?["message"] as? String == "model: nope")
            let elsewhere = try await post(fake, "/v2/other", headers: [:], json: "{}")
            #expect(elsewhere.status == 404)
        }
    }

    @Test func rateLimitThenSuccess() async throws {
        try await withFake { fake in
            let request = #"{"model":"rate-limit-1","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#
            let first = try await post(fake, "/v1/messages", headers: Self.anthropicHeaders, json: request)
            #expect(first.status == 429)
            #expect(first.header("retry-after") == "1")
            #expect((first.json["error"] as? [String: Any])?["type"] as? String == "rate_limit_error")
            let second = try await post(fake, "/v1/messages", headers: Self.anthropicHeaders, json: request)
            #expect(second.status == 200)
            #expect(((second.json["content"] as? [[String: Any]])?.first?["text"]) as? String == "echo: hi")

            let openAI = try await post(fake, "/v1/chat/completions", headers: Self.openAIHeaders,
                                        json: #"{"model":"rate-limit-2","messages":[{"role":"user","content":"hi"}]}"#)
            #expect(openAI.status == 429)
            #expect(openAI.header("retry-after") == "1")
            #expect((openAI.json["error"] as? [String: Any])?["code"] as? String == "rate_limit_exceeded")
        }
    }

    @Test func anthropicStream() async throws {
        try await withFake { fake in
            let reply = try await post(fake, "/v1/messages", headers: Self.anthropicHeaders, json: """
                {"model":"echo","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello there"}]}
                """)
            #expect(reply.status == 200)
            #expect(reply.header("content-type") == "text/event-stream")
            let text = reply.text
            #expect(text.hasPrefix("event: message_start\ndata: {"))
            #expect(text.contains("event: ping\n"))
            #expect(text.contains("event: content_block_delta\n"))
            #expect(text.contains(#""stop_reason":"end_turn""#))
            #expect(text.hasSuffix("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
            // The text deltas put back together are the answer.
            let deltas = text.components(separatedBy: "\n\n").compactMap { event -> String? in
                guard event.hasPrefix("event: content_block_delta\ndata: "),
                      let data = event.split(separator: "\n").last?.dropFirst("data: ".count),
                      let object = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]
                else { return nil }
                return (object["delta"] as? [String: Any])?["text"] as? String
            }
            #expect(deltas.count == 3)
            #expect(deltas.joined() == "echo: hello there")
        }
    }

    @Test func openAIScriptCallsThenAnswers() async throws {
        try await withFake { fake in
            let script = #"{\"calls\":[{\"tool\":\"file.read\",\"arguments\":{\"path\":\"/a\"}}],\"answer\":\"done\"}"#
            let call = try await post(fake, "/v1/chat/completions", headers: Self.openAIHeaders,
                                      json: #"{"model":"script","messages":[{"role":"user","content":"\#(script)"}]}"#)
            #expect(call.status == 200)
            let choice = try #require((call.json["choices"] as? [[String: Any]])?.first)
            #expect(choice["finish_reason"] as? String == "tool_calls")
            let message = try #require(choice["message"] as? [String: Any])
            #expect(message["content"] is NSNull)
            let toolCall = try #require((message["tool_calls"] as? [[String: Any]])?.first)
            #expect(toolCall["id"] as? String == "call_0")
            #expect(toolCall["type"] as? String == "function")
            let function = try #require(toolCall["function"] as? [String: Any])
            #expect(function["name"] as? String == "file.read")
            #expect(function["arguments"] as? String == #"{"path":"/a"}"#)

            let answer = try await post(fake, "/v1/chat/completions", headers: Self.openAIHeaders, json: """
                {"model":"script","messages":[{"role":"user","content":"\(script)"},
                 {"role":"assistant","content":null,"tool_calls":[{"id":"call_0","type":"function",
                  "function":{"name":"file.read","arguments":"{\\"path\\":\\"/a\\"}"}}]},
                 {"role":"tool","tool_call_id":"call_0","content":"contents of a"}]}
                """)
            #expect(answer.status == 200)
            let final = try #require(((answer.json["choices"] as? [[String: Any]])?.first)?["message"] as? [String: Any])
            #expect(final["content"] as? String == "done | contents of a")
        }
    }

    @Test func slowRequestsOverlap() async throws {
        try await withFake { fake in
            let request = #"{"model":"slow-300","stream":false,"messages":[{"role":"user","content":"hi"}]}"#
            async let first = post(fake, "/api/chat", headers: [:], json: request)
            async let second = post(fake, "/api/chat", headers: [:], json: request)
            let replies = try await [first, second]
            #expect(replies.map(\.status) == [200, 200])
            #expect(fake.maximumConcurrent == 2)
        }
    }
}
