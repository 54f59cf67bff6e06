/// How long to wait before the next attempt of a call that failed in a
/// retryable way: what the provider asked for (retry-after) when it said,
/// else exponential back-off with jitter.
public struct RetryBackoff: Sendable, Equatable {
    public var baseMilliseconds: Int64
    public var maximumMilliseconds: Int64
    /// A retry-after longer than this is not waited for: the call fails
    /// with the provider's answer instead of hanging the agent.
    public var longestRetryAfterMilliseconds: Int64

    public init(baseMilliseconds: Int64 = 500, maximumMilliseconds: Int64 = 20_000,
                longestRetryAfterMilliseconds: Int64 = 60_000) {
        self.baseMilliseconds = baseMilliseconds
        self.maximumMilliseconds = maximumMilliseconds
        self.longestRetryAfterMilliseconds = longestRetryAfterMilliseconds
    }

    /// The pause before attempt `attempt + 1` (attempt 0 was the first), or
    /// nil when the error is not worth another one.
    public func delay(after error: ModelError, attempt: Int,
                      jitter: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }) -> Int64? {
        guard error.isRetryable else { return nil }
        if let asked = error.retryAfterMilliseconds {
            return asked <= longestRetryAfterMilliseconds ? asked : nil
        }
        let exponential = Double(baseMilliseconds) * Double(1 << min(attempt, 16))
        let capped = min(exponential, Double(maximumMilliseconds))
        return Int64(capped * jitter(0.5...1.0))
    }
}
