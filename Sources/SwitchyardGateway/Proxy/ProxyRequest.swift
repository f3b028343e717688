import SwitchyardCore
import SwitchyardScheduling

/// The OpenAI endpoints the gateway proxies.
package enum Endpoint: String, Sendable, CaseIterable {
    case chatCompletions = "/chat/completions"
    case completions = "/completions"
    case embeddings = "/embeddings"
}

/// A validated client request: the parsed body plus what routing needs from it.
package struct ProxyRequest: Sendable {
    package let endpoint: Endpoint
    package var body: JSONValue
    package let model: String
    package let stream: Bool
    /// The client asked for `stream_options.include_usage`.
    package let clientWantsUsage: Bool
    package var requestID: String
    /// Who is asking (from the API key), `anonymous` without tenants configured.
    package var tenant = "anonymous"
    /// What the tenant's quotas charged for it at admission.
    package var quota: QuotaBook.Grant?
    /// It holds one of its tenant's concurrent-stream slots.
    package var streamSlot = false

    /// From `x-switchyard-lane`, else `streaming` for `"stream": true`, else `realtime`.
    package var lane: String
    /// From `x-switchyard-timeout-ms`: may only shorten the lane's deadline.
    package var timeout: Duration?
    /// Set on a merged embeddings request: its answer goes here, for the requests it carries.
    var coalesced: CoalescedSink?

    /// Prompt size estimate for scheduling before the backend's `usage` is known: about four
    /// bytes per token of text, plus a few tokens of chat template per message.
    package var estimatedInputTokens: Int {
        var bytes = 0
        var messages = 0
        switch endpoint {
        case .chatCompletions:
            for message in body["messages"]?.arrayValue ?? [] {
                messages += 1
                if let content = message["content"]?.stringValue {
                    bytes += content.utf8.count
                } else if let parts = message["content"]?.arrayValue {
                    for part in parts { bytes += part["text"]?.stringValue?.utf8.count ?? 0 }
                }
            }
        case .completions:
            bytes = body["prompt"]?.stringValue?.utf8.count ?? body["prompt"]?.serializedString.utf8.count ?? 0
        case .embeddings:
            bytes = body["input"]?.stringValue?.utf8.count ?? body["input"]?.serializedString.utf8.count ?? 0
        }
        return max(1, (bytes + 3) / 4 + 4 * messages)
    }

    /// `max_completion_tokens` / `max_tokens`, else a typical answer length (charged up front by
    /// the fair scheduler and reconciled with `usage`). Zero for embeddings.
    package var maxOutputTokens: Int {
        if endpoint == .embeddings { return 0 }
        for key in ["max_completion_tokens", "max_tokens"] {
            if let n = body[key]?.intValue, n > 0 { return n }
        }
        return Self.defaultOutputTokens
    }

    package static let defaultOutputTokens = 256

    /// Validates the body of a request to `endpoint`; the error names the offending field.
    package static func parse(endpoint: Endpoint, bytes: some Collection<UInt8>, requestID: String) throws(APIError) -> ProxyRequest {
        let body: JSONValue
        do {
            body = try JSONParser.parse(bytes)
        } catch {
            throw APIError.invalidRequest("We could not parse the JSON body of your request: \(error).", code: "invalid_json")
        }
        guard body.isObject else {
            throw APIError.invalidRequest("The request body must be a JSON object.", code: "invalid_json")
        }
        guard let modelValue = body["model"] else {
            throw APIError.invalidRequest("Missing required parameter: 'model'.", param: "model", code: "missing_required_parameter")
        }
        guard let model = modelValue.stringValue, !model.isEmpty else {
            throw APIError.invalidRequest("Invalid type for 'model': expected a non-empty string.", param: "model", code: "invalid_type")
        }
        switch endpoint {
        case .chatCompletions:
            guard let messages = body["messages"] else {
                throw APIError.invalidRequest("Missing required parameter: 'messages'.", param: "messages", code: "missing_required_parameter")
            }
            guard let list = messages.arrayValue, !list.isEmpty else {
                throw APIError.invalidRequest("Invalid 'messages': expected a non-empty array.", param: "messages", code: "invalid_type")
            }
            for (i, message) in list.enumerated() {
                guard message.isObject, message["role"]?.stringValue != nil else {
                    throw APIError.invalidRequest(
                        "Invalid 'messages[\(i)]': expected an object with a string 'role'.",
                        param: "messages[\(i)]", code: "invalid_type")
                }
            }
        case .completions:
            guard let prompt = body["prompt"] else {
                throw APIError.invalidRequest("Missing required parameter: 'prompt'.", param: "prompt", code: "missing_required_parameter")
            }
            guard prompt.stringValue != nil || prompt.arrayValue != nil else {
                throw APIError.invalidRequest("Invalid type for 'prompt': expected a string or an array.", param: "prompt", code: "invalid_type")
            }
        case .embeddings:
            guard let input = body["input"] else {
                throw APIError.invalidRequest("Missing required parameter: 'input'.", param: "input", code: "missing_required_parameter")
            }
            guard input.stringValue != nil || input.arrayValue != nil else {
                throw APIError.invalidRequest("Invalid type for 'input': expected a string or an array.", param: "input", code: "invalid_type")
            }
        }
        var stream = false
        if let value = body["stream"], value != .null {
            guard let flag = value.boolValue else {
                throw APIError.invalidRequest("Invalid type for 'stream': expected a boolean.", param: "stream", code: "invalid_type")
            }
            stream = flag
        }
        if stream, endpoint == .embeddings {
            throw APIError.invalidRequest("Streaming is not supported for embeddings.", param: "stream", code: "invalid_value")
        }
        var wantsUsage = false
        if let options = body["stream_options"], options != .null {
            guard options.isObject else {
                throw APIError.invalidRequest("Invalid type for 'stream_options': expected an object.", param: "stream_options", code: "invalid_type")
            }
            if let include = options["include_usage"], include != .null {
                guard let flag = include.boolValue else {
                    throw APIError.invalidRequest(
                        "Invalid type for 'stream_options.include_usage': expected a boolean.",
                        param: "stream_options.include_usage", code: "invalid_type")
                }
                wantsUsage = flag
            }
        }
        return ProxyRequest(
            endpoint: endpoint, body: body, model: model, stream: stream, clientWantsUsage: wantsUsage, requestID: requestID,
            lane: stream ? "streaming" : "realtime")
    }

    /// The body sent to a backend: its model name, and usage always requested on streams so the
    /// gateway knows real token counts. Every other field passes through untouched.
    package func upstreamBody(model upstreamModel: String) -> [UInt8] {
        var body = self.body
        body.set("model", .string(upstreamModel))
        if stream {
            var options = body["stream_options"] ?? .object([])
            if !options.isObject { options = .object([]) }
            options.set("include_usage", .bool(true))
            body.set("stream_options", options)
        }
        return body.serialized()
    }

    /// Hash of the prompt's first `chars` characters (messages' text contents, or the prompt).
    package func affinityKey(prefixChars chars: Int) -> UInt64 {
        var text = ""
        func add(_ s: String) {
            guard text.count < chars else { return }
            text += s
        }
        switch endpoint {
        case .chatCompletions:
            for message in body["messages"]?.arrayValue ?? [] {
                add(message["role"]?.stringValue ?? "")
                if let content = message["content"]?.stringValue {
                    add(content)
                } else if let parts = message["content"]?.arrayValue {
                    for part in parts { add(part["text"]?.stringValue ?? "") }
                }
                if text.count >= chars { break }
            }
        case .completions:
            add(body["prompt"]?.stringValue ?? body["prompt"]?.serializedString ?? "")
        case .embeddings:
            add(body["input"]?.stringValue ?? body["input"]?.serializedString ?? "")
        }
        return Balancer.prefixHash(text.prefix(chars).utf8)
    }
}
