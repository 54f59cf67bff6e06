/// Why a capability could not be parsed, delegated or used.
public struct CapabilityError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The URI is not a capability (scheme, kind, resource, parameters).
        public static let invalidURI = Code("invalid-uri")
        /// A path names something that cannot be resolved safely.
        public static let invalidPath = Code("invalid-path")
        /// A delegation asks for more than the capability it comes from.
        public static let notWithin = Code("not-within")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
