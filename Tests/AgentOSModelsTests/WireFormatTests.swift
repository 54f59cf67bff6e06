import AgentOSTools
import Foundation
import Testing
@testable import AgentOSModels

private func json(_ bytes: [UInt8]) -> JSONValue {
    (try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))) ?? .null
}

private let weatherTool = ChatTool(name: "file.read", description: "Read a file",
                                   parameters: .object(["type": .string("object"),
                                                        "properties": .object(["path": .object(["type": .string("string")])])]))

private let toolConversation = ChatRequest(
    model: "m", system: "be brief",
    messages: [.user("read /a"),
               ChatMessage(role: .assistant, content: "", toolCalls: [ChatToolCall(id: "c1", name: "file.read",
                                                                                  arguments: .object(["path": .string("/a")]))]),
               ChatMessage(role: .tool, content: "no such file", toolCallID: "c1", isError: true),
               .user("and now?")],
    tools: [weatherTool], toolChoice: .tool("file.read"), maxTokens: 100, temperature: 0.5, stop: ["END"])

@Suite struct AnthropicWireTests {
    let wire = AnthropicMessages()

    @Test func requestBodyFollowsTheMessagesAPI() throws {
        let body = json(try wire.body(for: toolConversation))
        #expect(body["model"] == .string("m"))
        #expect(body["max_tokens"] == .integer(100))
        #expect(body["system"] == .string("be brief"))
        #expect(body["stop_sequences"] == .array([.string("END")]))
        #expect(body["tool_choice"] == .object(["type": .string("tool"), "name": .string("file__read")]))
        #expect(body["tools"]?.array?.first?["input_schema"]?["type"] == .string("object"))
        let messages = try #require(body["messages"]?.array)
        // user, assistant(tool_use), user(tool_result + text): roles alternate.
        #expect(messages.map { $0["role"]?.string } == ["user", "assistant", "user"])
        let use = try #require(messages[1]["content"]?.array?.first)
        #expect(use["type"] == .string("tool_use"))
        #expect(use["name"] == .string("file__read"))
        #expect(use["input"] == .object(["path": .string("/a")]))
        let result = try #require(messages[2]["content"]?.array)
        #expect(result[0]["type"] == .string("tool_result"))
        #expect(result[0]["tool_use_id"] == .string("c1"))
        #expect(result[0]["is_error"] == .bool(true))
        #expect(result[1]["text"] == .string("and now?"))
        #expect(wire.headers(apiKey: "k").contains { $0 == ("x-api-key", "k") })
    }

