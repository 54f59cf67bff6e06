/// The providers the kernel's model gateway may call, from the `models:`
/// section of agentd's config file (Policies/README.md#kernel-config).
public struct ModelsConfiguration: Sendable, Equatable {
    public var providers: [String: ProviderSettings]

    public init(providers: [String: ProviderSettings]) {
        self.providers = providers
    }

    /// Without a config file: Anthropic and OpenAI at their public
    /// endpoints (keys from ANTHROPIC_API_KEY / OPENAI_API_KEY), Ollama on
    /// this host.
    public static let defaults = ModelsConfiguration(providers: [
        "anthropic": ProviderSettings(name: "anthropic", kind: .anthropic),
        "openai": ProviderSettings(name: "openai", kind: .openai),
        "ollama": ProviderSettings(name: "ollama", kind: .ollama),
    ])

    /// The provider and its settings for `name`, or why there is none.
    public func settings(for name: ModelName) throws(ModelError) -> ProviderSettings {
        guard let settings = providers[name.provider] else {
            let known = providers.keys.sorted().joined(separator: ", ")
            throw ModelError(.notFound, "no provider '\(name.provider)' in the kernel's config (providers: \(known.isEmpty ? "none" : known))")
        }
        if let models = settings.models, models[name.model] == nil {
            throw ModelError(.notFound, "provider '\(name.provider)' lists no model '\(name.model)' in the kernel's config "
                                 + "(models: \(models.keys.sorted().joined(separator: ", ")))")
        }
        return settings
    }
}

/// One provider: how to reach it, its key, how hard to use it, its prices.
public struct ProviderSettings: Sendable, Equatable {
    public var name: String
    public var kind: ProviderKind
    /// scheme://host[:port][/prefix], without the API path.
    public var baseURL: String
    /// The environment variable (or secrets file entry) holding the key;
    /// nil: calls go without one.
    public var keyName: String?
    /// Calls in flight at once; more wait in the scheduler's queue.
    public var concurrency: Int
    /// One attempt's limit.
    public var timeoutMilliseconds: Int64
    /// Attempts after the first, for rate limits and overload.
    public var retries: Int
    /// Requests per minute the kernel sends this provider at most; nil: no limit.
    public var requestsPerMinute: Int?
    /// The models that may be called, with their prices; nil: any model, no price.
    public var models: [String: ModelPrice?]?

    public init(name: String, kind: ProviderKind, baseURL: String? = nil, keyName: String?? = nil,
                concurrency: Int = 4, timeoutMilliseconds: Int64 = 120_000, retries: Int = 3,
                requestsPerMinute: Int? = nil, models: [String: ModelPrice?]? = nil) {
        self.name = name
        self.kind = kind
        self.baseURL = baseURL ?? kind.defaultBaseURL ?? ""
        self.keyName = keyName ?? Self.defaultKeyName(kind)
        self.concurrency = concurrency
        self.timeoutMilliseconds = timeoutMilliseconds
        self.retries = retries
        self.requestsPerMinute = requestsPerMinute
        self.models = models
    }

    public static func defaultKeyName(_ kind: ProviderKind) -> String? {
        switch kind {
        case .anthropic: "ANTHROPIC_API_KEY"
        case .openai: "OPENAI_API_KEY"
        case .ollama, .openaiCompatible: nil
        }
    }

    /// The price of `model`, if the config gives one.
    public func price(of model: String) -> ModelPrice? {
        guard let models, let listed = models[model] else { return nil }
        return listed
    }
}

/// US dollars per million tokens.
public struct ModelPrice: Sendable, Equatable {
    public var input: Double
    public var output: Double

    public init(input: Double, output: Double) {
        self.input = input
        self.output = output
    }

    /// What `usage` cost, in micro-dollars (whole numbers add up exactly).
    public func microdollars(_ usage: TokenUsage) -> Int64 {
        Int64((Double(usage.input) * input + Double(usage.output) * output).rounded())
    }
}
