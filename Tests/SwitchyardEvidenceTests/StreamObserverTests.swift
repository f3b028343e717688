import SwitchyardCore
import Testing

@testable import SwitchyardEvidence

@Suite struct StreamObserverTests {
    static func chunk(_ delta: String) -> String { #"data: {"choices":[{"index":0,"delta":\#(delta)}]}"# + "\n\n" }

    static let stream =
        chunk(#"{"role":"assistant"}"#) + ": keep-alive\n\n" + chunk(#"{"content":"Hel"}"#)
        + chunk(#"{"reasoning_content":"hm"}"#) + chunk(#"{"tool_calls":[{"index":0}]}"#) + chunk(#"{"content":""}"#)
        + "event: message\r\ndata: {\"choices\":[{\"index\":0,\r\ndata: \"delta\":{\"content\":\"lo\"}}]}\r\n\r\n"
        + #"data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4}}"# + "\n\n" + "data: [DONE]\n\n"

    @Test func onlyTokenBearingChunksCount() {
        var o = StreamObserver()
        o.feed(Array(Self.stream.utf8), at: .seconds(1))
        o.finish(at: .seconds(1))
        #expect(o.chunks == 4, "content, reasoning_content, tool_calls, multi-line content; not role, keep-alive, empty or usage")
        #expect(o.usageCompletionTokens == 4)
        #expect(o.usagePromptTokens == 5)
        #expect(o.sawDone)
        #expect(o.error == nil)
        #expect(o.malformed == nil)
    }

    /// A server spends several tokens on a character beyond ASCII and holds a partial one back
    /// (llama.cpp): fewer chunks than tokens is then no disagreement; on ASCII text it is.
    @Test func fewerChunksThanTokensIsExplainedOnlyByTextBeyondASCII() {
        func record(_ deltas: [String], tokens: Int) -> RequestRecord {
            var o = StreamObserver()
            for delta in deltas { o.feed(Array(Self.chunk(delta).utf8), at: .seconds(1)) }
            o.feed(Array((#"data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":\#(tokens)}}"# + "\n\n").utf8), at: .seconds(1))
            var r = RequestRecord(id: 0, lane: "realtime", tSched: .zero)
            r.outputTokensClient = o.chunks
            r.outputTokensServer = o.usageCompletionTokens
            r.outputNonASCII = o.sawNonASCII
            return r
        }
        #expect(!record([#"{"content":"👋"}"#], tokens: 4).tokenMismatch, "one emoji, four byte tokens")
        #expect(!record([#"{"content":"caf\u00e9 ok"}"#], tokens: 4).tokenMismatch, "escaped as \\u")
        #expect(record([#"{"content":"Hello"}"#], tokens: 4).tokenMismatch, "ASCII text: one chunk for four tokens is a disagreement")
        #expect(record([#"{"content":"tab\u0009"}"#], tokens: 4).tokenMismatch, "an escaped ASCII character is ASCII")
        #expect(
            record([#"{"content":"é"}"#, #"{"content":"a"}"#, #"{"content":"b"}"#, #"{"content":"c"}"#], tokens: 1).tokenMismatch,
            "more chunks than tokens always disagrees")
        #expect(record([#"{"role":"assistant","content":"é"}"#], tokens: 4).json["non_ascii"] == .bool(true), "recorded in requests.jsonl")
    }

    /// Property: however the bytes are cut into reads, the same events come out.
    @Test func anySplitParsesToTheSameEvents() {
        let bytes = Array(Self.stream.utf8)
        var whole = SSEDecoder()
        let expected = whole.feed(bytes) + [whole.finish()].compactMap { $0 }
        var rng = SplitMix64(seed: 11)
        for trial in 0..<2000 {
            var decoder = SSEDecoder()
            var events: [SSEEvent] = []
            var i = 0
            while i < bytes.count {
                // Mostly tiny reads (1–3 bytes) with some large ones, cutting inside \r\n too.
                let n = trial % 3 == 0 ? 1 + Int(rng.next() % 3) : 1 + Int(rng.next() % 64)
                events += decoder.feed(bytes[i..<min(bytes.count, i + n)])
                i += n
            }
            if let last = decoder.finish() { events.append(last) }
            #expect(events == expected, "trial \(trial)")
            if events != expected { break }
        }
    }

    @Test func inBandErrorAndMissingDoneAreFailures() {
        var o = StreamObserver()
        o.feed(Array((Self.chunk(#"{"content":"a"}"#) + #"data: {"error":{"message":"engine fell over"}}"# + "\n\n").utf8), at: .zero)
        o.finish(at: .zero)
        #expect(o.error == "engine fell over")
        #expect(!o.sawDone)
    }
}
