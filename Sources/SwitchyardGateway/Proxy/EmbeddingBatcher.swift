import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore
import SwitchyardScheduling
import Synchronization

/// What the merged upstream request answered, handed back to the requests it carried.
final class CoalescedSink: Sendable {
    struct Answer: Sendable {
        var status = 0
        var body = ByteBuffer()
        var contentType = "application/json"
        var backend: String?
        var attempts = 0
        var queueWait: Duration = .zero
        var promptTokens: Int?
        /// Inputs merged into the upstream request.
        var inputs = 1
    }

    private let answer = Mutex(Answer())
    let inputs: Int

    init(inputs: Int) {
        self.inputs = inputs
    }

    func store(_ update: (inout Answer) -> Void) { answer.withLock { update(&$0) } }
    var value: Answer { answer.withLock { $0 } }
}

/// Triton-style dynamic batching of single-input `/v1/embeddings` requests: an input waits at
/// most `batching.max_queue_delay` for others with the same options (model, encoding format,
/// dimensions…) and goes upstream in one request of up to `batching.max_batch_size` inputs,
/// through the normal lane scheduler, retries and fallback. Results are split back in order.
final class EmbeddingBatcher: Sendable {
    struct Item: Sendable {
        let request: ProxyRequest
        let input: JSONValue
        let arrival: ContinuousClock.Instant
        let reply: @Sendable (CoalescedSink.Answer, Int) -> Void
    }

    let model: String
    let maxDelay: Duration
    let maxBatchSize: Int
    private let origin = ContinuousClock.now
    /// One coalescer per set of request options; only identical options merge.
    private let batches = Mutex<[String: EmbeddingCoalescer<Item>]>([:])

    init(model: String, batching: BatchingConfig) {
        self.model = model
        maxDelay = batching.maxQueueDelay
        maxBatchSize = max(1, batching.maxBatchSize ?? 8)
    }

    /// The single input of a request that may be merged, or nil (several inputs, token arrays).
    static func singleInput(_ request: ProxyRequest) -> JSONValue? {
        guard request.endpoint == .embeddings, let input = request.body["input"] else { return nil }
        if input.stringValue != nil { return input }
        if let list = input.arrayValue, list.count == 1, list[0].stringValue != nil { return list[0] }
        return nil
    }

    /// Waits for the batch this request joins to be answered; returns this input's share.
    func submit(_ request: ProxyRequest, input: JSONValue, send: @escaping @Sendable ([Item]) async -> Void) async -> (CoalescedSink.Answer, Int) {
        var options = request.body
        options.set("input", .null)
        let key = options.serializedString
        return await withCheckedContinuation { continuation in
            let item = Item(request: request, input: input, arrival: .now) { answer, index in continuation.resume(returning: (answer, index)) }
            let (full, first) = batches.withLock { b -> ([Item]?, Bool) in
                var coalescer = b[key] ?? EmbeddingCoalescer(maxBatchSize: maxBatchSize, maxDelay: maxDelay)
                let first = coalescer.pendingCount == 0
                let full = coalescer.add(item, now: ContinuousClock.now - origin)
                b[key] = coalescer
                return (full, first)
            }
            if let full {
                Task { await send(full) }
            } else if first {
                Task {
                    try? await Task.sleep(for: maxDelay)
                    let due = batches.withLock { b -> [Item]? in
                        guard var coalescer = b[key] else { return nil }
                        let due = coalescer.flushDue(now: ContinuousClock.now - origin)
                        if coalescer.pendingCount == 0 { b.removeValue(forKey: key) } else { b[key] = coalescer }
                        return due
                    }
                    if let due { await send(due) }
                }
            }
        }
    }
}

extension Proxy {
    /// Sends a coalesced batch as one upstream request and answers each member with its part.
    func sendCoalesced(_ items: [EmbeddingBatcher.Item], logger: Logger) async {
        guard let first = items.first else { return }
        metrics.coalescedBatch(model: first.request.model, size: items.count)
        var merged = first.request
        merged.body.set("input", .array(items.map(\.input)))
        merged.coalesced = CoalescedSink(inputs: items.count)
        merged.requestID = first.request.requestID + "-batch"
        _ = await handle(merged, channel: nil, logger: logger)
        var answer = merged.coalesced!.value
        answer.inputs = items.count
        for (i, item) in items.enumerated() { item.reply(answer, i) }
    }

    /// One member's response: its embedding (index 0), the public model name, its share of usage.
    func answerCoalesced(
        _ request: ProxyRequest, arrival: ContinuousClock.Instant, answer: CoalescedSink.Answer, index: Int, logger: Logger
    ) -> Response {
        let count = answer.inputs
        var record = Record(
            start: arrival,
            request: ProxyRequestSummary(
                id: request.requestID, tenant: request.tenant, model: request.model,
                lane: request.lane, stream: false), model: request.model)
        record.backend = answer.backend
        record.attempts = answer.attempts
        record.queueWait = answer.queueWait
        record.status = answer.status
        var out = answer.body
        if (200..<300).contains(answer.status), var json = try? JSONParser.parse(answer.body.readableBytesView),
            let data = json["data"]?.arrayValue
        {
            let mine = data.first { $0["index"]?.intValue == index } ?? (index < data.count ? data[index] : nil)
            guard var entry = mine else {
                return finish(error: .upstream("The backend answered \(data.count) embeddings for \(count) inputs."), record: &record, logger: logger)
            }
            entry.set("index", .number(0))
            json.set("data", .array([entry]))
            json.set("model", .string(request.model))
            if let total = answer.promptTokens {
                // The backend counts the batch; each input is charged its share (rounded).
                let share = total / count + (index < total % count ? 1 : 0)
                record.promptTokens = share
                json.set("usage", .object([("prompt_tokens", .number(share)), ("total_tokens", .number(share))]))
            }
            out = ByteBuffer(bytes: json.serialized())
        }
        var headers = HTTPFields()
        headers[.contentType] = answer.contentType
        headers[GatewayHeaders.coalesced] = String(count)
        addGatewayHeaders(&headers, record: record)
        log(record, logger: logger)
        return Response(status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: out))
    }
}
