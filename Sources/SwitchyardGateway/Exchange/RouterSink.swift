import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// The router path's side of one attempt: turns what the ``ExchangeDriver`` sends into the
/// attempt's result (``Proxy/AttemptResult``) for the async handler, and a committed stream into
/// a Hummingbird response body fed through a back-pressured sequence: when the client reads
/// slowly, reading from the backend pauses.
final class RouterSink: ExchangeSink {
    typealias Producer = NIOAsyncSequenceProducer<
        ByteBuffer, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, BodyDemand
    >

    private let loop: any EventLoop
    private let result: EventLoopPromise<Proxy.AttemptResult>
    private var driver: ExchangeDriver?
    private var source: Producer.Source?
    /// Emitted since the last flush.
    private var pending = ByteBuffer()
    private var timer = ExchangeTimer()
    /// Called once when the attempt is over (unsubscribes from the client and the pool).
    private var onFinish: (() -> Void)?

    init(loop: any EventLoop, result: EventLoopPromise<Proxy.AttemptResult>) {
        self.loop = loop
        self.result = result
    }

    /// Starts `driver` (made with this sink); `onFinish` runs when the attempt is over.
    func start(_ driver: ExchangeDriver, onFinish: @escaping () -> Void) {
        self.driver = driver
        self.onFinish = onFinish
        driver.begin()
    }

    // MARK: ExchangeSink

    func commitStream(_ headers: HTTPHeaders) {
        let produced = Producer.makeSequence(
            elementType: ByteBuffer.self, backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: false,
            delegate: BodyDemand(driver: driver.map { NIOLoopBound($0, eventLoop: loop) }))
        source = produced.source
        let sequence = produced.sequence
        let body = ResponseBody { writer in
            do {
                for try await chunk in sequence { try await writer.write(chunk) }
                try await writer.finish(nil)
            } catch {
                // The client is gone: the sequence ending tells the exchange.
            }
        }
        result.succeed(.done(Response(status: .ok, headers: Self.fields(headers), body: body)))
    }

    func emit(_ bytes: ByteBuffer) {
        if pending.readableBytes == 0 {
            pending = bytes
        } else {
            pending.writeImmutableBuffer(bytes)
        }
    }

    func flush() {
        guard pending.readableBytes > 0, let source else { return }
        let chunk = pending
        pending = ByteBuffer()
        if source.yield(chunk) == .stopProducing { driver?.clientWritable(false) }
    }

    func endStream(_ ending: ByteBuffer?, clientGone: Bool) {
        if let ending { emit(ending) }
        flush()
        source?.finish()
        finish()
    }

    func answer(_ status: Int, _ headers: HTTPHeaders, _ body: ByteBuffer) {
        result.succeed(.done(Response(status: .init(code: status), headers: Self.fields(headers), body: .init(byteBuffer: body))))
        finish()
    }

    func failed(_ error: APIError, headers: HTTPFields, clientGone: Bool) {
        result.succeed(.done(GatewayResponses.error(error, headers: headers)))
        finish()
    }

    func retry(_ failure: Proxy.RetryableFailure) {
        result.succeed(.retry(failure))
        finish()
    }

    func preempted() {
        result.succeed(.preempted)
        finish()
    }

    func armTimer(by deadline: NIODeadline) {
        guard timer.needsArming(by: deadline) else { return }
        timer.armed(
            loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
                timer.reset()
                if let next = driver?.timerFired() { armTimer(by: next) }
            })
    }

    /// The driver's NIO headers as Hummingbird's.
    private static func fields(_ headers: HTTPHeaders) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        return fields
    }

    private func finish() {
        timer.reset()
        driver = nil
        onFinish?()
        onFinish = nil
    }

    /// The response body's demand, reported to the exchange on its loop.
    struct BodyDemand: NIOAsyncSequenceProducerDelegate {
        let driver: NIOLoopBound<ExchangeDriver>?

        func produceMore() {
            guard let driver else { return }
            driver.eventLoop.execute { driver.value.clientWritable(true) }
        }

        func didTerminate() {
            guard let driver else { return }
            driver.eventLoop.execute { driver.value.clientGone() }
        }
    }
}
