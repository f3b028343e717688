/// The one definition of a token-bearing chunk (shared/reference/metrics.md): an OpenAI stream
/// chunk with a non-empty `content`, `reasoning_content` or `tool_calls` in a chat delta, or a
/// non-empty `text` in a completion choice. Role-only chunks, keep-alives and the usage chunk
/// carry none. Used by the gateway's relay (TTFT, TPOT, stalls) and by `bench`'s client.
package enum TokenChunk {
    /// What a scan of a chunk's JSON found without building it.
    package struct Scanned: Sendable {
        /// The byte range of the top-level `model` value, if any.
        package var model: Range<Int>?
        package var carriesToken: Bool
        /// The byte range of the chunk's only `content` string (quotes included), when it has
        /// exactly one: the relay's template for the next chunks of the stream.
        package var content: Range<Int>?
    }

    /// Scans a chunk that has no `usage` and no `error` (the common one). Nil when it needs a
    /// full parse: usage or an error present, or a shape the scan does not take (invalid JSON,
    /// escaped keys). One pass over the bytes: the chunk is validated, the top-level `model`
    /// located and the token fields of every choice read on the way.
    package static func scan(_ raw: UnsafeRawBufferPointer) -> Scanned? {
        var model: Range<Int>?
        var token = false
        var content = Content()
        let start = JSONScan.skipSpace(raw, 0)
        let end = object(raw, at: start, depth: 1) { key, value, depth in
            let valueEnd: Int?
            if JSONScan.key(raw, key, is: "choices"), value < raw.count, raw[value] == UInt8(ascii: "[") {
                valueEnd = choices(raw, at: value, depth: depth, token: &token, content: &content)
            } else {
                valueEnd = JSONScan.skipValue(raw, value, depth: depth)
            }
            guard let valueEnd else { return nil }
            if JSONScan.key(raw, key, is: "model") {
                model = value..<valueEnd
            } else if JSONScan.key(raw, key, is: "usage") || JSONScan.key(raw, key, is: "error") {
                // Usage and errors take the full parse.
                guard raw[value..<valueEnd].elementsEqual("null".utf8) else { return nil }
            }
            return valueEnd
        }
        guard let end, JSONScan.skipSpace(raw, end) == raw.count else { return nil }
        return Scanned(model: model, carriesToken: token, content: content.count == 1 ? content.last : nil)
    }

    /// The `content` strings seen in deltas.
    struct Content {
        var count = 0
        var last: Range<Int>?
    }

    /// The `choices` array at `start`: sets `token` when a choice carries one; the index after it.
    private static func choices(_ raw: UnsafeRawBufferPointer, at start: Int, depth: Int, token: inout Bool, content: inout Content) -> Int? {
        var i = JSONScan.skipSpace(raw, start + 1)
        if i < raw.count, raw[i] == UInt8(ascii: "]") { return i + 1 }
        while true {
            let end: Int?
            if i < raw.count, raw[i] == UInt8(ascii: "{") {
                var carries = false
                end = choice(raw, at: i, depth: depth + 1, token: &carries, content: &content)
                if carries { token = true }
            } else {
                end = JSONScan.skipValue(raw, i, depth: depth + 1)
            }
            guard let end else { return nil }
            i = JSONScan.skipSpace(raw, end)
            guard i < raw.count else { return nil }
            if raw[i] == UInt8(ascii: "]") { return i + 1 }
            guard raw[i] == UInt8(ascii: ",") else { return nil }
            i = JSONScan.skipSpace(raw, i + 1)
        }
    }

    /// One choice: a non-empty `text`, or a `delta` with a non-empty `content`,
    /// `reasoning_content` or `tool_calls` (the last of a repeated key counts, as in a parse).
    private static func choice(_ raw: UnsafeRawBufferPointer, at start: Int, depth: Int, token: inout Bool, content: inout Content) -> Int? {
        var text = false
        var delta = false
        let end = object(raw, at: start, depth: depth) { key, value, depth in
            if JSONScan.key(raw, key, is: "delta"), value < raw.count, raw[value] == UInt8(ascii: "{") {
                var fields = (content: false, reasoning: false, tools: false)
                let end = object(raw, at: value, depth: depth) { key, value, depth in
                    guard let end = JSONScan.skipValue(raw, value, depth: depth) else { return nil }
                    if JSONScan.key(raw, key, is: "content") {
                        fields.content = nonEmptyString(raw, value..<end)
                        if raw[value] == UInt8(ascii: "\"") {
                            content.count += 1
                            content.last = value..<end
                        }
                    } else if JSONScan.key(raw, key, is: "reasoning_content") {
                        fields.reasoning = nonEmptyString(raw, value..<end)
                    } else if JSONScan.key(raw, key, is: "tool_calls") {
                        fields.tools = raw[value] == UInt8(ascii: "[") && JSONScan.skipSpace(raw, value + 1) != end - 1
                    }
                    return end
                }
                delta = fields.content || fields.reasoning || fields.tools
                return end
            }
            guard let end = JSONScan.skipValue(raw, value, depth: depth) else { return nil }
            if JSONScan.key(raw, key, is: "delta") {
                delta = false
            } else if JSONScan.key(raw, key, is: "text") {
                text = nonEmptyString(raw, value..<end)
            }
            return end
        }
        token = text || delta
        return end
    }

    private static func nonEmptyString(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        raw[range.lowerBound] == UInt8(ascii: "\"") && range.count > 2
    }

    /// Walks the members of the object at `start`: `member(key, valueStart, depth)` returns the
    /// index after the value (nil: invalid). Returns the index after the object; nil when it is
    /// not a valid object or a key has escapes (only a parser can tell what it spells).
    @inline(__always)
    private static func object(
        _ raw: UnsafeRawBufferPointer, at start: Int, depth: Int, _ member: (Range<Int>, Int, Int) -> Int?
    ) -> Int? {
        guard start < raw.count, raw[start] == UInt8(ascii: "{"), depth <= JSONScan.maxDepth else { return nil }
        var i = JSONScan.skipSpace(raw, start + 1)
        if i < raw.count, raw[i] == UInt8(ascii: "}") { return i + 1 }
        while true {
            guard i < raw.count, raw[i] == UInt8(ascii: "\""), let (keyEnd, escaped) = JSONScan.skipString(raw, i), !escaped else { return nil }
            let key = (i + 1)..<(keyEnd - 1)
            i = JSONScan.skipSpace(raw, keyEnd)
            guard i < raw.count, raw[i] == UInt8(ascii: ":") else { return nil }
            guard let valueEnd = member(key, JSONScan.skipSpace(raw, i + 1), depth + 1) else { return nil }
            i = JSONScan.skipSpace(raw, valueEnd)
            guard i < raw.count else { return nil }
            if raw[i] == UInt8(ascii: "}") { return i + 1 }
            guard raw[i] == UInt8(ascii: ",") else { return nil }
            i = JSONScan.skipSpace(raw, i + 1)
        }
    }

    /// Whether a parsed chunk bears a token (the usage-only chunk, with no choices, never does).
    package static func carriesToken(_ chunk: JSONValue) -> Bool {
        for choice in chunk["choices"]?.arrayValue ?? [] {
            if let delta = choice["delta"] {
                for key in ["content", "reasoning_content"] {
                    if let s = delta[key]?.stringValue, !s.isEmpty { return true }
                }
                if let calls = delta["tool_calls"]?.arrayValue, !calls.isEmpty { return true }
            }
            if let text = choice["text"]?.stringValue, !text.isEmpty { return true }
        }
        return false
    }
}

/// When the token-bearing chunks of one stream passed: first, last and the longest gap between
/// two of them. TTFT, TPOT and the stall of shared/reference/metrics.md come from it.
package struct TokenTiming: Sendable, Equatable {
    package private(set) var first: ContinuousClock.Instant?
    package private(set) var last: ContinuousClock.Instant?
    /// Longest gap between two token-bearing chunks.
    package private(set) var maxGap: Duration?

    package init() {}

    package mutating func note(_ now: ContinuousClock.Instant) {
        if first == nil { first = now }
        if let last { maxGap = max(maxGap ?? .zero, now - last) }
        last = now
    }

    /// Time per output token after the first, given the stream's completion token count.
    package func tpot(completionTokens n: Int?) -> Duration? {
        guard let first, let last, let n, n >= 2 else { return nil }
        return (last - first) / (n - 1)
    }
}
