import NIOCore
import SwitchyardCore

/// Why an attempt was stopped before its answer ended.
enum StopReason: Sendable, Equatable {
    case clientClosed
    case firstByteTimeout
    case idleTimeout
    case totalTimeout
    /// The pool took the slot back for a higher-priority request (nothing sent yet).
    case preempted
    /// The gateway's shutdown grace ran out.
    case shutdown
}

/// One attempt of one request at a backend, as a pure state machine: events in (sent, the
/// response head, body parts, its end, the connection closing, the client leaving or slowing
/// down, a preemption, the timer at `now`), actions out (send, commit the stream, emit bytes to
/// the client, release or keep the connection, pause reading, end the attempt) plus its next
/// deadline. No I/O and no clock of its own: ``ExchangeDriver`` carries the actions out, for the
/// event-loop fast path and the router path alike.
///
/// It owns the per-attempt rules of the README:
/// - a stream is answered as a stream only for a 200 with `text/event-stream`; anything else is
///   a whole answer, capped at ``Limits/maxResponseBytes``;
/// - the first-byte limit applies until the head of a whole answer or the first event reaches the
///   client, then the idle limit between reads; the total deadline always; the idle limit is
///   suspended while the client is not reading (it is not the backend that idles then);
/// - a stream commits (200 to the client, no more retries, no preemption) with its first bytes;
///   a stream that ends before that is still retryable, unless it was malformed;
/// - a pooled keep-alive connection that turns out closed is resent once on a fresh connection
///   (the request never reached the server);
/// - token timing (TTFT, TPOT, stalls) from the relay's token-bearing chunks.
///
/// How each ending settles (the lease, metrics, the log, what the client gets) is decided once,
/// in `Proxy+Endings.swift`.
struct UpstreamExchange {
    struct Limits {
        var firstByte: Duration
        var idle: Duration
        /// The request's total deadline (the lane's or the client's, whichever is sooner).
        var deadline: ContinuousClock.Instant
        var maxResponseBytes: Int
    }

    enum Phase: Equatable {
        case sending
        case awaitingHead
        case whole
        case stream
        case finished
    }

    enum Action {
        /// Write the request: on a pooled connection if one is open, else (or when `fresh`) on
        /// a new one. `fresh` is the resend after a stale pooled connection.
        case send(fresh: Bool)
        /// The stream's 200 head goes to the client; nothing is retried after this.
        case commit
        /// Stream bytes for the client.
        case emit([UInt8])
        /// Done with the upstream connection: back to the pool (`reuse`) or closed.
        case releaseConnection(reuse: Bool)
        /// Backpressure: stop or resume reading from the backend.
        case setReading(Bool)
        /// The attempt is over; nothing follows.
        case end(Ending)
    }

    enum Ending {
        /// A whole answer (any status but 429/503).
        case whole(status: Int, contentType: String?, body: ByteBuffer)
        /// 429 or 503: the replica is overloaded; another may answer.
        case overloaded(status: Int, retryAfter: String?, body: ByteBuffer)
        /// No response came (connect failed, connection lost before the head).
        case failedBeforeResponse((any Error)?)
        /// The connection was lost while a whole answer was being read.
        case lostMidAnswer((any Error)?)
        /// The whole answer exceeded ``Limits/maxResponseBytes``.
        case tooLarge
        /// A stream that ended, failed or turned out malformed before its first event reached
        /// the client.
        case noFirstEvent(readError: (any Error)?)
        /// A committed stream ended: cleanly (`stop` and `readError` nil, see the relay), lost,
        /// or stopped.
        case streamEnded(stop: StopReason?, readError: (any Error)?)
        /// Stopped before anything reached the client.
        case stopped(StopReason)
    }

    let limits: Limits
    /// The client asked for a stream.
    let stream: Bool
    /// When the attempt began (TTFT as this replica served it, connecting included).
    let sent: ContinuousClock.Instant
    private(set) var phase = Phase.sending
    private(set) var committed = false
    private(set) var relay: StreamRelay
    private(set) var tokens = TokenTiming()
    private var reused = false
    private var resent = false
    private var paused = false
    private var lastActivity: ContinuousClock.Instant
    private var idleLimit: Duration
    private var status = 0
    private var contentType: String?
    private var retryAfter: String?
    private var keepAlive = true
    private var collected = ByteBuffer()

    init(limits: Limits, stream: Bool, relay: StreamRelay, now: ContinuousClock.Instant) {
        self.limits = limits
        self.stream = stream
        self.relay = relay
        sent = now
        lastActivity = now
        idleLimit = limits.firstByte
    }

    /// The first action: send the request.
    func begin() -> Action { .send(fresh: false) }

    /// The request was written (`reused`: on a pooled connection).
    mutating func sent(reused: Bool, now: ContinuousClock.Instant) {
        guard phase == .sending else { return }
        self.reused = reused
        lastActivity = now
        phase = .awaitingHead
    }