    @Test func answerWithToolUseAndCacheUsage() throws {
        let answer = """
        {"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[
          {"type":"text","text":"Reading."},
          {"type":"tool_use","id":"toolu_1","name":"file__read","input":{"path":"/etc/hostname"}}],
         "stop_reason":"tool_use","stop_sequence":null,
         "usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":2,"output_tokens":7}}
        """
        let completion = try wire.completion(from: Array(answer.utf8), for: toolConversation)
        #expect(completion.content == "Reading.")
        #expect(completion.toolCalls == [ChatToolCall(id: "toolu_1", name: "file.read",
                                                      arguments: .object(["path": .string("/etc/hostname")]))])
        #expect(completion.stopReason == .toolUse)
        #expect(completion.usage == TokenUsage(input: 17, output: 7))
    }

    @Test func errorsAreSortedByType() {
        func error(_ status: Int, _ type: String, _ message: String, _ headers: [(String, String)] = []) -> ModelError {
            wire.error(status: status, headers: headers,
                       body: Array(#"{"type":"error","error":{"type":"\#(type)","message":"\#(message)"}}"#.utf8))
        }
        let limited = error(429, "rate_limit_error", "slow down", [("retry-after", "7")])
        #expect(limited.code == .rateLimited)
        #expect(limited.retryAfterMilliseconds == 7_000)
        #expect(error(529, "overloaded_error", "Overloaded").code == .overloaded)
        #expect(error(401, "authentication_error", "invalid x-api-key").code == .authentication)
        #expect(error(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum").code == .contextTooLong)
        #expect(error(400, "invalid_request_error", "messages: field required").code == .invalidRequest)
        #expect(wire.error(status: 502, headers: [], body: Array("<html>bad gateway".utf8)).code == .overloaded)
    }

    @Test func streamAssemblesTextToolCallAndUsage() throws {
        let events = """
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}

        event: ping
        data: {"type": "ping"}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: content_block_start
        data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"file__read","input":{}}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"path\\": \\"/"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"x\\"}"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":1}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":15}}

        event: message_stop
        data: {"type":"message_stop"}


        """
        var decoder = wire.streamDecoder(for: toolConversation)
        var deltas: [ChatDelta] = []
        // Byte by byte in odd-sized pieces: events cross chunk boundaries.
        let bytes = Array(events.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + 7)
            deltas += try decoder.consume(Array(bytes[offset..<end]))
            offset = end
        }
        let completion = try decoder.finish()
        #expect(deltas.first == .text("Hel"))
        #expect(deltas.contains(.toolCallStarted(index: 0, id: "toolu_9", name: "file.read")))
        #expect(completion.content == "Hello")
        #expect(completion.toolCalls.first?.arguments == .object(["path": .string("/x")]))
        #expect(completion.stopReason == .toolUse)
        #expect(completion.usage == TokenUsage(input: 25, output: 15))
    }

    @Test func aCutStreamIsAnErrorNotAnAnswer() throws {
        var decoder = wire.streamDecoder(for: toolConversation)
        _ = try decoder.consume(Array("""
        event: message_start
        data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":3,"output_tokens":1}}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}

        """.utf8))
        #expect(throws: ModelError.self) { _ = try decoder.finish() }
    }

    @Test func anErrorEventMidStream() throws {
        var decoder = wire.streamDecoder(for: toolConversation)
        do {
            _ = try decoder.consume(Array("event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n".utf8))
            Issue.record("no error")
        } catch {
            #expect(error.code == .overloaded)
        }
    }
}

@Suite struct OpenAIWireTests {
    let wire = OpenAIChat()

    @Test func requestBodyFollowsChatCompletions() throws {
        var request = toolConversation
        request.stream = true
        let body = json(try wire.body(for: request))
        let messages = try #require(body["messages"]?.array)
        #expect(messages.map { $0["role"]?.string } == ["system", "user", "assistant", "tool", "user"])
        #expect(messages[2]["content"] == .null)
        let call = try #require(messages[2]["tool_calls"]?.array?.first)
        #expect(call["type"] == .string("function"))
        #expect(call["function"]?["name"] == .string("file__read"))
        // Arguments travel as JSON text.
        #expect(call["function"]?["arguments"] == .string(#"{"path":"/a"}"#))
        #expect(messages[3]["tool_call_id"] == .string("c1"))
        #expect(messages[3]["content"] == .string("ERROR: no such file"))
        #expect(body["max_completion_tokens"] == .integer(100))
        #expect(body["stream_options"] == .object(["include_usage": .bool(true)]))
        #expect(body["tool_choice"] == .object(["type": .string("function"), "function": .object(["name": .string("file__read")])]))
        #expect(json(try OpenAIChat(tokenField: "max_tokens").body(for: request))["max_tokens"] == .integer(100))
        #expect(wire.headers(apiKey: "sk-1").contains { $0 == ("authorization", "Bearer sk-1") })
    }

    @Test func answerWithToolCalls() throws {
        let answer = """
        {"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,
         "message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function",
           "function":{"name":"file__read","arguments":"{\\"path\\":\\"/b\\"}"}},
           {"id":"call_b","type":"function","function":{"name":"file__read","arguments":"not json"}}]},
         "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":30,"completion_tokens":12,"total_tokens":42}}
        """
        let completion = try wire.completion(from: Array(answer.utf8), for: toolConversation)
        #expect(completion.toolCalls.count == 2)
        #expect(completion.toolCalls[0] == ChatToolCall(id: "call_a", name: "file.read", arguments: .object(["path": .string("/b")])))
        // Arguments that are not a JSON object are kept as the model wrote them.
        #expect(completion.toolCalls[1].arguments == .string("not json"))
        #expect(completion.stopReason == .toolUse)
        #expect(completion.usage == TokenUsage(input: 30, output: 12))
    }

