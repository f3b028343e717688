import NIOCore
import NIOHTTP1
import SwitchyardCore
import Synchronization

/// Open connections per client address, across the event loops (`max_connections_per_client`).
package final class ClientConnectionCounts: Sendable {
    package init() {}

    private let counts = Mutex<[String: Int]>([:])

    /// Counts a new connection from `address`; false (and not counted) when it is over `limit`.
    package func open(_ address: String, limit: Int) -> Bool {
        counts.withLock { map in
            let now = map[address, default: 0]
            guard limit == 0 || now < limit else { return false }
            map[address] = now + 1
            return true
        }
    }

    /// Connections open from `address` now.
    package func count(_ address: String) -> Int { counts.withLock { $0[address] ?? 0 } }

    package func close(_ address: String) {
        counts.withLock { map in
            let left = map[address, default: 1] - 1
            map[address] = left > 0 ? left : nil
        }
    }
}

/// One connection's limits against slow or hostile clients, shared by its two handlers (same
/// event loop): ``ClientBytesHandler`` before the HTTP decoder sees bytes arrive;
/// ``ClientRequestHandler`` after it sees where requests begin and end and the responses go out.
///
/// - no request in progress for `idle_timeout` → closed quietly;
/// - a request's headers not complete `header_read_timeout` after its first byte (slow-loris),
///   or its body paused for `body_idle_timeout` → 408, closed;
/// - headers over `max_header_bytes` / `max_headers` → 431; unparseable → 400; closed;
/// - more than `max_connections_per_client` from one address → 429, closed.
package final class ClientGuard {
    enum Phase {
        case idle
        case readingHead
        case readingBody
        /// The request was read; the gateway is answering (no timer: generations take minutes).
        case answering
    }

    let limits: ClientLimits
    /// Counts a refusal by reason (`switchyard_refused_total{reason}`).
    let countRefusal: (String) -> Void
    let connections: ClientConnectionCounts
    var phase = Phase.idle
    var timer: Scheduled<Void>?
    var address: String?
    /// The bytes handler's context: refusals are written as raw bytes from there.
    var raw: ChannelHandlerContext?
    var refused = false

    package init(limits: ClientLimits, connections: ClientConnectionCounts, countRefusal: @escaping (String) -> Void) {
        self.limits = limits
        self.countRefusal = countRefusal
        self.connections = connections
    }

    /// The request-head handling of a server connection: this guard's bytes handler, NIO's
    /// HTTP/1 codec with the header limits, then its request handler. What comes after
    /// (the gateway's fast path and Hummingbird) is added by the caller.
    package func install(on pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(ClientBytesHandler(self))
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        try pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: false,
            withOutboundHeaderValidation: false, withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: decoderLimits)
        try pipeline.addHandler(ClientRequestHandler(self))
    }

    func arm(_ after: Duration, _ action: @escaping () -> Void) {
        timer?.cancel()
        guard let raw, after > .zero else { return }
        timer = raw.eventLoop.scheduleTask(in: .nanoseconds(Int64(after.seconds * 1e9))) { action() }
    }

    /// A request body is arriving: it may pause for at most `body_idle_timeout`.
    func armBodyTimeout() {
        arm(limits.bodyIdleTimeout) { [self] in
            refuse(
                408, "read_timeout", "The request body paused for \(limits.bodyIdleTimeout.formatted) (server.limits.body_idle_timeout).",
                code: "request_timeout")
        }
    }

    func idle() {
        phase = .idle
        arm(limits.idleTimeout) { [self] in
            // Nothing pending: close quietly, as keep-alive timeouts do.
            raw?.close(promise: nil)
        }
    }

    /// Answers in OpenAI's error shape (raw bytes, so it works before or after the decoder
    /// failed) and closes the connection.
    func refuse(_ status: Int, _ reason: String, _ message: String, code: String, retryAfter: Int? = nil) {
        guard !refused, let raw else { return }
        refused = true
        timer?.cancel()
        countRefusal(reason)
        let type = status == 429 ? "rate_limit_error" : "invalid_request_error"
        let body = APIError(status: status, message: message, type: type, code: code, retryAfterSeconds: retryAfter).json.serialized()
        var head =
            "HTTP/1.1 \(status) \(Self.phrase(status))\r\ncontent-type: application/json\r\ncontent-length: \(body.count)\r\nconnection: close\r\n"
        if let retryAfter { head += "retry-after: \(retryAfter)\r\n" }
        var buffer = raw.channel.allocator.buffer(capacity: head.utf8.count + 2 + body.count)
        buffer.writeString(head + "\r\n")
        buffer.writeBytes(body)
        // A lingering close: stop writing, but read (and drop) what the client still sends for a
        // moment, so its unread bytes do not turn the close into a reset that loses the answer.
        raw.writeAndFlush(NIOAny(buffer)).whenComplete { [raw] _ in
            raw.close(mode: .output, promise: nil)
            raw.eventLoop.scheduleTask(in: .seconds(2)) { raw.close(promise: nil) }
        }
    }

    static func phrase(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 408: "Request Timeout"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        default: "Error"
        }
    }
}