    mutating func head(status: Int, contentType: String?, retryAfter: String?, keepAlive: Bool, now: ContinuousClock.Instant) {
        guard phase == .awaitingHead else { return }
        lastActivity = now
        self.status = status
        self.keepAlive = keepAlive
        self.contentType = contentType
        if stream, status == 200, contentType?.lowercased().hasPrefix("text/event-stream") == true {
            phase = .stream
        } else {
            phase = .whole
            self.retryAfter = retryAfter
            idleLimit = limits.idle
        }
    }

    mutating func body(_ chunk: ByteBuffer, now: ContinuousClock.Instant) -> [Action] {
        lastActivity = now
        switch phase {
        case .whole:
            guard collected.readableBytes + chunk.readableBytes <= limits.maxResponseBytes else {
                return finish(.tooLarge, reuse: false)
            }
            if collected.readableBytes == 0 { collected = chunk } else { collected.writeImmutableBuffer(chunk) }
            return []
        case .stream:
            let (out, sawToken) = chunk.withUnsafeReadableBytes { relay.process($0) }
            if sawToken { tokens.note(now) }
            var actions = emit(out)
            if relay.stop != nil {
                // Malformed, or an in-band error: nothing more is read.
                actions += finish(committed ? .streamEnded(stop: nil, readError: nil) : .noFirstEvent(readError: nil), reuse: false)
            }
            return actions
        case .sending, .awaitingHead, .finished:
            return []
        }
    }

    /// The response ended cleanly.
    mutating func end(now: ContinuousClock.Instant) -> [Action] {
        lastActivity = now
        switch phase {
        case .whole:
            if status == 429 || status == 503 {
                return finish(.overloaded(status: status, retryAfter: retryAfter, body: collected), reuse: keepAlive)
            }
            return finish(.whole(status: status, contentType: contentType, body: collected), reuse: keepAlive)
        case .stream:
            var actions: [Action] = [.releaseConnection(reuse: keepAlive)]
            actions += emit(relay.finish())
            phase = .finished
            actions.append(.end(committed ? .streamEnded(stop: nil, readError: nil) : .noFirstEvent(readError: nil)))
            return actions
        case .sending, .awaitingHead, .finished:
            return []
        }
    }

    /// The connection closed (or failed to open) before the response ended.
    mutating func closed(_ error: (any Error)?, now: ContinuousClock.Instant) -> [Action] {
        switch phase {
        case .sending, .awaitingHead:
            if reused, !resent {
                // A pooled keep-alive connection the server had closed: the request never reached
                // it. Resend once on a fresh connection, as curl does; not a backend failure.
                resent = true
                reused = false
                phase = .sending
                return [.send(fresh: true)]
            }
            phase = .finished
            return [.end(.failedBeforeResponse(error))]
        case .whole:
            phase = .finished
            return [.end(.lostMidAnswer(error))]
        case .stream:
            phase = .finished
            let readError = error ?? ChannelError.eof
            return [.end(committed ? .streamEnded(stop: nil, readError: readError) : .noFirstEvent(readError: readError))]
        case .finished:
            return []
        }
    }

    mutating func clientGone() -> [Action] {
        phase == .finished ? [] : stop(.clientClosed)
    }

    /// The shutdown grace ran out: the attempt ends now, committed or not.
    mutating func shutdown() -> [Action] {
        phase == .finished ? [] : stop(.shutdown)
    }

    /// The pool wants the slot back: honoured only while nothing reached the client.
    mutating func preempted() -> [Action] {
        phase == .finished || committed ? [] : stop(.preempted)
    }

    /// The client's connection can take more (or not): reading from the backend follows it.
    mutating func clientWritable(_ writable: Bool, now: ContinuousClock.Instant) -> [Action] {
        guard phase != .finished, paused == writable else { return [] }
        paused = !writable
        if writable { lastActivity = now }
        return [.setReading(writable)]
    }

    /// When a limit may next pass; nil once finished.
    var nextDeadline: ContinuousClock.Instant? {
        guard phase != .finished else { return nil }
        return paused ? limits.deadline : min(lastActivity + idleLimit, limits.deadline)
    }

    /// The timer fired: stops the attempt if a limit passed.
    mutating func timer(now: ContinuousClock.Instant) -> [Action] {
        guard phase != .finished else { return [] }
        if now >= limits.deadline { return stop(.totalTimeout) }
        if !paused, now >= lastActivity + idleLimit {
            let waitingForFirst = phase == .sending || phase == .awaitingHead || (phase == .stream && !committed)
            return stop(waitingForFirst ? .firstByteTimeout : .idleTimeout)
        }
        return []
    }

    /// The commit was refused because a preemption came first (see ``PreemptionSignal``).
    mutating func commitRefused() -> [Action] {
        committed = false
        return stop(.preempted)
    }

    private mutating func stop(_ reason: StopReason) -> [Action] {
        finish(committed ? .streamEnded(stop: reason, readError: nil) : .stopped(reason), reuse: false)
    }

    private mutating func finish(_ ending: Ending, reuse: Bool) -> [Action] {
        phase = .finished
        return [.releaseConnection(reuse: reuse), .end(ending)]
    }

    private mutating func emit(_ out: [UInt8]) -> [Action] {
        guard !out.isEmpty else { return [] }
        guard committed else {
            committed = true
            idleLimit = limits.idle
            return [.commit, .emit(out)]
        }
        return [.emit(out)]
    }
}
