import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchyardCore
import Synchronization

/// The load generator's HTTP/1.1 client, built on NIO event loops: requests are started by
/// event-loop timers at their scheduled time, responses are parsed (SSE included) on the loop as
/// bytes arrive and timestamped there, and each loop keeps its own idle keep-alive connections, so
/// the hot path takes no lock and makes no task per chunk.
final class BenchClient: Sendable {
    struct Target: Sendable {
        let host: String
        let port: Int
        let path: String
        let hostHeader: String
    }

    /// One request to make.
    struct Job: Sendable {
        let id: Int
        let lane: String
        let warmup: Bool
        let tSched: Duration
        let body: ByteBuffer
        let headers: HTTPHeaders
        /// Sent again on a fresh connection after a reused one was lost before any answer.
        var resent = false

        /// The record of this job, before anything was measured.
        var record: RequestRecord {
            var record = RequestRecord(id: id, lane: lane, tSched: tSched)
            record.warmup = warmup
            record.phase = warmup ? "warmup" : "measured"
            record.resent = resent
            return record
        }
    }

    let group: MultiThreadedEventLoopGroup
    let target: Target
    let origin: ContinuousClock.Instant
    private let pools: [EventLoopBoundBox]

    /// Per-loop state, only ever touched on its loop (hence unchecked).
    final class LoopPool: @unchecked Sendable {
        var idle: [(any Channel, ExchangeHandler)] = []
        /// Connections open or being opened.
        var open = 0
        /// Jobs due while every allowed connection is busy (their lag shows it), oldest first.
        var waiting: [(Job, @Sendable (RequestRecord) -> Void)] = []
        var waitingHead = 0

        func popWaiting() -> (Job, @Sendable (RequestRecord) -> Void)? {
            guard waitingHead < waiting.count else { return nil }
            defer {
                waitingHead += 1
                if waitingHead > 1024, waitingHead * 2 > waiting.count {
                    waiting.removeFirst(waitingHead)
                    waitingHead = 0
                }
            }
            return waiting[waitingHead]
        }
    }

    /// Connections per loop at most: an overloaded server makes requests wait for a connection
    /// (late against their schedule, which the lag records) instead of a connection storm.
    let maxConnectionsPerLoop: Int

    struct EventLoopBoundBox: Sendable {
        let loop: any EventLoop
        let pool: LoopPool
    }

    init(target: Target, threads: Int, origin: ContinuousClock.Instant, maxConnections: Int = 2048) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        maxConnectionsPerLoop = max(1, maxConnections / max(1, threads))
        self.target = target
        self.origin = origin
        pools = group.makeIterator().map { EventLoopBoundBox(loop: $0, pool: LoopPool()) }
    }

    func shutdown() async {
        try? await group.shutdownGracefully()
    }

    var loops: Int { pools.count }

    /// Starts `job` at `at` (run-clock offset) on loop `index % loops`; `done` runs on that loop.
    /// `started` runs on the loop when the request is about to be written (progress counts).
    func schedule(
        _ job: Job, at offset: Duration?, loop index: Int, started: @escaping @Sendable () -> Void = {},
        done: @escaping @Sendable (RequestRecord) -> Void
    ) {
        let box = pools[index % pools.count]
        let start: @Sendable () -> Void = { [self] in
            started()
            self.start(job, on: box, fresh: false, done: done)
        }
        if let offset {
            let wait = offset - (ContinuousClock.now - origin)
            if wait <= .zero {
                box.loop.execute(start)
            } else {
                box.loop.scheduleTask(in: .nanoseconds(Int64(wait.seconds * 1e9)), start)
            }
        } else {
            box.loop.execute(start)
        }
    }

    /// Opens `perLoop` keep-alive connections on every loop before the run, so its first
    /// requests do not pay (and queue behind) a burst of connection set-ups. Failures are left
    /// for the requests to report.
    func prewarm(perLoop: Int) async {
        await withTaskGroup(of: Void.self) { group in
            for box in pools {
                for _ in 0..<max(0, perLoop) {
                    group.addTask { [self] in
                        let handler = makeHandler(on: box)
                        try? await box.loop.submit { box.pool.open += 1 }.get()
                        guard let channel = try? await connect(box, handler: handler).get() else {
                            try? await box.loop.submit { box.pool.open -= 1 }.get()
                            return
                        }
                        try? await box.loop.submit { box.pool.idle.append((channel, handler)) }.get()
                    }
                }
            }
        }
    }

    private func makeHandler(on box: EventLoopBoundBox) -> ExchangeHandler {
        ExchangeHandler(
            origin: origin, target: target, loop: box.loop,
            release: { channel, handler, reusable in
                if reusable {
                    if let (job, done) = box.pool.popWaiting() {
                        handler.begin(job, channel: channel, reused: true, done: done)
                    } else {
                        box.pool.idle.append((channel, handler))
                    }
                } else {
                    channel.close(promise: nil)  // its close hands its place to a waiting job
                }
            },
            resend: { [self] job, done in
                self.start(job, on: box, fresh: true, done: done)
            })
    }

    /// Connects; the pool's open count drops when the connection closes, whatever closes it.
    private func connect(_ box: EventLoopBoundBox, handler: ExchangeHandler) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: box.loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: target.host, port: target.port)
            .map { channel in
                channel.closeFuture.whenComplete { [self] _ in
                    box.pool.open -= 1
                    // A connection gone: a waiting job may use the freed place.
                    if box.pool.open < maxConnectionsPerLoop, let (job, done) = box.pool.popWaiting() {
                        self.start(job, on: box, fresh: true, done: done)
                    }
                }
                return channel
            }
    }

    /// `fresh`: a new connection even when an idle one exists (a resend after a stale one).
    private func start(_ job: Job, on box: EventLoopBoundBox, fresh: Bool, done: @escaping @Sendable (RequestRecord) -> Void) {
        let pool = box.pool
        while !fresh, let (channel, handler) = pool.idle.popLast() {
            // Servers close idle keep-alive connections (llama.cpp after every stream): skip those.
            guard channel.isActive else { continue }
            handler.begin(job, channel: channel, reused: true, done: done)
            return
        }
        guard pool.open < maxConnectionsPerLoop else {
            pool.waiting.append((job, done))
            return
        }
        pool.open += 1
        let handler = makeHandler(on: box)
        let connectStarted = ContinuousClock.now - origin
        connect(box, handler: handler)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    handler.begin(job, channel: channel, reused: false, done: done)
                case .failure(let error):
                    box.pool.open -= 1
                    var record = job.record
                    record.tSend = connectStarted
                    record.error = "connect to \(self.target.host):\(self.target.port) failed: \(error)"
                    done(record)
                }
            }
    }
}

