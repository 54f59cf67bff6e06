/// A model as policies, capabilities and `agentctl` name it:
/// `PROVIDER:MODEL`, e.g. `anthropic:claude-sonnet-4-5`, `ollama:llama3.2`,
/// `local:smollm2`. The provider is a name from the kernel's config file;
/// the model is passed to that provider as written.
public struct ModelName: Sendable, Hashable, CustomStringConvertible {
    public let provider: String
    public let model: String

    public init(provider: String, model: String) {
        self.provider = provider
        self.model = model
    }

    /// Parses `PROVIDER:MODEL`. The model may itself hold ':' (Ollama tags
    /// such as `llama3.2:1b`); the provider is everything before the first.
    public init(parsing text: String) throws(ModelError) {
        guard let colon = text.firstIndex(of: ":") else {
            throw ModelError(.invalidRequest, "model '\(text)' is not PROVIDER:MODEL (e.g. anthropic:claude-sonnet-4-5, ollama:llama3.2)")
        }
        let provider = String(text[..<colon])
        let model = String(text[text.index(after: colon)...])
        guard Self.isProviderName(provider) else {
            throw ModelError(.invalidRequest, "model '\(text)': provider '\(provider)' must be lower-case letters, digits, '-' or '_'")
        }
        guard !model.isEmpty, model.count <= 200,
              !model.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7f }) else {
            throw ModelError(.invalidRequest, "model '\(text)': the model name must be 1-200 visible characters")
        }
        self.provider = provider
        self.model = model
    }

    /// What a provider may be called in the config file.
    public static func isProviderName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
    }

    public var description: String { "\(provider):\(model)" }
}
