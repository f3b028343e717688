import Testing
import SwitchyardCore
@testable import SwitchyardGateway

/// The relay scans common chunks instead of parsing them: it must decide and emit exactly what
/// the parsing path does.
@Suite struct StreamRelayTests {
    static let chunks: [String] = [
        #"{"id":"c","object":"chat.completion.chunk","model":"up","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#,
        #"{"id":"c","model":"up","choices":[{"index":0,"delta":{"content":"tok \"quoted\" \u00e9 😀"},"finish_reason":null}]}"#,
        #"{"id":"c","model":"pub","choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]}"#,
        #"{"id":"c","model":"up","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"think"}}]}"#,
        #"{"id":"c","model":"up","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"content\":\"x\"}"}}]}}]}"#,
        #"{"id":"c","model":"up","choices":[{"index":0,"delta":{"tool_calls":[ ]}}]}"#,
        #"{"id":"c","model":"up","choices":[{"index":0,"text":"completion text","logprobs":null}]}"#,
        #"{"id":"c","model":"up","choices":[{"index":0,"text":""}],"system_fingerprint":"fp_1"}"#,
        #"{"id":"c","choices":[{"delta":{"content":"no model field"}}],"usage":null}"#,
        #"{ "id" : "c" , "model" : "up" , "choices" : [ { "delta" : { "content" : "spaced" } } ] }"#,
        #"{"id":"c","model":"up","choices":"not an array"}"#,
        #"{"id":"c","model":"up","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#,
        #"{"id":"c","model":"up","choices":[{"delta":{"content":"with usage"}}],"usage":{"prompt_tokens":5,"completion_tokens":4}}"#,
    ]

    func run(_ chunks: [String], scan: Bool, forwardUsage: Bool) -> (events: [String], tokens: Int, prompt: Int?, completion: Int?, stop: StreamRelay.Stop?) {
        var relay = StreamRelay(publicModel: "pub", forwardUsage: forwardUsage)
        relay.scanChunks = scan
        var out: [UInt8] = []
        for chunk in chunks + ["[DONE]"] { out += relay.process(Array("data: \(chunk)\n\n".utf8)).output }
        return (TestEvents.split(out), relay.tokenChunks, relay.promptTokens, relay.completionTokens, relay.stop)
    }

    @Test(arguments: [false, true]) func scanningAgreesWithParsing(forwardUsage: Bool) throws {
        for chunk in Self.chunks {
            let scanned = run([chunk], scan: true, forwardUsage: forwardUsage)
            let parsed = run([chunk], scan: false, forwardUsage: forwardUsage)
            #expect(scanned.tokens == parsed.tokens, "\(chunk)")
            #expect(scanned.prompt == parsed.prompt && scanned.completion == parsed.completion, "\(chunk)")
            #expect(scanned.stop == parsed.stop)
            #expect(scanned.events.count == parsed.events.count, "\(chunk)")
            for (a, b) in zip(scanned.events, parsed.events) where a != "[DONE]" || b != "[DONE]" {
                #expect(try JSONParser.parse(a) == JSONParser.parse(b), "same JSON for \(chunk)")
                #expect(!a.contains(#""model":"up""#), "model restored")
            }
        }
        let whole = run(Self.chunks, scan: true, forwardUsage: forwardUsage)
        #expect(whole.tokens == run(Self.chunks, scan: false, forwardUsage: forwardUsage).tokens)
        #expect(whole.tokens == 7)
    }

    @Test func anUnchangedChunkGoesOutByteForByte() {
        let chunk = #"{"id":"c","model":"pub","choices":[{"delta":{"content":"x"}}],"n":1.50}"#
        #expect(run([chunk], scan: true, forwardUsage: false).events.first == chunk)
    }

    @Test func malformedAndErrorsStillStopTheStream() {
        #expect(run([#"{"id":"c","model":"up","choices":[{"delta":{"content":tru}}]}"#], scan: true, forwardUsage: false).stop.map { if case .malformed = $0 { true } else { false } } == true)
        let error = run([#"{"error":{"message":"boom"}}"#], scan: true, forwardUsage: false)
        #expect(error.stop == .inBandError("boom"))
    }
}

enum TestEvents {
    /// The `data:` payloads of SSE output (the [DONE] marker included).
    static func split(_ bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).components(separatedBy: "\n\n").compactMap { block in
            block.hasPrefix("data: ") ? String(block.dropFirst(6)) : nil
        }
    }
}
