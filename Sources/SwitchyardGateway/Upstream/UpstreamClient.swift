import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwitchyardCore

/// The HTTP client of the gateway's own GETs to backends (health checks, capacity discovery,
/// `/metrics`, `/v1/models`): pooled keep-alive connections, no redirects, no decompression.
/// Requests from clients go over ``UpstreamConnections`` instead.
package final class UpstreamClient: Sendable {
    package let http: HTTPClient

    package init(config: UpstreamConfig) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .nanoseconds(Int64(config.connectTimeout.seconds * 1e9))
        configuration.connectionPool = .init(
            idleTimeout: .nanoseconds(Int64(config.idleConnectionTimeout.seconds * 1e9)),
            concurrentHTTP1ConnectionsPerHostSoftLimit: config.maxConnectionsPerBackend)
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        // No request spans: computing their attributes costs a URL parse per request.
        configuration.tracing.tracer = nil
        // A CA file that cannot be used was refused when the gateway started (Gateway.run).
        configuration.tlsConfiguration = try? UpstreamTLS.configuration(config)
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    package func shutdown() async throws {
        try await http.shutdown()
    }

    /// POST of a JSON body (the batching check's probe embeddings); returns status and body.
    func post(_ url: String, json: JSONValue, timeout: Duration) async throws -> (status: Int, body: ByteBuffer) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: json.serialized()))
        let response = try await http.execute(request, timeout: .nanoseconds(Int64(timeout.seconds * 1e9)))
        return (Int(response.status.code), try await response.body.collect(upTo: 8 << 20))
    }

    /// GET for health checks and `/v1/models`; returns status and body.
    /// `close`: a one-off request (capacity discovery) that leaves no idle connection behind.
    func get(_ url: String, timeout: Duration, close: Bool = false) async throws -> (status: Int, body: ByteBuffer) {
        var request = HTTPClientRequest(url: url)
        if close { request.headers.add(name: "connection", value: "close") }
        let response = try await http.execute(request, timeout: .nanoseconds(Int64(timeout.seconds * 1e9)))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), body)
    }
}

/// Classifies an error thrown before a response head arrived.
enum UpstreamFailure {
    /// The TCP connect did not complete in time (AsyncHTTPClient's or NIO's connect timeout): on a
    /// live backend, its listen backlog is full. The request never reached it.
    static func isConnectTimeout(_ error: any Error) -> Bool {
        // AsyncHTTPClient answers a request that waited the connect timeout for its pool to open
        // a connection with getConnectionFromPoolTimeout (the connect itself fails later).
        if let e = error as? HTTPClientError { return e == .connectTimeout || e == .getConnectionFromPoolTimeout }
        if let e = error as? ChannelError, case .connectTimeout = e { return true }
        if let e = error as? NIOConnectionError { return e.connectionErrors.contains { isConnectTimeout($0.error) } }
        return false
    }

    /// errno values of a connect that never reached a server.
    static let connectErrnos: Set<Int32> = [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL, ETIMEDOUT]

    /// Typed: the connect failed (timeout, refused, unreachable, name not resolved) or the
    /// connection was lost after it was made (everything else).
    static func kind(of error: any Error) -> UpstreamErrorKind {
        if isConnectTimeout(error) { return .connect }
        switch error {
        case is NIOConnectionError, is SocketAddressError: return .connect
        case let e as IOError where connectErrnos.contains(e.errnoCode): return .connect
        default: return .reset
        }
    }
}
