import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwitchyardCore
import SwitchyardScheduling
import Synchronization

/// What an upstream connection reports to the request using it. Called on its event loop.
protocol UpstreamDelegate: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    /// The connection closed or failed before the response ended.
    func upstreamClosed(_ error: (any Error)?)
}

/// One keep-alive HTTP/1.1 connection to a backend, on the event loop that owns it.
final class UpstreamConnection {
    let channel: any Channel
    let handler: UpstreamResponseHandler
    let key: String
    var lastUsed = NIODeadline.now()

    init(channel: any Channel, handler: UpstreamResponseHandler, key: String) {
        self.channel = channel
        self.handler = handler
        self.key = key
    }

    /// Closes the connection without telling its current user (who asked for it).
    func abandon() {
        handler.delegate = nil
        channel.close(promise: nil)
    }
}

/// Relays a connection's response parts to the request using it.
final class UpstreamResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    weak var delegate: (any UpstreamDelegate)?
    /// Called when an idle (pooled) connection closes, so the pool forgets it.
    var onIdleClose: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        delegate?.upstreamReceived(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let delegate {
            self.delegate = nil
            delegate.upstreamClosed(nil)
        } else {
            onIdleClose?()
        }
        onIdleClose = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let delegate {
            self.delegate = nil
            delegate.upstreamClosed(error)
        }
        context.close(promise: nil)
    }
}

/// The keep-alive connections of one event loop to every backend, used only on that loop: a
/// request served on a loop talks to its backend from the same loop, with no thread hop and no
/// lock. Idle connections are reused most recent first; ones idle past `idleTimeout`, or beyond
/// `maxIdlePerBackend`, are closed.
///
/// `@unchecked Sendable`: only the registry (a lock) hands it across threads; every method
/// runs on `eventLoop`.
final class UpstreamConnections: @unchecked Sendable {
    let eventLoop: any EventLoop
    private let connectTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private let maxIdlePerBackend: Int
    private var idle: [String: [UpstreamConnection]] = [:]
    private let config: UpstreamConfig
    /// For `https://` backends: `upstream.ca_file` or the system's trust roots, the certificate
    /// checked against the host.
    private lazy var tls: Result<NIOSSLContext, any Error> = Result { try NIOSSLContext(configuration: UpstreamTLS.configuration(self.config)) }

    init(eventLoop: any EventLoop, config: UpstreamConfig) {
        self.eventLoop = eventLoop
        self.config = config
        connectTimeout = .nanoseconds(Int64(config.connectTimeout.seconds * 1e9))
        idleTimeout = .nanoseconds(Int64(config.idleConnectionTimeout.seconds * 1e9))
        maxIdlePerBackend = max(1, config.maxConnectionsPerBackend)
    }

    /// A pooled connection to `backend`'s server, if one is open.
    func take(_ backend: Backend) -> UpstreamConnection? {
        eventLoop.preconditionInEventLoop()
        let cutoff = NIODeadline.now() - idleTimeout
        while let connection = idle[Self.key(backend)]?.popLast() {
            if connection.channel.isActive, connection.lastUsed > cutoff { return connection }
            connection.abandon()
        }
        return nil
    }

    /// Opens a new connection to `backend`'s server.
    func connect(_ backend: Backend, then done: @escaping (Result<UpstreamConnection, any Error>) -> Void) {
        let key = Self.key(backend), url = backend.url
        let tlsContext: NIOSSLContext?
        switch (url.scheme == "https", tls) {
        case (false, _): tlsContext = nil
        case (true, .success(let context)): tlsContext = context
        case (true, .failure(let error)): return done(.failure(error))
        }
        ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        // SNI and the certificate check use the host name (not for an IP address).
                        let name = url.host.contains(where: { $0.isLetter }) && !url.host.contains(":") ? url.host : nil
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: name))
                    }
                    // Every header sent is the gateway's own (the request id is checked on
                    // arrival): NIO's per-request header validation would only repeat that.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(UpstreamResponseHandler())
                }
            }
            .connect(host: url.host, port: url.port)
            .assumeIsolated()
            .whenComplete { [weak self] result in
                done(
                    result.flatMap { channel in
                        Result {
                            let connection = UpstreamConnection(
                                channel: channel, handler: try channel.pipeline.syncOperations.handler(type: UpstreamResponseHandler.self),
                                key: key)
                            // Called only when it closes while idle (no request using it): the pool forgets it.
                            connection.handler.onIdleClose = { [weak self, weak connection] in
                                guard let self, let connection else { return }
                                self.idle[key]?.removeAll { $0 === connection }
                            }
                            return connection
                        }
                    })
            }
    }

    /// Connections are pooled by server: scheme, host and port.
    static func key(_ backend: Backend) -> String {
        backend.url.scheme == "https" ? "https://" + backend.hostHeader : backend.hostHeader
    }

    /// Returns a connection whose response ended cleanly, for the next request.
    func giveBack(_ connection: UpstreamConnection) {
        eventLoop.preconditionInEventLoop()
        connection.handler.delegate = nil
        guard connection.channel.isActive, idle[connection.key, default: []].count < maxIdlePerBackend else {
            connection.abandon()
            return
        }
        connection.lastUsed = .now()
        idle[connection.key, default: []].append(connection)
    }
}

/// One ``UpstreamConnections`` per event loop, made on first use.
final class UpstreamConnectionRegistry: Sendable {
    private let byLoop = Mutex<[ObjectIdentifier: UpstreamConnections]>([:])
    private let config: UpstreamConfig

    init(config: UpstreamConfig) {
        self.config = config
    }

    func connections(for eventLoop: any EventLoop) -> UpstreamConnections {
        byLoop.withLock { map in
            let key = ObjectIdentifier(eventLoop)
            if let existing = map[key] { return existing }
            let made = UpstreamConnections(eventLoop: eventLoop, config: config)
            map[key] = made
            return made
        }
    }
}
