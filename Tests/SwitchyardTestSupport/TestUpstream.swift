import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SwitchyardCore
import SwitchyardEvidence
import Synchronization

@testable import SwitchyardGateway

/// An in-process OpenAI-style upstream that misbehaves on demand. The first path segment names
/// the behaviour, so one server hosts many "backends": `http://127.0.0.1:PORT/<behaviour>/v1`.
///
/// - `ok`: answers normally (JSON, or an SSE stream of `tokens` chunks), echoing the request body.
/// - `status503` / `status429`: the status with `Retry-After: 1`.
/// - `reset-before`: reads the request, then resets the connection without a response.
/// - `reset-mid`: streams two token chunks, then resets.
/// - `malformed`: one good chunk, then `data: not json`.
/// - `inband-error`: one good chunk, then an `{"error":…}` event.
/// - `trickle`: one chunk, then silence for 5 s.
/// - `slow-head`: waits 5 s before answering.
/// - `endless`: a chunk every 20 ms for 10 s (to watch cancellation).
/// - `once-per-connection`: answers the first request on a keep-alive connection, resets the
///   connection on the next one (a server that dropped an idle connection).
///
/// Any request may carry `"tag"` (recorded in arrival order) and `"hold": true` (waits for
/// ``TestUpstream/release()`` before answering).
package struct TestUpstreamContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    package let channel: any Channel
    package init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