    @Test func errorsFromOpenAIAndLlamaCpp() {
        func error(_ status: Int, _ body: String, _ headers: [(String, String)] = []) -> ModelError {
            wire.error(status: status, headers: headers, body: Array(body.utf8))
        }
        let limited = error(429, #"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
                            [("retry-after-ms", "1500")])
        #expect(limited.code == .rateLimited)
        #expect(limited.retryAfterMilliseconds == 1_500)
        #expect(error(429, #"{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}"#).code == .budgetExhausted)
        #expect(error(401, #"{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}"#).code == .authentication)
        #expect(error(400, #"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#).code == .contextTooLong)
        // llama.cpp: a numeric code.
        #expect(error(400, #"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#).code == .contextTooLong)
        #expect(error(503, #"{"error":{"message":"overloaded","type":"server_error"}}"#).code == .overloaded)
        #expect(error(404, #"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#).code == .notFound)
    }

    @Test func streamWithToolCallsUsageAndDone() throws {
        let chunks = [
            #"{"id":"c","object":"chat.completion.chunk","model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi "},"finish_reason":null}]}"#,
            #"{"id":"c","object":"chat.completion.chunk","model":"gpt-x","choices":[{"index":0,"delta":{"content":"there"},"finish_reason":null}]}"#,
            #"{"id":"c","object":"chat.completion.chunk","model":"gpt-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"file__read","arguments":""}}]},"finish_reason":null}]}"#,
            #"{"id":"c","object":"chat.completion.chunk","model":"gpt-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]},"finish_reason":null}]}"#,
            #"{"id":"c","object":"chat.completion.chunk","model":"gpt-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"/c\"}"}}]},"finish_reason":null}]}"#,
            #"{"id":"c","object":"chat.completion.chunk","model":"gpt-x","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            #"{"id":"c","object":"chat.completion.chunk","model":"gpt-x","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#,
            "[DONE]",
        ]
        var decoder = wire.streamDecoder(for: toolConversation)
        var deltas: [ChatDelta] = []
        for chunk in chunks { deltas += try decoder.consume(Array("data: \(chunk)\n\n".utf8)) }
        let completion = try decoder.finish()
        #expect(deltas.prefix(2) == [.text("Hi "), .text("there")])
        #expect(completion.content == "Hi there")
        #expect(completion.toolCalls == [ChatToolCall(id: "call_1", name: "file.read", arguments: .object(["path": .string("/c")]))])
        #expect(completion.stopReason == .toolUse)
        #expect(completion.usage == TokenUsage(input: 9, output: 4))
    }

