import Foundation
import SwitchyardCore

/// Turns the events of one OpenAI-style SSE stream into the timestamps of reference/metrics.md:
/// the first and every later token-bearing chunk (non-empty `content`, `reasoning_content`,
/// `tool_calls`, or a completion's `text`; never the role-only chunk, keep-alives or the usage
/// chunk), the server's usage, an in-band error, and whether `[DONE]` came.
package struct StreamObserver: Sendable {
    package private(set) var first: Duration?
    package private(set) var last: Duration?
    /// Gaps between consecutive token-bearing chunks, seconds.
    package private(set) var gaps: [Double] = []
    /// Token-bearing chunks seen (the client's own count).
    package private(set) var chunks = 0
    /// A token-bearing chunk carried text beyond ASCII. Byte-level tokenizers spend several tokens
    /// on one such character and servers hold a partial one back (llama.cpp does), so such a
    /// stream may show fewer chunks than the server's token count.
    package private(set) var sawNonASCII = false
    package private(set) var usageCompletionTokens: Int?
    package private(set) var usagePromptTokens: Int?
    /// An `{"error": …}` event inside a 200 stream: the request failed.
    package private(set) var error: String?
    package private(set) var sawDone = false
    /// Data that was not JSON (and not `[DONE]`).
    package private(set) var malformed: String?

    private var decoder = SSEDecoder()

    package init() {}

    /// Feeds bytes as they arrived at `time`.
    package mutating func feed(_ bytes: some Sequence<UInt8>, at time: Duration) {
        for event in decoder.feed(bytes) { observe(event, at: time) }
    }

    /// End of body: flushes an unterminated last event.
    package mutating func finish(at time: Duration) {
        if let event = decoder.finish() { observe(event, at: time) }
    }

    package mutating func observe(_ event: SSEEvent, at time: Duration) {
        guard !event.isComment else { return }
        let data = event.data.trimmingCharacters(in: .whitespaces)
        if data == "[DONE]" {
            sawDone = true
            return
        }
        // The common chunk (no usage, no error) is scanned, not built (the gateway's definition).
        let bytes = Array(data.utf8)
        if let scanned = bytes.withUnsafeBytes({ TokenChunk.scan($0) }) {
            if scanned.carriesToken {
                countToken(at: time)
                if !sawNonASCII { sawNonASCII = Self.hasNonASCII(bytes) }
            }
            return
        }
        guard let json = try? JSONParser.parse(bytes) else {
            if malformed == nil { malformed = String(data.prefix(120)) }
            return
        }
        if let err = json["error"], err != .null {
            error = err["message"]?.stringValue ?? err.stringValue ?? err.serializedString
            return
        }
        if let usage = json["usage"], usage != .null {
            usageCompletionTokens = usage["completion_tokens"]?.intValue ?? usageCompletionTokens
            usagePromptTokens = usage["prompt_tokens"]?.intValue ?? usagePromptTokens
        }
        guard TokenChunk.carriesToken(json) else { return }
        countToken(at: time)
        if !sawNonASCII { sawNonASCII = Self.hasNonASCII(bytes) }
    }

    /// Raw UTF-8 beyond ASCII, or a `\u` escape (of anything but ASCII).
    static func hasNonASCII(_ bytes: [UInt8]) -> Bool {
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            if byte >= 0x80 { return true }
            if byte == UInt8(ascii: "\\") {
                if i + 5 < bytes.count, bytes[i + 1] == UInt8(ascii: "u"),
                    !(bytes[i + 2] == UInt8(ascii: "0") && bytes[i + 3] == UInt8(ascii: "0")
                        && (0x30...0x37).contains(bytes[i + 4]))
                {
                    return true
                }
                i += 2
                continue
            }
            i += 1
        }
        return false
    }

    private mutating func countToken(at time: Duration) {
        if let last { gaps.append((time - last).seconds) }
        if first == nil { first = time }
        last = time
        chunks += 1
    }

    /// Longest gap between token-bearing chunks (the stall), seconds.
    package var maxGap: Double? { gaps.max() }
}