/// One connection's request/response exchanges, one at a time (no pipelining).
final class ExchangeHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let origin: ContinuousClock.Instant
    let target: BenchClient.Target
    let loop: any EventLoop
    /// Called when an exchange ended: whether the connection may carry another request.
    let release: (any Channel, ExchangeHandler, Bool) -> Void
    /// Sends a job again on a new connection.
    let resend: (BenchClient.Job, @escaping @Sendable (RequestRecord) -> Void) -> Void

    private var record: RequestRecord?
    private var done: (@Sendable (RequestRecord) -> Void)?
    private var channel: (any Channel)?
    private var isStream = false
    private var keepAlive = true
    private var observer = StreamObserver()
    private var body = ByteBuffer()
    private var job: BenchClient.Job?
    /// The connection carried an earlier exchange (it may have been closed by the server since);
    /// a prewarmed connection has not.
    private var reused = false
    private var exchanges = 0

    init(
        origin: ContinuousClock.Instant, target: BenchClient.Target, loop: any EventLoop,
        release: @escaping (any Channel, ExchangeHandler, Bool) -> Void,
        resend: @escaping (BenchClient.Job, @escaping @Sendable (RequestRecord) -> Void) -> Void
    ) {
        self.origin = origin
        self.target = target
        self.loop = loop
        self.release = release
        self.resend = resend
    }

    var now: Duration { ContinuousClock.now - origin }

    func begin(_ job: BenchClient.Job, channel: any Channel, reused: Bool, done: @escaping @Sendable (RequestRecord) -> Void) {
        self.job = job
        self.reused = reused && exchanges > 0
        var record = job.record
        self.channel = channel
        self.done = done
        isStream = false
        keepAlive = true
        observer = StreamObserver()
        body.clear()
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path, headers: job.headers)
        head.headers.replaceOrAdd(name: "host", value: target.hostHeader)
        head.headers.replaceOrAdd(name: "content-length", value: String(job.body.readableBytes))
        record.tSend = now
        self.record = record
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(job.body)), promise: nil)
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { [self] error in fail("could not send the request: \(error)") }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: written)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard record != nil else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            record!.status = Int(head.status.code)
            keepAlive = head.isKeepAlive
            isStream = head.status == .ok && head.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true
        case .body(var buffer):
            if isStream {
                observer.feed(buffer.readableBytesView, at: now)
            } else if body.readableBytes < 64 << 20 {
                body.writeBuffer(&buffer)
            }
        case .end:
            finish(reusable: keepAlive)
        }
    }

    private func finish(reusable: Bool) {
        guard var record, let done, let channel else { return }
        let end = now
        if isStream {
            observer.finish(at: end)
            record.tFirst = observer.first
            record.tLast = observer.last
            record.gaps = observer.gaps
            record.outputTokensClient = observer.chunks
            record.outputNonASCII = observer.sawNonASCII
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
        } else if record.status != nil {
            let json = try? JSONParser.parse(body.readableBytesView)
            if record.status == 200 {
                record.tFirst = end
                record.tLast = end
                record.outputTokensServer = json?["usage"]?["completion_tokens"]?.intValue
                record.promptTokens = json?["usage"]?["prompt_tokens"]?.intValue
            } else {
                let message = json?["error"]?["message"]?.stringValue ?? String(buffer: body).prefix(200).description
                record.error = "HTTP \(record.status ?? 0): \(message)"
            }
        }
        self.record = nil
        self.done = nil
        exchanges += 1
        done(record)
        release(channel, self, reusable)
    }

    private func fail(_ message: String) {
        guard let saved = record, let done else { return }
        record = nil
        self.done = nil
        channel?.close(promise: nil)
        // A reused connection lost before any answer: the server had closed it while idle and
        // never saw the request. Resend once on a fresh connection (as curl does), and say so
        // on its record: a resend is never silent (a fault test counts them).
        if saved.status == nil, reused, var job, !job.resent {
            job.resent = true
            resend(job, done)
            return
        }
        var failed = saved
        if failed.error == nil { failed.error = message }
        done(failed)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail("\(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(isStream ? "connection closed mid-stream" : "connection closed before the response ended")
        context.fireChannelInactive()
    }
}
