import SwitchyardBatch
import SwitchyardCore
import Testing

@Suite struct BatchParsingTests {
    static let body = Array(
        """
        preamble\r
        --XyZ\r
        Content-Disposition: form-data; name="purpose"\r
        \r
        batch\r
        --XyZ\r
        Content-Disposition: form-data; name="file"; filename="in.jsonl"\r
        Content-Type: application/octet-stream\r
        \r
        {"a":1}
        {"b":"--XyZ no CRLF before it"}\r
        \r
        --XyZ--\r
        epilogue
        """.utf8)

    static func parse(_ chunks: [[UInt8]]) throws -> [MultipartParser.Event] {
        var parser = MultipartParser(boundary: "XyZ")
        var events: [MultipartParser.Event] = []
        for chunk in chunks { try parser.feed(chunk) { events.append($0) } }
        #expect(parser.isComplete)
        // Data events merged: how the bytes were split must not matter.
        var merged: [MultipartParser.Event] = []
        for e in events {
            if case .data(let d) = e, case .data(let prev)? = merged.last {
                merged[merged.count - 1] = .data(prev + d)
            } else {
                merged.append(e)
            }
        }
        return merged
    }

    @Test func multipartPartsComeOutTheSameHoweverTheBytesAreSplit() throws {
        let whole = try Self.parse([Self.body])
        #expect(
            whole == [
                .part(["content-disposition": #"form-data; name="purpose""#]), .data(Array("batch".utf8)), .partEnd,
                .part(["content-disposition": #"form-data; name="file"; filename="in.jsonl""#, "content-type": "application/octet-stream"]),
                .data(Array("{\"a\":1}\n{\"b\":\"--XyZ no CRLF before it\"}\r\n".utf8)), .partEnd, .end,
            ])
        for cut in 1..<Self.body.count {
            #expect(try Self.parse([Array(Self.body[..<cut]), Array(Self.body[cut...])]) == whole, "split at \(cut)")
        }
        #expect(try Self.parse(Self.body.map { [$0] }) == whole, "byte by byte")
        #expect(MultipartParser.boundary(contentType: #"multipart/form-data; boundary="a b""#) == "a b")
        #expect(MultipartParser.boundary(contentType: "application/json") == nil)
        #expect(MultipartParser.disposition(#"form-data; name="file"; filename="x.jsonl""#) == ("file", "x.jsonl"))
    }

    @Test func everyProblemIsNamedWithItsLine() {
        var v = UploadValidator(models: ["m"], maxLines: 5)
        var splitter = LineSplitter(maxLineBytes: 1000)
        var stored: [FileLine] = []
        let text = """
            {"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}

            not json
            {"custom_id":"a","method":"GET","url":"/v1/images","body":{"model":"zz","stream":true}}
            {"method":"POST","url":"/v1/embeddings","body":{"model":"m"}}
            {"custom_id":"b","method":"POST","url":"/v1/embeddings","body":{"model":"m"}}\r
            {"custom_id":"c","method":"POST","url":"/v1/embeddings","body":{"model":"m"}}
            """
        for chunk in Array(text.utf8).chunked(7) {
            try? splitter.feed(chunk) { n, line in if let ok = v.check(n, line) { stored.append(ok) } }
        }
        try? splitter.finish { n, line in if let ok = v.check(n, line) { stored.append(ok) } }
        #expect(stored.map(\.number) == [1, 6], "line 2 is blank and skipped; 7 is past max_file_lines")
        #expect(stored[1].data.hasSuffix("}"), "the CR before LF is not part of the line")
        let message = v.message
        for expected in [
            "line 3: not valid JSON", "line 4: custom_id 'a' is used by an earlier line", "line 4: method must be POST, got GET",
            "line 4: url must be one of", "line 4: body.model 'zz' is not served here", "line 4: body.stream must not be true",
            "line 5: custom_id is missing", "line 7: the file has more than 5 requests",
        ] {
            #expect(message.contains(expected), "\(expected) in \(message)")
        }
        #expect(v.endpoints == ["/v1/chat/completions", "/v1/embeddings"])
        var long = LineSplitter(maxLineBytes: 4)
        #expect(throws: LineSplitter.TooLong.self) { try long.feed(Array("ab\nabcdef".utf8)) { _, _ in } }
    }

    @Test func batchesMoveOnAsTheirItemsFinish() {
        typealias L = BatchLifecycle
        #expect(L.step(.validating, counts: ItemCounts(pending: 3), now: 0, expiresAt: 10) == .start)
        #expect(L.step(.inProgress, counts: ItemCounts(pending: 1, done: 2), now: 0, expiresAt: 10) == .wait)
        #expect(L.step(.inProgress, counts: ItemCounts(done: 2, failed: 1), now: 0, expiresAt: 10) == .finalize)
        #expect(L.step(.inProgress, counts: ItemCounts(claimed: 1), now: 10, expiresAt: 10) == .expire)
        #expect(L.step(.inProgress, counts: ItemCounts(done: 1), now: 10, expiresAt: 10) == .finalize, "all done beats expiry")
        #expect(L.step(.finalizing, counts: ItemCounts(done: 1), now: 0, expiresAt: 10) == .finalize, "a gateway died while finalizing")
        #expect(L.step(.cancelling, counts: ItemCounts(pending: 5, claimed: 1), now: 0, expiresAt: 10) == .wait)
        #expect(L.step(.cancelling, counts: ItemCounts(pending: 5), now: 0, expiresAt: 10) == .finishCancel)
        #expect(L.step(.completed, counts: ItemCounts(), now: 0, expiresAt: 10) == .wait)

        #expect(L.outcome(status: 200, attempts: 1, maxAttempts: 3, backoff: .zero) == .done)
        #expect(L.outcome(status: 400, attempts: 1, maxAttempts: 3, backoff: .zero) == .failed, "a client error is final")
        #expect(L.outcome(status: 503, attempts: 1, maxAttempts: 3, backoff: .zero) == .retry(after: .milliseconds(500)))
        #expect(L.outcome(status: nil, attempts: 2, maxAttempts: 3, backoff: .seconds(1)) == .retry(after: .seconds(2)))
        #expect(L.outcome(status: 429, attempts: 3, maxAttempts: 3, backoff: .zero) == .failed, "attempts used up")
        #expect(L.windowSeconds("24h") == 86400)
        #expect(L.windowSeconds("8d") == nil)
    }
}

extension Array {
    func chunked(_ size: Int) -> [[Element]] { stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) } }
}
