/// One server-sent event. Only the fields an OpenAI-style stream uses are kept.
package struct SSEEvent: Sendable, Equatable {
    package var event: String?
    /// `data:` lines joined with "\n".
    package var data: String
    /// True when the event only carried comments (`: keep-alive`), no data.
    package var isComment: Bool

    package init(event: String? = nil, data: String, isComment: Bool = false) {
        self.event = event
        self.data = data
        self.isComment = isComment
    }
}

/// Incremental SSE parser (WHATWG event-stream rules for `data`/`event` fields and comments).
/// Feed it bytes as they arrive, in any split: an event cut across reads is held until its
/// terminating blank line arrives, and several events in one read all come out.
package struct SSEDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var dataLines: [String] = []
    private var eventName: String?
    private var sawComment = false
    private var sawCR = false

    package init() {}

    package mutating func feed(_ bytes: some Sequence<UInt8>) -> [SSEEvent] {
        if let events = bytes.withContiguousStorageIfAvailable({ feed(UnsafeRawBufferPointer($0)) }) { return events }
        return Array(bytes).withUnsafeBytes { feed($0) }
    }

    /// Takes the bytes between line ends in runs, not one by one.
    package mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [SSEEvent] {
        var events: [SSEEvent] = []
        var i = 0
        while i < bytes.count {
            if sawCR {
                sawCR = false
                if bytes[i] == 0x0A {
                    i += 1
                    continue
                }
            }
            var end = i
            while end < bytes.count, bytes[end] != 0x0A, bytes[end] != 0x0D { end += 1 }
            if end > i { buffer.append(contentsOf: bytes[i..<end]) }
            guard end < bytes.count else { break }
            if bytes[end] == 0x0D { sawCR = true }
            if let event = endLine() { events.append(event) }
            i = end + 1
        }
        return events
    }

    /// Flushes an event left without its final blank line at end of stream.
    package mutating func finish() -> SSEEvent? {
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
        let colon = buffer.firstIndex(of: UInt8(ascii: ":")) ?? buffer.endIndex
        var valueStart = min(colon + 1, buffer.endIndex)
        if valueStart < buffer.endIndex, buffer[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let field = buffer[..<colon]
        if field.elementsEqual("data".utf8) {
            dataLines.append(String(decoding: buffer[valueStart...], as: UTF8.self))
        } else if field.elementsEqual("event".utf8) {
            eventName = String(decoding: buffer[valueStart...], as: UTF8.self)
        }
        // id, retry and unknown fields are not used by OpenAI streams.
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
        return SSEEvent(event: eventName, data: dataLines.count == 1 ? dataLines[0] : dataLines.joined(separator: "\n"))
    }
}
