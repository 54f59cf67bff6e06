/// Why a model call failed: the gateway's own refusals and what a
/// provider answered, sorted into the cases a caller handles differently.
public struct ModelError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable, Equatable {
        /// The ask itself is wrong (an unknown model, a bad message list).
        case invalidRequest = "invalid_request"
        /// No such provider in the config, or the provider has no such model.
        case notFound = "not_found"
        /// The key is missing, wrong or not allowed this model.
        case authentication = "authentication"
        /// Too many requests (HTTP 429); `retryAfterMilliseconds` when the provider said.
        case rateLimited = "rate_limited"
        /// The provider is overloaded or failing (HTTP 5xx, Anthropic 529).
        case overloaded = "overloaded"
        /// The conversation does not fit the model's context window.
        case contextTooLong = "context_too_long"
        /// The provider answered something that is not its documented format,
        /// or the stream ended before its last event.
        case badResponse = "bad_response"
        /// No answer in time.
        case timeout = "timeout"
        /// The provider could not be reached.
        case unreachable = "unreachable"
        /// A budget or a grant's token allowance is spent.
        case budgetExhausted = "budget_exhausted"
    }

    public let code: Code
    public let message: String
    /// HTTP status, when a provider answered.
    public var status: Int?
    /// How long the provider asked us to wait (retry-after), in ms.
    public var retryAfterMilliseconds: Int64?

    public init(_ code: Code, _ message: String, status: Int? = nil, retryAfterMilliseconds: Int64? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.retryAfterMilliseconds = retryAfterMilliseconds
    }

    /// Worth another attempt after a pause: rate limits, overload, the
    /// provider unreachable or slow. Never a refusal that would repeat.
    public var isRetryable: Bool {
        switch code {
        case .rateLimited, .overloaded, .unreachable, .timeout: true
        default: false
        }
    }

    public var description: String { message }
}
