import HTTPTypes
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// Where an ``ExchangeDriver`` sends what the client gets, and how its timer is kept: the client
/// connection's ``FastPathHandler`` on the fast path (``FastExchange``), a Hummingbird response
/// on the router path (``RouterSink``). Called on the driver's event loop. A sink decides nothing
/// about the request; it only writes in its own types.
protocol ExchangeSink: AnyObject {
    /// The stream's 200 head (`headers`: content type and the gateway's headers).
    func commitStream(_ headers: HTTPHeaders)
    /// Stream bytes; they go out at the next ``flush()`` or the stream's end.
    func emit(_ bytes: ByteBuffer)
    /// The end of one read from the backend: what was emitted leaves in one write.
    func flush()
    /// The committed stream is over; `ending` is the SSE error event of an unclean end.
    func endStream(_ ending: ByteBuffer?, clientGone: Bool)
    /// A whole answer (`headers` hold neither a length nor the server name).
    func answer(_ status: Int, _ headers: HTTPHeaders, _ body: ByteBuffer)
    /// The request ends with `error`, nothing having reached the client (it was counted and
    /// logged; `headers` are the gateway's). Nothing is written when the client is gone.
    func failed(_ error: APIError, headers: HTTPFields, clientGone: Bool)
    /// Nothing reached the client and another replica may do better.
    func retry(_ failure: Proxy.RetryableFailure)
    /// The pool took the slot back for a higher lane (nothing reached the client).
    func preempted()
    /// Makes sure ``ExchangeDriver/timerFired()`` is called by `deadline`.
    func armTimer(by deadline: NIODeadline)
}

/// One timer for the exchanges of a connection or a request: moved only when a sooner deadline
/// is asked for; when it fires, `fired` says whether (and when) to look again.
struct ExchangeTimer {
    private var scheduled: Scheduled<Void>?
    private var deadline = NIODeadline.distantFuture

    /// Whether the timer must be (re)scheduled for `deadline`; cancels the later one if so.
    mutating func needsArming(by deadline: NIODeadline) -> Bool {
        guard deadline < self.deadline else { return false }
        scheduled?.cancel()
        self.deadline = deadline
        return true
    }

    mutating func armed(_ task: Scheduled<Void>) { scheduled = task }

    /// The timer fired (or is no longer wanted).
    mutating func reset() {
        scheduled?.cancel()
        scheduled = nil
        deadline = .distantFuture
    }
}
