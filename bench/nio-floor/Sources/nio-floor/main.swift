// nio-floor LISTEN_PORT UPSTREAM_PORT
// Each client connection gets its own keep-alive connection to 127.0.0.1:UPSTREAM_PORT, opened
// on the client's event loop; requests are forwarded as received (head, body, end) and answers
// relayed part by part. Nothing else: it is what the gateway's fast path costs minus the gateway.
import NIOCore
import NIOHTTP1
import NIOPosix

let arguments = CommandLine.arguments
guard arguments.count == 3, let listenPort = Int(arguments[1]), let upstreamPort = Int(arguments[2]) else {
    fatalError("usage: nio-floor LISTEN_PORT UPSTREAM_PORT")
}

/// Relays the upstream's response parts to the client connection.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    let client: ChannelHandlerContext

    init(client: ChannelHandlerContext) { self.client = client }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            client.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        case .body(let buffer):
            client.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            client.writeAndFlush(NIOAny(HTTPServerResponsePart.end(trailers)), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) { client.close(promise: nil) }
}

/// Forwards one client connection's requests over its own upstream connection.
final class ProxyHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    let upstreamPort: Int
    var upstream: (any Channel)?
    var pending: [HTTPClientRequestPart] = []
    var connecting = false

    init(upstreamPort: Int) { self.upstreamPort = upstreamPort }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part: HTTPClientRequestPart
        switch unwrapInboundIn(data) {
        case .head(var head):
            head.headers.replaceOrAdd(name: "host", value: "127.0.0.1:\(upstreamPort)")
            part = .head(head)
        case .body(let buffer): part = .body(.byteBuffer(buffer))
        case .end(let trailers): part = .end(trailers)
        }
        if let upstream {
            if case .end = part { upstream.writeAndFlush(part, promise: nil) } else { upstream.write(part, promise: nil) }
            return
        }
        pending.append(part)
        guard !connecting else { return }
        connecting = true
        let client = context
        // The upstream channel lives on the client's event loop, so the context may cross.
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(client: bound.value))
                }
            }
            .connect(host: "127.0.0.1", port: upstreamPort)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    self.upstream = channel
                    for part in self.pending { channel.write(part, promise: nil) }
                    self.pending = []
                    channel.flush()
                case .failure:
                    client.close(promise: nil)
                }
            }
    }

    func channelInactive(context: ChannelHandlerContext) { upstream?.close(promise: nil) }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
            try channel.pipeline.syncOperations.addHandler(ProxyHandler(upstreamPort: upstreamPort))
        }
    }
    .bind(host: "127.0.0.1", port: listenPort)
    .wait()
print("nio-floor listening on 127.0.0.1:\(listenPort), upstream 127.0.0.1:\(upstreamPort)")
try server.closeFuture.wait()
