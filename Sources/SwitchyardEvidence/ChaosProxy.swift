import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import SwitchyardCore
import Synchronization

/// The faults a ``ChaosProxy`` injects, per request; changeable while it runs.
package struct ChaosFaults: Sendable, Equatable {
    /// Added before the request is forwarded.
    package var latency: Duration = .zero
    /// Share of requests whose connection is reset (RST) before any answer.
    package var resetRate = 0.0
    /// Share of requests answered 503 with `Retry-After: 1` without reaching the upstream.
    package var status503Rate = 0.0
    /// Share of streamed answers that stop for `stallFor` after `stallAfterChunks` body chunks.
    package var stallRate = 0.0
    package var stallAfterChunks = 3
    package var stallFor: Duration = .seconds(5)

    package init() {}

    package var isNone: Bool { self == ChaosFaults() }

    package var summary: String {
        var parts: [String] = []
        if latency > .zero { parts.append("latency \(latency.formatted)") }
        if resetRate > 0 { parts.append("resets \(Int(resetRate * 100))%") }
        if status503Rate > 0 { parts.append("503 \(Int(status503Rate * 100))%") }
        if stallRate > 0 { parts.append("stalls \(Int(stallRate * 100))% (\(stallFor.formatted) after \(stallAfterChunks) chunks)") }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }
}

struct ChaosContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// A small fault-injecting HTTP proxy for acceptance runs (`switchyard chaos-proxy`): every
/// request is forwarded to `upstream` (streams relayed chunk by chunk) unless a fault picks it:
/// added latency, a connection reset, a 503, or a stall mid-stream. Faults pick POST requests
/// only (the API calls); GETs always pass. Loopback targets only.
package final class ChaosProxy: Sendable {
    package let upstream: String
    private let faults: Mutex<ChaosFaults>
    private let rng: Mutex<SplitMix64>
    private let counts = Mutex<[String: Int]>([:])
    private let client: HTTPClient

    /// - Parameter upstream: origin to forward to, e.g. `http://127.0.0.1:8080`.
    package init(upstream: String, faults: ChaosFaults = ChaosFaults(), seed: UInt64 = 1) throws(ConfigError) {
        guard let url = HTTPURL(upstream), url.scheme == "http" else {
            throw ConfigError(issues: [ConfigIssue(path: "--upstream", message: "not an http:// URL: '\(upstream)'")])
        }
        guard ["127.0.0.1", "::1", "localhost"].contains(url.host) || url.host.hasPrefix("127.") else {
            throw ConfigError(issues: [ConfigIssue(path: "--upstream", message: "fault injection only targets loopback addresses, got '\(url.host)'")]
            )
        }
        self.upstream = url.origin
        self.faults = Mutex(faults)
        rng = Mutex(SplitMix64(seed: seed))
        var configuration = HTTPClient.Configuration()
        configuration.decompression = .disabled
        configuration.tracing.tracer = nil
        // Closed before llama.cpp's and uvicorn's 5 s keep-alive timeout, as the gateway does:
        // a pooled connection the server just closed must not turn into an injected-looking 502.
        configuration.connectionPool = .init(idleTimeout: .seconds(4))
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    package var current: ChaosFaults { faults.withLock { $0 } }
    package func set(_ new: ChaosFaults) { faults.withLock { $0 = new } }
    /// Requests by what happened to them: forwarded, reset, status503, stalled, upstream_error
    /// (upstream_retry: sent again after losing a pooled connection).
    package var injected: [String: Int] { counts.withLock { $0 } }

    private func roll(_ rate: Double) -> Bool {
        guard rate > 0 else { return false }
        return rng.withLock { Double($0.next() >> 11) / 9007199254740992.0 } < rate
    }

    private func count(_ what: String) { counts.withLock { $0[what, default: 0] += 1 } }

    func router() -> Router<ChaosContext> {
        let router = Router(context: ChaosContext.self)
        router.on("**", method: .post) { [self] request, context in try await forward(request, context: context) }
        router.on("**", method: .get) { [self] request, context in try await forward(request, context: context) }
        return router
    }

    func forward(_ request: Request, context: ChaosContext) async throws -> Response {
        // Faults hit the API calls (POST); health checks and capacity or metrics probes (GET)
        // pass, so a fault exercises the request path rather than the health checker.
        let f = request.method == .post ? current : ChaosFaults()
        var request = request
        let body = try await request.collectBody(upTo: 64 << 20)
        if f.latency > .zero { try await Task.sleep(for: f.latency) }
        if roll(f.resetRate) {
            count("reset")
            if let provider = context.channel as? any SocketOptionProvider {
                try? await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            }
            try? await context.channel.close().get()
            throw CancellationError()
        }
        if roll(f.status503Rate) {
            count("status503")
            return Response(
                status: .serviceUnavailable, headers: [.contentType: "application/json", .retryAfter: "1"],
                body: .init(
                    byteBuffer: ByteBuffer(string: #"{"error":{"message":"chaos-proxy: injected 503","type":"server_error","code":"chaos"}}"#)))
        }
        var upstreamRequest = HTTPClientRequest(url: upstream + request.uri.description)
        upstreamRequest.method = .init(rawValue: request.method.rawValue)
        for field in request.headers where field.name.canonicalName != "host" && field.name != .contentLength && field.name != .connection {
            upstreamRequest.headers.add(name: field.name.rawName, value: field.value)
        }
        if request.method == .post { upstreamRequest.body = .bytes(body) }
        let response: HTTPClientResponse
        do {
            do {
                response = try await client.execute(upstreamRequest, timeout: .seconds(600))
            } catch {
                // Once more on a fresh connection: a keep-alive connection can still lose the race
                // with the server closing it, and only faults the proxy injects should show.
                count("upstream_retry")
                response = try await client.execute(upstreamRequest, timeout: .seconds(600))
            }
        } catch {
            count("upstream_error")
            return Response(
                status: .badGateway, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"chaos-proxy: upstream unreachable","type":"server_error"}}"#)))
        }
        var headers = HTTPFields()
        for (name, value) in response.headers {
            guard let field = HTTPField.Name(name), field != .contentLength, field != .connection, field != .transferEncoding else { continue }
            headers.append(HTTPField(name: field, value: value))
        }
        let stall = roll(f.stallRate)
        count(stall ? "stalled" : "forwarded")
        let upstreamBody = response.body
        return Response(
            status: .init(code: Int(response.status.code)), headers: headers,
            body: .init { writer in
                var chunks = 0
                for try await chunk in upstreamBody {
                    try await writer.write(chunk)
                    chunks += 1
                    if stall, chunks == f.stallAfterChunks { try await Task.sleep(for: f.stallFor) }
                }
                try await writer.finish(nil)
            })
    }

    /// Serves on `host:port` (0 = any free port) until cancelled; `onListening` gets the port.
    package func run(host: String = "127.0.0.1", port: Int, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var logger = Logger(label: "chaos-proxy")
        logger.logLevel = .critical
        let app = Application(
            router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "switchyard-chaos"),
            onServerRunning: { await onListening($0.localAddress?.port ?? 0) }, logger: logger)
        do {
            try await app.runUntilCancelled()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try? await client.shutdown()
    }
}
