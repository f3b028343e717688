import Testing

@testable import SwitchyardCore

@Suite struct SSEDecoderTests {
    static let stream = Array(
        """
        : keep-alive\n\ndata: {"a":1}\n\nevent: x\r\ndata: line1\r\ndata: line2\r\n\r\ndata: [DONE]\n\n
        """.utf8)

    static func decode(_ bytes: [UInt8], splits: [Int]) -> [SSEEvent] {
        var decoder = SSEDecoder()
        var events: [SSEEvent] = []
        var start = 0
        for cut in splits.sorted() + [bytes.count] where cut >= start {
            events += decoder.feed(bytes[start..<cut])
            start = cut
        }
        if let last = decoder.finish() { events.append(last) }
        return events
    }

    @Test func parsesEventsCommentsAndMultiLineData() {
        let events = Self.decode(Self.stream, splits: [])
        #expect(
            events == [
                SSEEvent(data: "", isComment: true),
                SSEEvent(data: #"{"a":1}"#),
                SSEEvent(event: "x", data: "line1\nline2"),
                SSEEvent(data: "[DONE]"),
            ])
    }

    /// Property: any split of a valid stream parses to the same events.
    @Test func anySplitGivesTheSameEvents() {
        let expected = Self.decode(Self.stream, splits: [])
        var rng = SplitMix64(seed: 42)
        for _ in 0..<500 {
            let cuts = (0..<Int.random(in: 1...8, using: &rng)).map { _ in Int.random(in: 0...Self.stream.count, using: &rng) }
            #expect(Self.decode(Self.stream, splits: cuts) == expected, "splits \(cuts)")
        }
        // Every single-cut position, and byte-at-a-time.
        for cut in 0...Self.stream.count {
            #expect(Self.decode(Self.stream, splits: [cut]) == expected)
        }
        #expect(Self.decode(Self.stream, splits: Array(0...Self.stream.count)) == expected)
    }

    @Test func unterminatedLastEventIsFlushedAtFinish() {
        var decoder = SSEDecoder()
        #expect(decoder.feed(Array("data: tail".utf8)).isEmpty)
        #expect(decoder.finish() == SSEEvent(data: "tail"))
    }
}