package final class TestUpstream: Sendable {
    /// What the server says about its capacity, at its origin (every behaviour shares it).
    package enum Engine: Sendable {
        /// No info endpoint; `/metrics` without a waiting queue (capacity unknown).
        case plain
        /// llama.cpp: `GET /props` → `total_slots`.
        case llamacpp(slots: Int)
        /// SGLang: `GET /get_server_info` → `max_running_requests` (in `internal_states`).
        case sglang(slots: Int)
        /// TGI: `GET /info` → `max_concurrent_requests`.
        case tgi(slots: Int)
        /// vLLM-like: no info endpoint; `/metrics` reports requests beyond `runs` as waiting.
        case queueing(runs: Int)
        /// Odd answers: `/props` is not JSON, `/get_server_info` says 0 slots, `/info` hangs.
        case odd
    }

    package let engine: Engine
    /// Chat and completion requests being answered right now.
    private let active = Atomic<Int>(0)
    private let counts = Mutex<[String: Int]>([:])
    private let closedStreams = Atomic<Int>(0)
    private let lastBody = Mutex<JSONValue?>(nil)
    private let tags = Mutex<[String]>([])
    private let perConnection = Mutex<[ObjectIdentifier: Int]>([:])
    /// Requests with `"hold": true` wait here until ``release()``.
    let gate = OneShotSignal()
    /// Requests with `"hold2": true` wait here until ``releaseSecond()``.
    let gate2 = OneShotSignal()

    package init(engine: Engine = .plain) {
        self.engine = engine
    }

    /// What `/metrics` reports as `llamacpp:kv_cache_usage_ratio`.
    package let kvCacheUsage = Mutex<Double>(0)

    /// Inputs per upstream embeddings request, in arrival order.
    package let embeddingBatches = Mutex<[Int]>([])

    /// `tag` fields of the requests received, in arrival order.
    package var arrivals: [String] { tags.withLock { $0 } }
    package func release() { gate.fire() }
    package func releaseSecond() { gate2.fire() }

    package func count(_ behaviour: String) -> Int { counts.withLock { $0[behaviour] ?? 0 } }
    package var streamsEndedByClient: Int { closedStreams.load(ordering: .relaxed) }
    package var lastRequestBody: JSONValue? { lastBody.withLock { $0 } }

    package static func chunk(_ content: String?, model: String = "upstream-model", finish: String? = nil) -> String {
        let delta: JSONValue = content.map { .object([("content", .string($0))]) } ?? .object([("role", .string("assistant"))])
        let choice = JSONValue.object([("index", .number(0)), ("delta", delta), ("finish_reason", finish.map(JSONValue.string) ?? .null)])
        let value = JSONValue.object([
            ("id", .string("c1")), ("object", .string("chat.completion.chunk")), ("model", .string(model)),
            ("choices", .array([choice])),
        ])
        return "data: \(value.serializedString)\n\n"
    }

    static let usageChunk =
        #"data: {"id":"c1","object":"chat.completion.chunk","model":"upstream-model","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#
        + "\n\n"

    package func router() -> Router<TestUpstreamContext> {
        let router = Router(context: TestUpstreamContext.self)
        router.get("/health") { _, _ in "ok" }
        // llama.cpp-style engine metrics; the KV-cache use is set by the test.
        router.get("/metrics") { _, _ in
            let kv = self.kvCacheUsage.withLock { $0 }
            if case .queueing(let runs) = self.engine {
                let n = self.active.load(ordering: .relaxed)
                return "vllm:num_requests_running \(min(n, runs))\nvllm:num_requests_waiting \(max(0, n - runs))\nvllm:kv_cache_usage_perc \(kv)\n"
            }
            return "# TYPE llamacpp:kv_cache_usage_ratio gauge\nllamacpp:kv_cache_usage_ratio \(kv)\nllamacpp:requests_processing 1\n"
        }
        router.get("/props") { _, _ -> Response in
            if case .odd = self.engine { return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "<html>slots</html>"))) }
            guard case .llamacpp(let slots) = self.engine else { return Response(status: .notFound) }
            return Self.json(#"{"total_slots":\#(slots),"default_generation_settings":{"n_ctx":1024},"build_info":"test"}"#)
        }
        router.get("/get_server_info") { _, _ -> Response in
            if case .odd = self.engine { return Self.json(#"{"max_running_requests":0}"#) }
            guard case .sglang(let slots) = self.engine else { return Response(status: .notFound) }
            return Self.json(#"{"max_running_requests":null,"internal_states":[{"max_running_requests":\#(slots),"max_total_num_tokens":8192}]}"#)
        }
        router.get("/info") { _, _ -> Response in
            if case .odd = self.engine { try await Task.sleep(for: .seconds(5)) }
            guard case .tgi(let slots) = self.engine else { return Response(status: .notFound) }
            return Self.json(#"{"model_id":"test","max_concurrent_requests":\#(slots),"max_total_tokens":2048}"#)
        }
        router.post("/:behaviour/v1/chat/completions") { request, context in
            try await self.handle(request, context: context)
        }
        router.post("/:behaviour/v1/completions") { request, context in
            try await self.handle(request, context: context)
        }
        // Embeddings: one vector per input, `[length of the input]`, so tests can match them up.
        // `variant`: in a batch, every input but the first gets another vector (an engine whose
        // batching changes answers).
        router.post("/:behaviour/v1/embeddings") { request, context in
            var request = request
            let body = try JSONParser.parse(try await request.collectBody(upTo: 1 << 20).readableBytesView)
            let inputs = body["input"]?.arrayValue ?? [body["input"] ?? .string("")]
            let variant = context.parameters.get("behaviour") == "variant"
            // The gateway's batching check is not traffic.
            let probe = inputs.first?.stringValue?.hasPrefix("switchyard batching probe") == true
            if !probe { self.embeddingBatches.withLock { $0.append(inputs.count) } }
            let data = inputs.enumerated().map { i, input in
                let length = input.stringValue?.count ?? 0
                let vector: [JSONValue] =
                    variant ? [.number(length), .number(inputs.count > 1 && i > 0 ? length : 0)] : [.number(length)]
                return JSONValue.object([("object", .string("embedding")), ("index", .number(i)), ("embedding", .array(vector))])
            }
            let tokens = inputs.reduce(0) { $0 + ($1.stringValue?.count ?? 0) }
            let reply = JSONValue.object([
                ("object", .string("list")), ("data", .array(data)), ("model", .string("upstream-model")),
                ("usage", .object([("prompt_tokens", .number(tokens)), ("total_tokens", .number(tokens))])),
            ])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: reply.serialized())))
        }
        return router
    }

    package static func json(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    package func handle(_ request: Request, context: TestUpstreamContext) async throws -> Response {
        active.add(1, ordering: .relaxed)
        defer { active.subtract(1, ordering: .relaxed) }
        let behaviour = context.parameters.get("behaviour") ?? "ok"
        counts.withLock { $0[behaviour, default: 0] += 1 }
        var request = request
        let bytes = try await request.collectBody(upTo: 1 << 20)
        let body = try JSONParser.parse(bytes.readableBytesView)
        lastBody.withLock { $0 = body }
        if let tag = body["tag"]?.stringValue { tags.withLock { $0.append(tag) } }
        if body["hold"]?.boolValue == true { await gate.wait() }
        if body["hold2"]?.boolValue == true { await gate2.wait() }
        let stream = body["stream"]?.boolValue ?? false
        let channel = context.channel
        switch behaviour {
        case "status503", "status429":
            return Response(
                status: behaviour == "status503" ? .serviceUnavailable : .tooManyRequests,
                headers: [.retryAfter: "1", .contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"busy"}}"#)))
        case "once-per-connection":
            // Keyed by channel while it is open (a later channel may reuse the address).
            let key = ObjectIdentifier(channel)
            let seen = perConnection.withLock { map in
                map[key, default: 0] += 1
                return map[key]!
            }
            if seen == 1 {
                channel.closeFuture.whenComplete { _ in self.perConnection.withLock { _ = $0.removeValue(forKey: key) } }
            }
            if seen > 1 {
                try await Self.reset(channel)
                throw CancellationError()
            }
        case let name where name.hasPrefix("reset-before"):
            try await Self.reset(channel)
            throw CancellationError()
        case "slow-head":
            try await Task.sleep(for: .seconds(5))
        case let name where name.hasPrefix("delay-"):
            // `delay-MS`: answers after MS milliseconds.
            try await Task.sleep(for: .milliseconds(Int(name.dropFirst(6)) ?? 0))
        default:
            break
        }
        if !stream {
            let reply = JSONValue.object([
                ("id", .string("x")), ("object", .string("chat.completion")), ("model", .string("upstream-model")),
                (
                    "choices",
                    .array([
                        .object([
                            ("index", .number(0)), ("message", .object([("role", .string("assistant")), ("content", .string("hi"))])),
                            ("finish_reason", .string("stop")),
                        ])
                    ])
                ),
                ("usage", .object([("prompt_tokens", .number(5)), ("completion_tokens", .number(1)), ("total_tokens", .number(6))])),
                ("echo", body),
            ])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: reply.serialized())))
        }
        let tokens = body["max_tokens"]?.intValue ?? 3
        let wantsUsage = body["stream_options"]?["include_usage"]?.boolValue ?? false
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream"],
            body: .init { writer in
                try await writer.write(ByteBuffer(string: Self.chunk(nil)))
                switch behaviour {
                case "reset-mid":
                    try await writer.write(ByteBuffer(string: Self.chunk("a")))
                    try await writer.write(ByteBuffer(string: Self.chunk("b")))
                    try await Task.sleep(for: .milliseconds(50))
                    try await Self.reset(channel)
                    return
                case "malformed":
                    try await writer.write(ByteBuffer(string: Self.chunk("a") + "data: not json\n\n"))
                case "inband-error":
                    try await writer.write(
                        ByteBuffer(string: Self.chunk("a") + #"data: {"error":{"message":"engine fell over","type":"server_error"}}"# + "\n\n"))
                case "trickle":
                    try await writer.write(ByteBuffer(string: Self.chunk("a")))
                    try await Task.sleep(for: .seconds(5))
                case "endless":
                    do {
                        for i in 0..<500 {
                            try await writer.write(ByteBuffer(string: Self.chunk("t\(i)")))
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    } catch {
                        self.closedStreams.add(1, ordering: .relaxed)
                        throw error
                    }
                default:
                    for i in 0..<tokens {
                        try await writer.write(ByteBuffer(string: Self.chunk("t\(i)", finish: i == tokens - 1 ? "stop" : nil)))
                    }
                    if wantsUsage { try await writer.write(ByteBuffer(string: Self.usageChunk)) }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                }
                try await writer.finish(nil)
            })
    }

    /// Closes with RST (SO_LINGER 0), the way a crashed server's kernel would.
    package static func reset(_ channel: any Channel) async throws {
        if let provider = channel as? any SocketOptionProvider {
            try? await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        }
        try? await channel.close().get()
    }

    /// Runs the upstream on a free loopback port for the duration of `body`.
    /// - Parameter tls: serve HTTPS with this configuration.
    package func run<T: Sendable>(tls: TLSConfiguration? = nil, _ body: @escaping @Sendable (Int) async throws -> T) async throws -> T {
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router(), server: try tls.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1(),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { portContinuation.yield($0.localAddress?.port ?? 0) },
            logger: {
                var l = Logger(label: "test-upstream")
                l.logLevel = .critical
                return l
            }())
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await app.runUntilCancelled()
                return nil
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            let result = try await body(port)
            group.cancelAll()
            return result
        }
    }
}
