import AgentOSModels
import Testing
@testable import AgentOSPolicy

@Suite struct KernelConfigParserTests {
    @Test func providersWithDefaultsAndPrices() throws {
        let config = try KernelConfigParser.parse(text: """
            version: 1
            models:
              secrets_file: /etc/agentos/secrets.env
              providers:
                anthropic:
                  models:
                    claude-sonnet-4-5: {input: 3, output: 15}
                    claude-haiku: {}
                local:
                  kind: openai-compatible
                  base_url: http://127.0.0.1:8080/
                  key: none
                  concurrency: 1
                  timeout: 30s
                  retries: 0
                  requests_per_minute: 60
            """, file: "agentd.yaml")
        #expect(config.secretsFile == "/etc/agentos/secrets.env")
        let anthropic = try #require(config.models.providers["anthropic"])
        #expect(anthropic.kind == .anthropic)
        #expect(anthropic.baseURL == "https://api.anthropic.com")
        #expect(anthropic.keyName == "ANTHROPIC_API_KEY")
        #expect(anthropic.price(of: "claude-sonnet-4-5") == ModelPrice(input: 3, output: 15))
        #expect(anthropic.price(of: "claude-haiku") == nil)
        #expect(throws: ModelError.self) { try config.models.settings(for: ModelName(parsing: "anthropic:gpt")) }
        let local = try #require(config.models.providers["local"])
        #expect(local.baseURL == "http://127.0.0.1:8080")
        #expect(local.keyName == nil)
        #expect(local.concurrency == 1 && local.timeoutMilliseconds == 30_000 && local.retries == 0)
        #expect(local.requestsPerMinute == 60)
        #expect(config.models.providers.count == 2)
    }

    @Test func everyMistakeAtItsLine() {
        do {
            _ = try KernelConfigParser.parse(text: """
                version: 1
                models:
                  providers:
                    local:
                      kind: openai-compatible
                      concurency: 2
                    Bad Name:
                      kind: anthropic
                    keyed:
                      kind: openai
                      key: sk-live-1234
                      retries: 40
                """, file: "c.yaml")
            Issue.record("no error")
        } catch {
            let text = error.description
            #expect(text.contains("c.yaml:6:7: models.providers.local.concurency: unknown key 'concurency' (did you mean 'concurrency'?)"), "\(text)")
            #expect(text.contains("models.providers.local.base_url: missing"), "\(text)")
            #expect(text.contains("provider name 'Bad Name'"), "\(text)")
            // A key pasted where its name belongs is refused, and not echoed.
            #expect(text.contains("never the key itself") && !text.contains("sk-live-1234"), "\(text)")
            #expect(text.contains("retries: must be 0-10, not 40"), "\(text)")
        }
    }

    @Test func anEmptyFileKeepsTheDefaults() throws {
        let config = try KernelConfigParser.parse(text: "", file: "empty.yaml")
        #expect(config.models == .defaults)
    }
}
