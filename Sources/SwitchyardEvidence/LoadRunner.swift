import AsyncHTTPClient
import NIOCore
import Synchronization
import SwitchyardCore

/// What `switchyard bench` sends and how.
public struct BenchOptions: Sendable {
    public enum Load: Sendable, Equatable {
        /// Open loop: requests go at precomputed times whatever the server does.
        case rate(Double, ArrivalProcess)
        /// Closed loop: this many clients, each sending its next request when the last ended.
        case concurrency(Int)
    }

    public enum API: String, Sendable, CaseIterable { case chat, completions }

    /// The server's OpenAI base URL, e.g. `http://127.0.0.1:8080/v1`.
    public var baseURL: String
    public var model: String
    public var api: API = .chat
    public var load: Load
    public var duration: Duration?
    public var requests: Int?
    /// Requests scheduled before this are sent but left out of the statistics.
    public var warmup: Duration = .zero
    public var seed: UInt64 = 1
    public var workload = Workload()
    public var stream = true
    /// Sent as `x-switchyard-lane`; also the lane name in the records ("default" without).
    public var lane: String?
    public var apiKey: String?
    public var requestTimeout: Duration = .seconds(600)

    public init(baseURL: String, model: String, load: Load) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.model = model
        self.load = load
    }

    public var laneLabel: String { lane ?? "default" }
}

/// Live counters for the progress line.
public struct BenchProgress: Sendable {
    public var elapsed: Duration
    public var sent: Int
    public var inFlight: Int
    public var completed: Int
    public var errors: Int
    /// Completed requests per second since the start.
    public var achievedRate: Double
    public var ttftP50: Double?
    public var ttftP99: Double?

    public var line: String {
        func ms(_ v: Double?) -> String { v.map { String(format: "%.0fms", $0 * 1000) } ?? "-" }
        return String(format: "%6.1fs  sent %d  in flight %d  done %d  errors %d  %.1f req/s  TTFT p50 %@ p99 %@",
                      elapsed.seconds, sent, inFlight, completed, errors, achievedRate, ms(ttftP50), ms(ttftP99))
    }
}

/// Sends the load of ``BenchOptions`` and measures each request per reference/metrics.md.
public final class LoadRunner: Sendable {
    public let options: BenchOptions
    let client: HTTPClient
    private let origin: ContinuousClock.Instant
    private let counters = Mutex(Counters())

    struct Counters {
        var sent = 0
        var inFlight = 0
        var completed = 0
        var errors = 0
        var ttfts: [Double] = []
        var records: [RequestRecord] = []
        /// Next request index of the closed loop.
        var nextIndex = 0
    }

    public init(options: BenchOptions, client: HTTPClient) {
        self.options = options
        self.client = client
        origin = .now
    }

    var now: Duration { ContinuousClock.now - origin }

    public func progress() -> BenchProgress {
        let elapsed = now
        return counters.withLock { c in
            let sorted = c.ttfts.sorted()
            return BenchProgress(elapsed: elapsed, sent: c.sent, inFlight: c.inFlight, completed: c.completed, errors: c.errors,
                                 achievedRate: elapsed > .zero ? Double(c.completed) / elapsed.seconds : 0,
                                 ttftP50: sorted.isEmpty ? nil : MetricSummary.nearestRank(sorted, 0.5),
                                 ttftP99: sorted.isEmpty ? nil : MetricSummary.nearestRank(sorted, 0.99))
        }
    }