    @Test func aStreamCutBeforeItsEnd() throws {
        var decoder = wire.streamDecoder(for: toolConversation)
        _ = try decoder.consume(Array(#"data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#.utf8) + [10, 10])
        #expect(throws: ModelError.self) { _ = try decoder.finish() }
        var garbage = wire.streamDecoder(for: toolConversation)
        #expect(throws: ModelError.self) { _ = try garbage.consume(Array("data: {not json\n\n".utf8)) }
    }
}

@Suite struct OllamaWireTests {
    let wire = OllamaChat()

    @Test func requestBodyFollowsTheChatAPI() throws {
        var request = toolConversation
        request.toolChoice = .auto
        let body = json(try wire.body(for: request))
        #expect(body["stream"] == .bool(false))
        #expect(body["options"]?["num_predict"] == .integer(100))
        #expect(body["options"]?["stop"] == .array([.string("END")]))
        let messages = try #require(body["messages"]?.array)
        #expect(messages.map { $0["role"]?.string } == ["system", "user", "assistant", "tool", "user"])
        // Arguments as an object, no ids.
        #expect(messages[2]["tool_calls"]?.array?.first?["function"]?["arguments"] == .object(["path": .string("/a")]))
        #expect(messages[3]["tool_name"] == .string("file__read"))
        // Ollama cannot be forced to call a tool: refused, not silently ignored.
        #expect(throws: ModelError.self) { _ = try wire.body(for: toolConversation) }
    }

    @Test func answerAndStream() throws {
        let answer = #"{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"file__read","arguments":{"path":"/d"}}}]},"done":true,"done_reason":"stop","prompt_eval_count":20,"eval_count":8}"#
        let completion = try wire.completion(from: Array(answer.utf8), for: toolConversation)
        #expect(completion.toolCalls == [ChatToolCall(id: "call_0", name: "file.read", arguments: .object(["path": .string("/d")]))])
        #expect(completion.stopReason == .toolUse)
        #expect(completion.usage == TokenUsage(input: 20, output: 8))

        var decoder = wire.streamDecoder(for: toolConversation)
        var deltas: [ChatDelta] = []
        deltas += try decoder.consume(Array(#"{"model":"llama3.2","message":{"role":"assistant","content":"The"},"done":false}"#.utf8 + [10]))
        deltas += try decoder.consume(Array(#"{"model":"llama3.2","message":{"role":"assistant","content":" sky"},"done":false}"#.utf8 + [10]))
        deltas += try decoder.consume(Array(#"{"model":"llama3.2","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","prompt_eval_count":5,"eval_count":2}"#.utf8))
        let streamed = try decoder.finish()
        #expect(deltas == [.text("The"), .text(" sky")])
        #expect(streamed.content == "The sky")
        #expect(streamed.stopReason == .maxTokens)
        #expect(streamed.usage == TokenUsage(input: 5, output: 2))
    }

    @Test func errors() {
        #expect(wire.error(status: 404, headers: [], body: Array(#"{"error":"model \"nope\" not found, try pulling it first"}"#.utf8)).code == .notFound)
        var decoder = wire.streamDecoder(for: toolConversation)
        #expect(throws: ModelError.self) { _ = try decoder.consume(Array(#"{"error":"an error was encountered while running the model"}"#.utf8 + [10])) }
    }
}

@Suite struct GatewayPartsTests {
    @Test func modelNames() throws {
        let name = try ModelName(parsing: "ollama:llama3.2:1b")
        #expect(name.provider == "ollama")
        #expect(name.model == "llama3.2:1b")
        #expect(throws: ModelError.self) { try ModelName(parsing: "gpt-4") }
        #expect(throws: ModelError.self) { try ModelName(parsing: "Open AI:gpt") }
        #expect(throws: ModelError.self) { try ModelName(parsing: "openai:") }
    }

    @Test func requestProblems() {
        #expect(toolConversation.problem() == nil)
        var request = toolConversation
        request.messages.append(ChatMessage(role: .tool, content: "x", toolCallID: "nope"))
        #expect(request.problem()?.contains("answers no earlier") == true)
        request = toolConversation
        request.toolChoice = .tool("shell.execute")
        #expect(request.problem()?.contains("not among the tools") == true)
        request = toolConversation
        request.maxTokens = 0
        #expect(request.problem() != nil)
        #expect(ChatRequest(model: "m", messages: []).problem() != nil)
    }

    @Test func backoffHonoursRetryAfterAndGrows() {
        let backoff = RetryBackoff()
        let limited = ModelError(.rateLimited, "x", status: 429, retryAfterMilliseconds: 2_000)
        #expect(backoff.delay(after: limited, attempt: 0) == 2_000)
        let tooLong = ModelError(.rateLimited, "x", status: 429, retryAfterMilliseconds: 3_600_000)
        #expect(backoff.delay(after: tooLong, attempt: 0) == nil)
        let overloaded = ModelError(.overloaded, "x", status: 529)
        #expect(backoff.delay(after: overloaded, attempt: 0, jitter: { $0.upperBound }) == 500)
        #expect(backoff.delay(after: overloaded, attempt: 3, jitter: { $0.upperBound }) == 4_000)
        #expect(backoff.delay(after: overloaded, attempt: 30, jitter: { $0.upperBound }) == 20_000)
        #expect(backoff.delay(after: ModelError(.authentication, "bad key"), attempt: 0) == nil)
    }

    @Test func pricesInMicrodollars() {
        let price = ModelPrice(input: 3, output: 15)
        #expect(price.microdollars(TokenUsage(input: 1_000, output: 100)) == 4_500)
    }

    @Test func serverSentEventsAcrossChunks() throws {
        var parser = ServerSentEventParser()
        var events = try parser.events(in: Array(": comment\r\nevent: a\r\ndata: 1\r\nda".utf8))
        #expect(events.isEmpty)
        events = try parser.events(in: Array("ta: 2\r\n\r\ndata: x\n".utf8))
        #expect(events == [ServerSentEvent(event: "a", data: "1\n2")])
        #expect(parser.finish() == ServerSentEvent(event: "message", data: "x"))
    }
}
