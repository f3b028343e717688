import Testing

@testable import SwitchyardCore

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
        #"{"id":"c","model":"up","choices":[{"index":0,"delta":null,"text":null}]}"#,
        #"{"id":"c","model":"up","choices":[1,{"delta":{"content":"second"}}]}"#,
        #"{"id":"c","model":"up","choices":[{"delta":{"tool_calls":[{}]}}],"nested":{"deep":[[[{"a":"\"}"}]]]}}"#,
        #"{"id":"c","mod\u0065l":"up","choices":[{"delta":{"content":"escaped key"}}]}"#,
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
        #expect(whole.tokens == 10)
    }

    /// Streams in every framing an upstream may use, cut at every byte: in-place framing gives
    /// exactly the bytes, tokens and usage the decoder does.
    @Test(arguments: [
        "data: A\n\ndata: B\n\n: ping\n\ndata: U\n\ndata: [DONE]\n\n",
        "data:A\n\n:\n\ndata:B\n\ndata: [DONE]\n\n",
        "data: A\r\n\r\ndata: B\r\n\r\n",
        "data: A\n\nevent: message\ndata: B\n\ndata: A\n\n",
        "data: A\n\n\ndata: B\n\n",
        "data: A\n\ndata: B",
        "data: A\n\ndata: not json\n\ndata: B\n\n",
    ])
    func inPlaceFramingAgreesWithTheDecoderAtEverySplit(template: String) {
        let a = #"{"id":"c","model":"up","choices":[{"index":0,"delta":{"content":"tok"}}]}"#
        let b = #"{"id":"c","model":"pub","choices":[{"index":0,"delta":{"role":"assistant"}}]}"#
        let u = #"{"id":"c","model":"up","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#
        let stream = Array(
            template.replacingOccurrences(of: "A", with: a).replacingOccurrences(of: "B", with: b).replacingOccurrences(of: "U", with: u).utf8)
        func relay(_ parts: [ArraySlice<UInt8>], inPlace: Bool) -> (out: [UInt8], tokens: Int, completion: Int?, done: Bool, stopped: Bool) {
            var relay = StreamRelay(publicModel: "pub", forwardUsage: false)
            relay.inPlaceFraming = inPlace
            var out: [UInt8] = []
            for part in parts { out += relay.process(part).output }
            out += relay.finish()
            return (out, relay.tokenChunks, relay.completionTokens, relay.sawDone, relay.stop != nil)
        }
        let reference = relay([stream[...]], inPlace: false)
        #expect(!reference.out.isEmpty)
        for cut in 0...stream.count {
            let split = relay([stream[..<cut], stream[cut...]], inPlace: true)
            #expect(split.out == reference.out, "cut at \(cut)")
            #expect(split.tokens == reference.tokens && split.completion == reference.completion, "cut at \(cut)")
            #expect(split.done == reference.done && split.stopped == reference.stopped, "cut at \(cut)")
        }
    }

    /// The chunks of a stream share their framing, so the relay checks the bytes around the
    /// content instead of scanning: whatever the content, it decides as the parser does.
    @Test func chunksSharingTheirFramingAreRelayedAsTheParserDoes() throws {
        let before = #"{"id":"c","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{"content":"#
        let after = #"},"finish_reason":null}]}"#
        let modelLast = (#"{"id":"c","choices":[{"delta":{"content":"#, #"}}],"model":"up"}"#)
        let contents = [
            #""first""#, #""tok""#, #""with \"escapes\" \\ \u00e9 😀 and more than eight bytes""#, #""""#, #""x""#,
            #""bad \x escape""#, "\"raw\ttab\"", #""ok again""#, "null", #"["not", "a string"]"#, #""a" , "b""#, #""""#,
        ]
        for (head, tail) in [(before, after), modelLast] {
            var chunks = contents.map { head + $0 + tail }
            chunks.insert(#"{"id":"c","model":"up","choices":[{"index":0,"delta":{"content":"x"}}],"extra":1}"#, at: 3)
            for n in 1...chunks.count {
                let fast = run(Array(chunks.prefix(n)), scan: true, forwardUsage: false)
                let parsed = run(Array(chunks.prefix(n)), scan: false, forwardUsage: false)
                #expect(fast.tokens == parsed.tokens, "\(chunks[n - 1])")
                #expect((fast.stop == nil) == (parsed.stop == nil), "\(chunks[n - 1])")
                #expect(fast.events.count == parsed.events.count, "\(chunks[n - 1])")
                for (a, b) in zip(fast.events, parsed.events) where a != "[DONE]" || b != "[DONE]" {
                    #expect(try JSONParser.parse(a) == JSONParser.parse(b), "same JSON for \(chunks[n - 1])")
                    #expect(!a.contains(#""model":"up""#), "model restored in \(a)")
                }
            }
        }
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