/// First in the pipeline: sees raw bytes arrive (a slow client's trickle included).
package final class ClientBytesHandler: ChannelDuplexHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    let guardian: ClientGuard

    package init(_ guardian: ClientGuard) { self.guardian = guardian }

    package func handlerAdded(context: ChannelHandlerContext) {
        guardian.raw = context
    }

    /// The guard holds this handler's context and the handlers hold the guard: NIO leaves both
    /// in place when a pipeline is torn down, so the cycle is cut here (found by the
    /// FuzzRequestHead target as memory growing with every connection).
    package func handlerRemoved(context: ChannelHandlerContext) {
        guardian.timer?.cancel()
        guardian.timer = nil
        guardian.raw = nil
    }

    package func channelActive(context: ChannelHandlerContext) {
        let g = guardian
        if let address = context.remoteAddress?.ipAddress {
            if g.connections.open(address, limit: g.limits.maxConnectionsPerClient) {
                g.address = address
            } else {
                g.refuse(
                    429, "connections_per_client",
                    "Too many open connections from \(address) (server.limits.max_connections_per_client is \(g.limits.maxConnectionsPerClient)); reuse connections or close idle ones.",
                    code: "too_many_connections", retryAfter: 1)
                return
            }
        }
        g.idle()
        context.fireChannelActive()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        guardian.timer?.cancel()
        if let address = guardian.address { guardian.connections.close(address) }
        guardian.address = nil
        context.fireChannelInactive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let g = guardian
        guard !g.refused else { return }
        switch g.phase {
        case .idle:
            g.phase = .readingHead
            g.arm(g.limits.headerReadTimeout) {
                g.refuse(
                    408, "read_timeout",
                    "The request's headers did not arrive within \(g.limits.headerReadTimeout.formatted) (server.limits.header_read_timeout).",
                    code: "request_timeout")
            }
        case .readingBody:
            g.armBodyTimeout()
        case .readingHead, .answering:
            break
        }
        context.fireChannelRead(data)
    }
}

/// Right after the HTTP decoder: where requests begin and end, when responses are done, and
/// the decoder's errors (headers too large, unparseable requests).
package final class ClientRequestHandler: ChannelDuplexHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias InboundOut = HTTPServerRequestPart
    package typealias OutboundIn = HTTPServerResponsePart
    package typealias OutboundOut = HTTPServerResponsePart

    let guardian: ClientGuard

    package init(_ guardian: ClientGuard) { self.guardian = guardian }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let g = guardian
        // After a refusal nothing more goes on: not the refused request's body and end, nor the
        // requests pipelined behind it in the same read (found by FuzzRequestHead: a 431 was
        // followed by the app's 200 to the refused request's end).
        guard !g.refused else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.headers.count > g.limits.maxHeaders {
                g.refuse(
                    431, "header_too_large", "The request has \(head.headers.count) header fields; at most \(g.limits.maxHeaders) are accepted.",
                    code: "request_header_fields_too_large")
                return
            }
            g.phase = .readingBody
            g.armBodyTimeout()
        case .body:
            break
        case .end:
            g.phase = .answering
            g.timer?.cancel()
        }
        context.fireChannelRead(data)
    }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), guardian.phase == .answering {
            guardian.idle()
        }
        context.write(data, promise: promise)
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parser = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        let g = guardian
        if case .headerOverflow = parser {
            g.refuse(
                431, "header_too_large",
                "The request's headers are larger than \(g.limits.maxHeaderBytes) bytes (server.limits.max_header_bytes).",
                code: "request_header_fields_too_large")
        } else {
            g.refuse(400, "bad_request", "The request is not valid HTTP/1.1 (\(parser)).", code: "bad_request")
        }
    }
}