    /// Runs the whole load; returns every request's record, in id order.
    public func run() async -> [RequestRecord] {
        switch options.load {
        case .rate(let rate, let process):
            let schedule = Schedule.make(rate: rate, process: process, seed: options.seed, count: options.requests, duration: options.duration)
            await withTaskGroup(of: Void.self) { group in
                for (i, offset) in schedule.enumerated() {
                    try? await Task.sleep(until: origin + offset, clock: .continuous)
                    group.addTask { await self.send(i, scheduled: offset) }
                }
            }
        case .concurrency(let clients):
            let end = options.duration.map { origin + $0 }
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<max(1, clients) {
                    group.addTask {
                        while true {
                            if let end, ContinuousClock.now >= end { return }
                            let i = self.counters.withLock { c in
                                defer { c.nextIndex += 1 }
                                return c.nextIndex
                            }
                            if let limit = self.options.requests, i >= limit { return }
                            await self.send(i, scheduled: self.now)
                        }
                    }
                }
            }
        }
        return counters.withLock { $0.records }.sorted { $0.id < $1.id }
    }

    func body(for index: Int) -> ByteBuffer {
        let (prompt, maxTokens) = options.workload.request(index, seed: options.seed)
        var fields: [(String, JSONValue)] = [("model", .string(options.model))]
        switch options.api {
        case .chat: fields.append(("messages", .array([.object([("role", .string("user")), ("content", .string(prompt))])])))
        case .completions: fields.append(("prompt", .string(prompt)))
        }
        fields.append(("max_tokens", .number(maxTokens)))
        if options.workload.ignoreEOS { fields.append(("ignore_eos", .bool(true))) }
        if options.stream {
            fields.append(("stream", .bool(true)))
            fields.append(("stream_options", .object([("include_usage", .bool(true))])))
        }
        return ByteBuffer(bytes: JSONValue.object(fields).serialized())
    }

    func send(_ index: Int, scheduled: Duration) async {
        var record = RequestRecord(id: index, lane: options.laneLabel, tSched: scheduled)
        record.warmup = scheduled < options.warmup
        var request = HTTPClientRequest(url: options.baseURL + (options.api == .chat ? "/chat/completions" : "/completions"))
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        if let lane = options.lane { request.headers.add(name: "x-switchyard-lane", value: lane) }
        if let key = options.apiKey { request.headers.add(name: "authorization", value: "Bearer \(key)") }
        request.body = .bytes(body(for: index))
        counters.withLock {
            $0.sent += 1
            $0.inFlight += 1
        }
        record.tSend = now
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(Int64(options.requestTimeout.seconds * 1e9)))
            record.status = Int(response.status.code)
            let isStream = response.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true
            if record.status == 200, isStream {
                var observer = StreamObserver()
                for try await chunk in response.body { observer.feed(chunk.readableBytesView, at: now) }
                observer.finish(at: now)
                record.tFirst = observer.first
                record.tLast = observer.last
                record.gaps = observer.gaps
                record.outputTokensClient = observer.chunks
                record.outputTokensServer = observer.usageCompletionTokens
                record.promptTokens = observer.usagePromptTokens
                if let error = observer.error {
                    record.error = "in-band error after 200: \(error)"
                } else if let bad = observer.malformed {
                    record.error = "malformed event: \(bad)"
                } else if !observer.sawDone {
                    record.error = "stream ended without [DONE]"
                } else if observer.first == nil {
                    record.error = "no token in the stream"
                }
            } else {
                let bytes = try await response.body.collect(upTo: 64 << 20)
                let end = now
                let json = try? JSONParser.parse(bytes.readableBytesView)
                if record.status == 200 {
                    record.tFirst = end
                    record.tLast = end
                    record.outputTokensServer = json?["usage"]?["completion_tokens"]?.intValue
                    record.promptTokens = json?["usage"]?["prompt_tokens"]?.intValue
                } else {
                    let message = json?["error"]?["message"]?.stringValue ?? String(buffer: bytes).prefix(200).description
                    record.error = "HTTP \(record.status ?? 0): \(message)"
                }
            }
        } catch {
            record.error = "\(error)"
        }
        let done = record
        counters.withLock { c in
            c.inFlight -= 1
            c.completed += 1
            if !done.succeeded { c.errors += 1 }
            if let ttft = done.ttft, done.succeeded, !done.warmup { c.ttfts.append(ttft) }
            c.records.append(done)
        }
    }
}

import Foundation
