/// One server-sent event. Only the fields an OpenAI-style stream uses are kept.
public struct SSEEvent: Sendable, Equatable {
    public var event: String?
    /// `data:` lines joined with "\n".
    public var data: String
    /// True when the event only carried comments (`: keep-alive`), no data.
    public var isComment: Bool

    public init(event: String? = nil, data: String, isComment: Bool = false) {
        self.event = event
        self.data = data
        self.isComment = isComment
    }
}

/// Incremental SSE parser (WHATWG event-stream rules for `data`/`event` fields and comments).
/// Feed it bytes as they arrive, in any split: an event cut across reads is held until its
/// terminating blank line arrives, and several events in one read all come out.
public struct SSEDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var dataLines: [String] = []
    private var eventName: String?
    private var sawComment = false
    private var sawCR = false

    public init() {}

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [SSEEvent] {
        var events: [SSEEvent] = []
        for byte in bytes {
            if sawCR {
                sawCR = false
                if byte == 0x0A { continue }
            }
            if byte == 0x0D || byte == 0x0A {
                if byte == 0x0D { sawCR = true }
                if let event = endLine() { events.append(event) }
            } else {
                buffer.append(byte)
            }
        }
        return events
    }

    /// Flushes an event left without its final blank line at end of stream.
    public mutating func finish() -> SSEEvent? {
        if !buffer.isEmpty { _ = endLine() }
        return dispatch()
    }

    private mutating func endLine() -> SSEEvent? {
        defer { buffer.removeAll(keepingCapacity: true) }
        if buffer.isEmpty { return dispatch() }
        if buffer[0] == UInt8(ascii: ":") {
            sawComment = true
            return nil
        }
        let line = String(decoding: buffer, as: UTF8.self)
        let field: Substring
        var value: Substring
        if let colon = line.firstIndex(of: ":") {
            field = line[..<colon]
            value = line[line.index(after: colon)...]
            if value.first == " " { value = value.dropFirst() }
        } else {
            field = line[...]
            value = ""
        }
        switch field {
        case "data": dataLines.append(String(value))
        case "event": eventName = String(value)
        default: break  // id, retry and unknown fields are not used by OpenAI streams
        }
        return nil
    }

    private mutating func dispatch() -> SSEEvent? {
        defer {
            dataLines.removeAll(keepingCapacity: true)
            eventName = nil
            sawComment = false
        }
        if dataLines.isEmpty {
            return sawComment ? SSEEvent(event: eventName, data: "", isComment: true) : nil
        }
        return SSEEvent(event: eventName, data: dataLines.joined(separator: "\n"))
    }
}
