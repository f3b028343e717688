import Foundation

/// Rewrites an upstream OpenAI SSE stream for the client, event by event, and measures it.
///
/// - Restores the public model name in every chunk.
/// - Drops the usage-only chunk when the gateway (not the client) asked for it.
/// - Notes when the first and last token-bearing chunks passed (role-only chunks, keep-alives
///   and the usage chunk do not count, per the evidence metric definitions).
/// - Stops at malformed data or an in-band error event.
package struct StreamRelay: Sendable {
    package enum Stop: Sendable, Equatable {
        case malformed(String)
        /// The upstream sent `{"error":…}` inside the 200 stream; it was forwarded.
        case inBandError(String)
    }

    let publicModel: String
    /// The public model as a JSON string, as spliced into chunks.
    let publicModelJSON: [UInt8]
    let forwardUsage: Bool
    var decoder = SSEDecoder()
    /// Off: every chunk is parsed (the reference the scanning path is tested against).
    package var scanChunks = true
    /// Off: every byte goes through ``SSEDecoder`` (the reference the in-place framing is tested
    /// against). Also turned off for the rest of a stream at its first event that is not a
    /// one-line `data:` event or a comment ended by `\n\n` (CR line ends, `event:` fields,
    /// multi-line data): such streams are rare and the decoder takes every form.
    package var inPlaceFraming = true
    /// The start of an event cut off at the end of the last read (in-place framing).
    var pending: [UInt8] = []
    /// The framing of the stream's token chunks (see ``matchTemplate(_:)``).
    var template = Template()

    struct Template {
        var prefix: [UInt8] = []
        var suffix: [UInt8] = []
        /// Where the model value is: counted from the start when it comes before the content,
        /// else from the end.
        var model: (start: Int, end: Int)?
        var modelFromEnd = false

        mutating func learn(_ raw: UnsafeRawBufferPointer, content: Range<Int>, model: Range<Int>?) {
            prefix.removeAll(keepingCapacity: true)
            prefix.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[..<content.lowerBound]))
            suffix.removeAll(keepingCapacity: true)
            suffix.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[content.upperBound...]))
            modelFromEnd = model.map { $0.lowerBound >= content.upperBound } ?? false
            self.model = model.map { modelFromEnd ? (raw.count - $0.lowerBound, raw.count - $0.upperBound) : ($0.lowerBound, $0.upperBound) }
        }

        /// The model's range in a chunk of `count` bytes that matched.
        func model(in count: Int, content: Range<Int>) -> Range<Int>? {
            guard let model else { return nil }
            return modelFromEnd ? (count - model.start)..<(count - model.end) : model.start..<model.end
        }
    }

    package private(set) var tokenChunks = 0
    package private(set) var sawDone = false
    package private(set) var promptTokens: Int?
    package private(set) var completionTokens: Int?
    package private(set) var stop: Stop?

    package init(publicModel: String, forwardUsage: Bool) {
        self.publicModel = publicModel
        publicModelJSON = JSONValue.string(publicModel).serialized()
        self.forwardUsage = forwardUsage
    }

    /// Bytes to send to the client for these upstream bytes, and whether a token arrived.
    package mutating func process(_ bytes: some Sequence<UInt8>) -> (output: [UInt8], sawToken: Bool) {
        if let result = bytes.withContiguousStorageIfAvailable({ process(UnsafeRawBufferPointer($0)) }) { return result }
        return Array(bytes).withUnsafeBytes { process($0) }
    }

    /// Events that arrive in one read leave as one output; an event that needs no rewrite is
    /// copied as it came, and the common chunk is read in place (no string, no JSON tree).
    package mutating func process(_ bytes: UnsafeRawBufferPointer) -> (output: [UInt8], sawToken: Bool) {
        var out: [UInt8] = []
        guard stop == nil, !bytes.isEmpty else { return (out, false) }
        // Room for a longer model name in every event of a read.
        out.reserveCapacity(bytes.count + bytes.count / 8 + 64)
        var sawToken = false
        // The name is borrowed once per read, not retained once per event.
        publicModelJSON.withUnsafeBytes { model in
            if inPlaceFraming {
                if pending.isEmpty {
                    frame(bytes, model: model, into: &out, sawToken: &sawToken)
                } else {
                    var joined = pending
                    pending = []
                    joined.append(contentsOf: bytes)
                    joined.withUnsafeBytes { frame($0, model: model, into: &out, sawToken: &sawToken) }
                }
            } else {
                decode(bytes, model: model, into: &out, sawToken: &sawToken)
            }
        }
        return (out, sawToken)
    }

    /// Called at the end of the upstream body: flushes an unterminated last event.
    package mutating func finish() -> [UInt8] {
        var out: [UInt8] = []
        guard stop == nil else { return out }
        publicModelJSON.withUnsafeBytes { model in
            if !pending.isEmpty {
                var sawToken = false
                let rest = pending
                pending = []
                rest.withUnsafeBytes { decode($0, model: model, into: &out, sawToken: &sawToken) }
            }
            if stop == nil, let event = decoder.finish() { _ = handle(event, model: model, into: &out) }
        }
        return out
    }

    /// In-place framing: takes one-line `data:` events and comments ended by `\n\n` straight
    /// from `bytes`; keeps a cut-off event for the next read; hands anything else, and the rest
    /// of the stream, to the decoder.
    private mutating func frame(_ bytes: UnsafeRawBufferPointer, model: UnsafeRawBufferPointer, into out: inout [UInt8], sawToken: inout Bool) {
        let newline = UInt8(ascii: "\n")
        var i = 0
        while i < bytes.count, stop == nil {
            // The line's end; an event cut off here waits for the next read.
            guard let lineEnd = Self.index(of: newline, in: bytes, from: i), lineEnd + 1 < bytes.count else {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i...]))
                return
            }
            let line = UnsafeRawBufferPointer(rebasing: bytes[i..<lineEnd])
            guard bytes[lineEnd + 1] == newline, Self.index(of: UInt8(ascii: "\r"), in: line, from: 0) == nil else { break }
            if line.first == UInt8(ascii: ":") {
                out.append(contentsOf: ": keep-alive\n\n".utf8)
            } else if line.count >= 5, line[0] == UInt8(ascii: "d"), line[1] == UInt8(ascii: "a"), line[2] == UInt8(ascii: "t"),
                line[3] == UInt8(ascii: "a"), line[4] == UInt8(ascii: ":")
            {
                let start = line.count > 5 && line[5] == UInt8(ascii: " ") ? 6 : 5
                if handleData(UnsafeRawBufferPointer(rebasing: line[start...]), model: model, into: &out) { sawToken = true }
            } else {
                break
            }
            i = lineEnd + 2
        }
        guard i < bytes.count, stop == nil else { return }
        // Not a form taken in place: the decoder has the rest of the stream.
        inPlaceFraming = false
        decode(UnsafeRawBufferPointer(rebasing: bytes[i...]), model: model, into: &out, sawToken: &sawToken)
    }

    private mutating func decode(_ bytes: UnsafeRawBufferPointer, model: UnsafeRawBufferPointer, into out: inout [UInt8], sawToken: inout Bool) {
        for event in decoder.feed(bytes) {
            if handle(event, model: model, into: &out) { sawToken = true }
            if stop != nil { break }
        }
    }

    private static func index(of byte: UInt8, in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < bytes.count, let base = bytes.baseAddress, let found = memchr(base + start, Int32(byte), bytes.count - start) else {
            return nil
        }
        return base.distance(to: UnsafeRawPointer(found))
    }

    /// Returns true when the event carried a token.
    private mutating func handle(_ event: SSEEvent, model: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        if event.isComment {
            out.append(contentsOf: ": keep-alive\n\n".utf8)
            return false
        }
        var data = event.data
        return data.withUTF8 { handleData(UnsafeRawBufferPointer($0), model: model, into: &out) }
    }

    /// One event's data. Returns true when it carried a token.
    private mutating func handleData(_ bytes: UnsafeRawBufferPointer, model modelJSON: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        if bytes.count == 6, bytes[0] == UInt8(ascii: "["), bytes.elementsEqual("[DONE]".utf8) {
            sawDone = true
            emit(bytes, into: &out)
            return false
        }
        if scanChunks, let token = relayScanned(bytes, model: modelJSON, into: &out) { return token }
        var json: JSONValue
        do {
            json = try JSONParser.parse(bytes)
        } catch {
            stop = .malformed("upstream sent an event that is not JSON: \(error)")
            return false
        }
        guard json.isObject else {
            stop = .malformed("upstream sent an event that is not a JSON object")
            return false
        }
        if let error = json["error"], error != .null {
            stop = .inBandError(error["message"]?.stringValue ?? error.serializedString)
            emit(json.serialized(), into: &out)
            return false
        }
        var changed = false
        var isUsageOnly = false
        if let usage = json["usage"], usage.isObject {
            promptTokens = usage["prompt_tokens"]?.intValue ?? promptTokens
            completionTokens = usage["completion_tokens"]?.intValue ?? completionTokens
            let choices = json["choices"]?.arrayValue ?? []
            isUsageOnly = choices.isEmpty
            if !forwardUsage {
                if isUsageOnly { return false }
                json.remove("usage")
                changed = true
            }
        }
        let token = !isUsageOnly && TokenChunk.carriesToken(json)
        if token { tokenChunks += 1 }
        if let model = json["model"], model.stringValue != publicModel {
            json.set("model", .string(publicModel))
            changed = true
        }
        if changed { emit(json.serialized(), into: &out) } else { emit(bytes, into: &out) }
        return token
    }

    /// The common chunk (no usage, no error) without building it: validated by a scan, the model
    /// rewritten by splicing its value, token fields checked in place. Nil when the chunk needs
    /// the full treatment (usage, error, anything the scan does not take, malformed).
    private mutating func relayScanned(_ raw: UnsafeRawBufferPointer, model publicModel: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool? {
        let model: Range<Int>?
        let token: Bool
        if let content = matchTemplate(raw) {
            model = template.model(in: raw.count, content: content)
            token = true
        } else {
            guard let scanned = TokenChunk.scan(raw) else { return nil }
            model = scanned.model
            token = scanned.carriesToken
            if token, let content = scanned.content, content.count > 2 { template.learn(raw, content: content, model: model) }
        }
        if token { tokenChunks += 1 }
        out.append(contentsOf: "data: ".utf8)
        if let model, model.count != publicModel.count || memcmp(raw.baseAddress! + model.lowerBound, publicModel.baseAddress!, model.count) != 0 {
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[..<model.lowerBound]))
            out.append(contentsOf: publicModel)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[model.upperBound...]))
        } else {
            out.append(contentsOf: raw)
        }
        out.append(contentsOf: "\n\n".utf8)
        return token
    }

    /// The chunks of one stream share their framing: the bytes around the content of the last
    /// scanned token chunk (same id, created, model, index, finish_reason null). A chunk that has
    /// the same bytes before and after a valid JSON string is the same document with other
    /// content, so it needs no scan: its content string is returned (it carries a token, as the
    /// string is not empty).
    private func matchTemplate(_ raw: UnsafeRawBufferPointer) -> Range<Int>? {
        let p = template.prefix.count
        let q = template.suffix.count
        guard p > 0, raw.count >= p + q + 3, let base = raw.baseAddress else { return nil }
        let same = template.prefix.withUnsafeBytes { prefix in
            template.suffix.withUnsafeBytes { suffix in
                memcmp(base, prefix.baseAddress!, p) == 0 && (q == 0 || memcmp(base + raw.count - q, suffix.baseAddress!, q) == 0)
            }
        }
        let content = p..<(raw.count - q)
        guard same, raw[p] == UInt8(ascii: "\""), let (end, _) = JSONScan.skipString(raw, p), end == content.upperBound else { return nil }
        return content
    }

    private func emit(_ data: some Collection<UInt8>, into out: inout [UInt8]) {
        out.append(contentsOf: "data: ".utf8)
        out.append(contentsOf: data)
        out.append(contentsOf: "\n\n".utf8)
    }

    /// An SSE error event in OpenAI's error shape, for ending a stream that cannot go on.
    package static func errorEvent(_ error: APIError) -> [UInt8] {
        Array("data: \(error.json.serializedString)\n\n".utf8)
    }
}
