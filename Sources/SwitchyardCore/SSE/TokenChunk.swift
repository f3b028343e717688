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
    }

    /// Scans a chunk that has no `usage` and no `error` (the common one). Nil when it needs a
    /// full parse: usage or an error present, or a shape the scan does not take.
    package static func scan(_ raw: UnsafeRawBufferPointer) -> Scanned? {
        guard let found = JSONScan.topLevelValues(raw, keys: ["model", "usage", "error", "choices"]) else { return nil }
        func isNull(_ range: Range<Int>?) -> Bool {
            guard let range else { return true }
            return raw[range].elementsEqual("null".utf8)
        }
        guard isNull(found[1]), isNull(found[2]) else { return nil }
        return Scanned(model: found[0], carriesToken: found[3].map { carriesToken(raw, choices: $0) } ?? false)
    }

    /// ``carriesToken(_:)`` on the bytes of a `choices` array.
    package static func carriesToken(_ raw: UnsafeRawBufferPointer, choices: Range<Int>) -> Bool {
        func nonEmpty(_ range: Range<Int>?, opening: UInt8, empty: String) -> Bool {
            guard let range, raw[range.lowerBound] == opening else { return false }
            return !raw[range].elementsEqual(empty.utf8) && !(opening == UInt8(ascii: "[") && JSONScan.elements(raw, of: range)?.isEmpty == true)
        }
        for choice in JSONScan.elements(raw, of: choices) ?? [] {
            guard let fields = JSONScan.values(raw, of: choice, keys: ["delta", "text"]) else { continue }
            if let delta = fields[0], let d = JSONScan.values(raw, of: delta, keys: ["content", "reasoning_content", "tool_calls"]) {
                if nonEmpty(d[0], opening: UInt8(ascii: "\""), empty: "\"\"") || nonEmpty(d[1], opening: UInt8(ascii: "\""), empty: "\"\"")
                    || nonEmpty(d[2], opening: UInt8(ascii: "["), empty: "[]")
                {
                    return true
                }
            }
            if nonEmpty(fields[1], opening: UInt8(ascii: "\""), empty: "\"\"") { return true }
        }
        return false
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
