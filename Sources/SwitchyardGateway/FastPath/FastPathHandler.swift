import DequeModule
import NIOCore
import NIOHTTP1

/// Sits in each client connection's pipeline right after NIO's HTTP/1 codec, in front of
/// Hummingbird's (type conversion, connection state, router), and serves the requests
/// ``FastPath`` accepts on the event loop in NIO's own HTTP/1 types; every other request (and any
/// the fast path declines or hands back after a failed attempt) continues to Hummingbird
/// unchanged.
///
/// Requests on a connection are answered in order: while one is being answered, the parts of the
/// next ones wait here (and reading pauses once a few are waiting).
final class FastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Mode {
        case idle
        /// Collecting the body of a request the fast path may take.
        case capturing(HTTPRequestHead, ByteBuffer)
        /// Answered by the fast path.
        case fast(FastExchange)
        /// Passed to the router: forwarding its remaining parts (`answered`: the router already
        /// wrote its whole answer, as it may for an error).
        case routerReading(answered: Bool)
        /// Passed to the router, which is answering it.
        case routerAnswering
    }

    private let fastPath: FastPath
    private var mode = Mode.idle
    private var waiting = Deque<HTTPServerRequestPart>()
    private var readHeld = false
    private(set) var context: ChannelHandlerContext?
    let connections: UpstreamConnections
    /// Identifies this client connection (for a request handed to the router after an attempt).
    private(set) var connectionID: ObjectIdentifier?
    /// The timeouts of this connection's fast exchanges: one timer, kept from request to request
    /// (scheduling and cancelling one per request was a measurable share of the fast path).
    private var timer = ExchangeTimer()
    private var quiesceHeld = false
    /// Parts went to the router since its last read-complete.
    private var routerReadPending = false

    init(fastPath: FastPath, connections: UpstreamConnections) {
        self.fastPath = fastPath
        self.connections = connections
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        connectionID = ObjectIdentifier(context.channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !waiting.isEmpty {
            waiting.append(part)
            return
        }
        process(part, context: context)
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (mode, part) {
        case (.idle, .head(let head)):
            if fastPath.mayServe(head) {
                mode = .capturing(head, ByteBuffer())
            } else {
                mode = .routerReading(answered: false)
                forward(part, context: context)
            }
        case (.capturing(let head, var body), .body(let chunk)):
            mode = .idle
            if body.readableBytes + chunk.readableBytes > fastPath.maxBodyBytes {
                // The router answers 413 and keeps its connection rules.
                passToRouter(head, body: body, end: false, context: context)
                forward(.body(chunk), context: context)
                return
            }
            if body.readableBytes == 0 { body = chunk } else { body.writeImmutableBuffer(chunk) }
            mode = .capturing(head, body)
        case (.capturing(let head, let body), .end):
            mode = .idle
            if let exchange = fastPath.start(head: head, body: body, handler: self) {
                mode = .fast(exchange)
                exchange.begin()
            } else {
                passToRouter(head, body: body, end: true, context: context)
            }
        case (.routerReading(let answered), .end):
            mode = answered ? .idle : .routerAnswering
            forward(part, context: context)
        case (.routerReading, _):
            forward(part, context: context)
        case (.fast, _), (.routerAnswering, _):
            waiting.append(part)
        case (.idle, _), (.capturing, .head):
            // A stray part: let the router's parser rules deal with it.
            mode = .routerReading(answered: false)
            forward(part, context: context)
        }
    }

    /// Passes a part on to the router; it is delivered at the end of this read.
    private func forward(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        routerReadPending = true
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// Sends a request the fast path will not (or no longer) answer on to the router.
    func passToRouter(_ head: HTTPRequestHead, body: ByteBuffer, end: Bool, context: ChannelHandlerContext) {
        mode = end ? .routerAnswering : .routerReading(answered: false)
        context.fireChannelRead(wrapInboundOut(.head(head)))
        if body.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(.body(body))) }
        if end { context.fireChannelRead(wrapInboundOut(.end(nil))) }
        routerReadPending = false
        context.fireChannelReadComplete()
        releaseQuiesce(context: context)
    }

    /// The fast path gave a request back after a failed attempt: the router retries it.
    func handBack(_ head: HTTPRequestHead, body: ByteBuffer) {
        guard let context else { return }
        passToRouter(head, body: body, end: true, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Hummingbird's side only acts on a read's end when it was given something.
        guard routerReadPending else { return }
        routerReadPending = false
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionClosed()
        context.fireChannelInactive()
    }

    /// Graceful shutdown asks each connection to close once idle. Hummingbird's connection state
    /// handler, behind this one, acts on that but never sees the fast path's requests: while one
    /// is being read or answered here, the event waits, and goes on once the state handler can
    /// tell (the request handed to the router, or answered: then the connection closes).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, holdsRequest {
            quiesceHeld = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private var holdsRequest: Bool {
        switch mode {
        case .capturing, .fast: true
        case .idle, .routerReading, .routerAnswering: false
        }
    }

    private func releaseQuiesce(context: ChannelHandlerContext) {
        guard quiesceHeld else { return }
        quiesceHeld = false
        context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    /// Makes sure the timer fires by `deadline`. It is moved only when that is sooner than it is
    /// set for; when it fires, the current exchange says whether (and when) to look again.
    func checkTimeouts(by deadline: NIODeadline) {
        guard let context, timer.needsArming(by: deadline) else { return }
        timer.armed(
            context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
                timer.reset()
                if case .fast(let exchange) = mode, let next = exchange.timerFired() { checkTimeouts(by: next) }
            })
    }

    private func connectionClosed() {
        timer.reset()
        if case .fast(let exchange) = mode {
            mode = .idle
            exchange.clientClosed()
        }
        waiting.removeAll()
        if let connectionID { fastPath.forgetHandBack(connectionID) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .fast(let exchange) = mode { exchange.clientWritable(context.channel.isWritable) }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        // Keep reading while answering (a client that leaves must be noticed), unless requests
        // pile up behind the current one.
        if waiting.count >= 16 {
            readHeld = true
        } else {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd: Bool
        if case .end = unwrapOutboundIn(data) { isEnd = true } else { isEnd = false }
        context.write(data, promise: promise)
        guard isEnd else { return }
        switch mode {
        case .routerAnswering:
            mode = .idle
            context.eventLoop.assumeIsolated().execute { self.drainWaiting() }
        case .routerReading:
            mode = .routerReading(answered: true)
        default:
            break
        }
    }

    // MARK: Answers of the fast path

    func send(_ part: HTTPServerResponsePart, flush: Bool = false) {
        guard let context else { return }
        context.write(wrapOutboundOut(part), promise: nil)
        if flush { context.flush() }
    }

    func flush() {
        context?.flush()
    }

    /// The fast path finished answering; `close` after a `Connection: close` request.
    func exchangeDone(close: Bool) {
        guard let context, case .fast = mode else { return }
        mode = .idle
        if close {
            context.close(promise: nil)
            return
        }
        if quiesceHeld {
            releaseQuiesce(context: context)
            return
        }
        drainWaiting()
    }

    private var isAnswering: Bool {
        switch mode {
        case .fast, .routerAnswering: true
        case .idle, .capturing, .routerReading: false
        }
    }

    private func drainWaiting() {
        guard let context else { return }
        var drained = false
        // Parts are taken while they belong to no request being answered.
        while !isAnswering, let next = waiting.popFirst() {
            process(next, context: context)
            drained = true
        }
        // The router's side delivers what it was given at the end of a read: this is one.
        if drained, routerReadPending {
            routerReadPending = false
            context.fireChannelReadComplete()
        }
        if waiting.isEmpty, readHeld {
            readHeld = false
            context.read()
        }
    }
}
