import SwitchyardCore

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
    var scanChunks = true

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
        var out: [UInt8] = []
        var sawToken = false
        guard stop == nil else { return (out, false) }
        for event in decoder.feed(bytes) {
            if handle(event, into: &out) { sawToken = true }
            if stop != nil { break }
        }
        return (out, sawToken)
    }

    /// Called at the end of the upstream body: flushes an unterminated last event.
    package mutating func finish() -> [UInt8] {
        var out: [UInt8] = []
        if stop == nil, let event = decoder.finish() { _ = handle(event, into: &out) }
        return out
    }

    /// Returns true when the event carried a token.
    private mutating func handle(_ event: SSEEvent, into out: inout [UInt8]) -> Bool {
        if event.isComment {
            out.append(contentsOf: ": keep-alive\n\n".utf8)
            return false
        }
        if event.data == "[DONE]" {
            sawDone = true
            emit(event.data, into: &out)
            return false
        }
        let bytes = Array(event.data.utf8)
        if scanChunks, let token = relayScanned(bytes, into: &out) { return token }
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
            emit(json.serializedString, into: &out)
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
        emit(changed ? json.serializedString : event.data, into: &out)
        return token
    }

    /// The common chunk (no usage, no error) without building it: validated by a scan, the model
    /// rewritten by splicing its value, token fields checked in place. Nil when the chunk needs
    /// the full treatment (usage, error, anything the scan does not take, malformed).
    private mutating func relayScanned(_ bytes: [UInt8], into out: inout [UInt8]) -> Bool? {
        bytes.withUnsafeBytes { raw -> Bool? in
            guard let scanned = TokenChunk.scan(raw) else { return nil }
            if scanned.carriesToken { tokenChunks += 1 }
            out.append(contentsOf: "data: ".utf8)
            if let model = scanned.model, !raw[model].elementsEqual(publicModelJSON) {
                out.append(contentsOf: raw[..<model.lowerBound])
                out.append(contentsOf: publicModelJSON)
                out.append(contentsOf: raw[model.upperBound...])
            } else {
                out.append(contentsOf: raw)
            }
            out.append(contentsOf: "\n\n".utf8)
            return scanned.carriesToken
        }
    }

    private mutating func emit(_ data: String, into out: inout [UInt8]) {
        out.append(contentsOf: "data: ".utf8)
        out.append(contentsOf: data.utf8)
        out.append(contentsOf: "\n\n".utf8)
    }

    /// An SSE error event in OpenAI's error shape, for ending a stream that cannot go on.
    package static func errorEvent(_ error: APIError) -> [UInt8] {
        Array("data: \(error.json.serializedString)\n\n".utf8)
    }
}
