/// Splits a byte stream into lines (LF or CRLF), across chunk boundaries.
/// A line longer than `maximumLineLength` is an error, not unbounded memory.
public struct LineSplitter: Sendable {
    public let maximumLineLength: Int
    private var pending: [UInt8] = []

    public init(maximumLineLength: Int = 4 * 1024 * 1024) {
        self.maximumLineLength = maximumLineLength
    }

    /// The complete lines in `bytes` (and what was pending before them).
    public mutating func lines(in bytes: some Sequence<UInt8>) throws(ModelError) -> [String] {
        var lines: [String] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
                lines.append(String(decoding: pending, as: UTF8.self))
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
                if pending.count > maximumLineLength {
                    throw ModelError(.badResponse, "the provider sent a line longer than \(maximumLineLength) bytes")
                }
            }
        }
        return lines
    }

    /// What is left at the end of the stream (a last line without a newline).
    public mutating func finish() -> String? {
        defer { pending.removeAll() }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}

/// One server-sent event (the WHATWG EventSource format Anthropic and
/// OpenAI stream in): its `event:` name (default "message") and its
/// `data:` lines joined by newlines.
public struct ServerSentEvent: Sendable, Equatable {
    public var event: String
    public var data: String

    public init(event: String = "message", data: String) {
        self.event = event
        self.data = data
    }
}

/// Parses server-sent events from a byte stream: fields per line, an event
/// dispatched at each blank line; comments (':') and unknown fields ignored.
public struct ServerSentEventParser: Sendable {
    private var splitter = LineSplitter()
    private var event = ""
    private var data: [String] = []

    public init() {}

    public mutating func events(in bytes: some Sequence<UInt8>) throws(ModelError) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for line in try splitter.lines(in: bytes) {
            if let event = take(line) { events.append(event) }
        }
        return events
    }

    /// An event left without its blank line when the stream ended.
    public mutating func finish() -> ServerSentEvent? {
        if let line = splitter.finish(), let event = take(line) { return event }
        return take("")
    }

    private mutating func take(_ line: String) -> ServerSentEvent? {
        if line.isEmpty {
            defer { event = ""; data = [] }
            guard !data.isEmpty else { return nil }
            return ServerSentEvent(event: event.isEmpty ? "message" : event, data: data.joined(separator: "\n"))
        }
        if line.hasPrefix(":") { return nil }
        let field: Substring
        var value: Substring
        if let colon = line.firstIndex(of: ":") {
            field = line[..<colon]
            value = line[line.index(after: colon)...]
            if value.hasPrefix(" ") { value = value.dropFirst() }
        } else {
            field = Substring(line)
            value = ""
        }
        switch field {
        case "event": event = String(value)
        case "data": data.append(String(value))
        default: break
        }
        return nil
    }
}
