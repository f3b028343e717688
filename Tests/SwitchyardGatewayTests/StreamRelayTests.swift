import NIOCore
import SwitchyardCore
import Testing

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

    func run(
        _ chunks: [String], scan: Bool, forwardUsage: Bool
    ) -> (events: [String], tokens: Int, prompt: Int?, completion: Int?, stop: StreamRelay.Stop?) {
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
        #expect(
            run([#"{"id":"c","model":"up","choices":[{"delta":{"content":tru}}]}"#], scan: true, forwardUsage: false).stop.map {
                if case .malformed = $0 { true } else { false }
            } == true)
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

/// Whole bodies get their model rewritten in place: the fast path sends a client's request to
/// its backend that way, and restores the public name in the answer.
@Suite struct WholeAnswerTests {
    static func bytes(_ buffer: ByteBuffer) -> String { String(buffer: buffer) }

    @Test func settingTheModelKeepsEveryOtherByte() throws {
        let body = #"{ "model" : "pub", "messages":[{"role":"user","content":"h\u00e9 \"x\" 😀"}], "n": 2, "vendor_extra": {"top_k": 5} }"#
        let set = try #require(WholeAnswer.settingModel(of: ByteBuffer(string: body), to: "up/model-7b"))
        #expect(Self.bytes(set) == body.replacingOccurrences(of: #""pub""#, with: #""up/model-7b""#))
        // The same document the router path sends (it rebuilds the body).
        let request = try ProxyRequest.parse(endpoint: .chatCompletions, bytes: Array(body.utf8), requestID: "r")
        #expect(try JSONParser.parse(Array(Self.bytes(set).utf8)) == JSONParser.parse(request.upstreamBody(model: "up/model-7b")))
    }

    @Test func aModelAlreadyRightIsNotCopied() throws {
        let body = ByteBuffer(string: #"{"model":"same","prompt":"p"}"#)
        let set = try #require(WholeAnswer.settingModel(of: body, to: "same"))
        #expect(set == body)
    }

    @Test(arguments: [
        #"{"mod\u0065l":"pub","prompt":"p"}"#,  // an escaped key: only the parser can tell
        #"{"prompt":"no model"}"#,
        #"{"model":"pub"} trailing"#,
        #"["model"]"#,
    ])
    func whatTheScanCannotTellFallsBack(body: String) {
        #expect(WholeAnswer.settingModel(of: ByteBuffer(string: body), to: "up") == nil)
    }

    @Test func answersGetThePublicNameAndTheirUsageRead() {
        let answer = #"{"id":"x","model":"up","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":10}}"#
        let restored = WholeAnswer.restore(ByteBuffer(string: answer), publicModel: "pub")
        #expect(Self.bytes(restored.body) == answer.replacingOccurrences(of: #""up""#, with: #""pub""#))
        #expect(restored.promptTokens == 12 && restored.completionTokens == 10)
        // Usage keys written with escapes, or counts written as floats: read as the parser reads them.
        let odd = WholeAnswer.restore(
            ByteBuffer(string: #"{"model":"pub","usage":{"prompt_tok\u0065ns":7,"completion_tokens":3.0}}"#), publicModel: "pub")
        #expect(odd.promptTokens == 7 && odd.completionTokens == 3)
    }
}
