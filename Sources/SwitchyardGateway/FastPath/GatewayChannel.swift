import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOSSL
import SwitchyardCore
import SwitchyardHTTPGuard

/// The gateway's HTTP/1.1 connection setup: Hummingbird's, with the ``FastPathHandler`` right
/// after NIO's HTTP/1 codec, so the requests it serves skip the conversion to HTTPTypes and back
/// (it keeps graceful-shutdown quiescing right for them itself). With `server.tls`, NIO SSL's
/// handler comes first.
struct GatewayChannel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let fastPath: FastPath?
    let limits: ClientLimits
    let metrics: GatewayMetrics
    let connections: ClientConnectionCounts
    /// HTTPS: each connection takes the context in force (a SIGHUP reload swaps it).
    let tls: ListenerTLS?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls.current)) }
            try ClientGuard(limits: limits, connections: connections) { [metrics] in metrics.refused(reason: $0) }.install(on: pipeline)
            if let fastPath { try pipeline.addHandler(fastPath.makeHandler(for: channel)) }
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: tls != nil))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: value, logger: logger)
    }
}
