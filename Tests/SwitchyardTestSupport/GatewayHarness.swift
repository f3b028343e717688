import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SwitchyardBatch
import SwitchyardCore
import SwitchyardGateway
import Synchronization

/// Starts a gateway on port 0 for one test and shuts it down afterwards.
package enum GatewayHarness {
    package static func config(models: [ModelConfig], tweak: (inout GatewayConfig) -> Void = { _ in }) -> GatewayConfig {
        var config = GatewayConfig()
        config.server.port = 0
        config.server.shutdownGrace = .seconds(5)
        // No load balancer to wait for; tests of the delay set it.
        config.server.drainDelay = .zero
        config.health.enabled = false
        // AsyncHTTPClient keeps retrying a refused connect until the request's timeout: tests
        // whose backend is deliberately down would wait the default 2 s for discovery each.
        config.upstream.discoveryTimeout = .milliseconds(500)
        config.models = models
        tweak(&config)
        return config
    }

    package static func model(
        _ name: String, _ urls: [String], weights: [Double]? = nil, fallback: [String] = [], upstreamModel: String? = "upstream-model"
    ) -> ModelConfig {
        var model = ModelConfig(
            name: name,
            backends: urls.enumerated().map { i, url in
                BackendConfig(url: url, upstreamModel: upstreamModel, weight: weights?[i] ?? 1)
            })
        model.fallback = fallback
        return model
    }

    /// `waitForDiscovery`: the body starts once every backend was asked for its capacity, so no
    /// discovery request reaches a test upstream while it shuts down.
    /// - Parameter log: every log line (debug and up) is also recorded here.
    package static func with<T: Sendable>(
        _ config: GatewayConfig, waitForDiscovery: Bool = true, batch: BatchService? = nil, log: LogRecorder? = nil,
        _ body: @escaping @Sendable (Gateway, String) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "test-gateway")
        logger.logLevel = ProcessInfo.processInfo.environment["SWITCHYARD_TEST_LOG"] == nil ? .critical : .debug
        if let log {
            logger = Logger(label: "test-gateway") { _ in log.handler }
            logger.logLevel = .debug
        }
        let gateway = Gateway(config: config, logger: logger, batch: batch)
        let services: [any Service] = batch.map { [BatchWorker(service: $0, executor: gateway, logger: logger)] } ?? []
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await gateway.run(signals: [], services: services) { continuation.yield($0) }
                return nil
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            if waitForDiscovery { await gateway.startDiscoveryFinished() }
            do {
                let result = try await body(gateway, "\(config.server.tls == nil ? "http" : "https")://127.0.0.1:\(port)")
                await gateway.shutdown()
                try await group.waitForAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }
}

extension GatewayHarness {
    /// For tests that fill every slot with `x-switchyard-lane: batch` requests to watch capacity,
    /// queue order or preemption: by default the batch lane holds at most half of the slots
    /// (`max_inflight_share`).
    package static func batchMayFillTheEngine(_ config: inout GatewayConfig) {
        if let i = config.lanes.firstIndex(where: { $0.name == LaneConfig.batch }) { config.lanes[i].maxInflightShare = nil }
    }

    /// A gateway with the Files and Batches APIs on a SQLite store in a fresh folder (removed
    /// afterwards) and its batch worker.
    package static func withBatch<T: Sendable>(
        _ config: GatewayConfig, _ body: @escaping @Sendable (Gateway, String, BatchService) async throws -> T
    ) async throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-batch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var logger = Logger(label: "test-batch")
        logger.logLevel = ProcessInfo.processInfo.environment["SWITCHYARD_TEST_LOG"] == nil ? .critical : .debug
        let service = try await BatchService.open(
            config: config.batch, dataDirectory: dir.path, models: Set(config.models.map(\.name)), environment: [:], logger: logger)
        do {
            let result = try await with(config, batch: service) { gateway, base in try await body(gateway, base, service) }
            await service.store.db.close()
            return result
        } catch {
            await service.store.db.close()
            throw error
        }
    }
}

/// A small HTTP client for tests.
package struct TestClient {
    package static let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
    /// For load in tests: up to 64 connections per host (the default client keeps 8).
    package static let wide: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    package struct Reply: Sendable {
        package var status: Int
        package var headers: [String: String]
        package var body: String
        package var json: JSONValue? { try? JSONParser.parse(body) }

        package init(status: Int, headers: [String: String], body: String) {
            self.status = status
            self.headers = headers
            self.body = body
        }
    }

    package static func post(
        _ url: String, _ body: String, contentType: String? = "application/json", headers: [String: String] = [:],
        client: HTTPClient = http, timeout: TimeAmount = .seconds(30)
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        if let contentType { request.headers.add(name: "content-type", value: contentType) }
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 16 << 20)
        var h: [String: String] = [:]
        for field in response.headers { h[field.name.lowercased()] = field.value }
        return Reply(status: Int(response.status.code), headers: h, body: String(buffer: bytes))
    }

    package static func get(_ url: String, headers: [String: String] = [:]) async throws -> Reply {
        try await send(.GET, url, headers: headers)
    }

    package static func send(_ method: HTTPMethod, _ url: String, headers: [String: String] = [:]) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        var h: [String: String] = [:]
        for field in response.headers { h[field.name.lowercased()] = field.value }
        return Reply(status: Int(response.status.code), headers: h, body: String(buffer: bytes))
    }

    package static func chat(stream: Bool = false, model: String = "m", extra: String = "") -> String {
        #"{"model":"\#(model)","messages":[{"role":"user","content":"hello"}],"stream":\#(stream)\#(extra)}"#
    }

    /// `data:` payloads of an SSE body.
    package static func events(_ body: String) -> [String] {
        body.components(separatedBy: "\n\n").compactMap { block in
            block.hasPrefix("data: ") ? String(block.dropFirst(6)) : nil
        }
    }
}

/// Polls a condition with a deadline (never a fixed sleep): true once it holds.
package enum Poll {
    @discardableResult
    package static func until(_ timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }
}

/// Keeps every log line a gateway writes (message and metadata as text), for tests of what is
/// and is not logged.
package final class LogRecorder: Sendable {
    private let lines = Mutex<[String]>([])

    package init() {}

    package var text: String { lines.withLock { $0.joined(separator: "\n") } }

    var handler: Handler { Handler(recorder: self) }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            recorder.lines.withLock { $0.append("\(event.level) \(event.message) \(fields)") }
        }
    }
}
