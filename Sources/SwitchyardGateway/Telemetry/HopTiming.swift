/// Where one request's time went, hop by hop: the `Server-Timing` response header and the
/// access log's fields. Pure: the exchange notes the moments, ``parts(start:queue:now:)`` splits
/// the time up to `now` (when the answer starts, for the header; its end, for the log).
///
/// The parts add up to the total: `queue` (waiting for a slot) + `connect` (opening the
/// backend connection; zero on a pooled one) + `upstream` (request written → `now`: the backend
/// computing and answering) + `gateway` (the rest: reading and checking the request, admission,
/// earlier attempts, relaying). `ttfb` (request written → the backend's first byte) is part of
/// `upstream`, shown on its own.
struct HopTiming: Sendable, Equatable {
    /// The last attempt's connection set-up (zero: a pooled connection).
    var connect: Duration?
    /// When the last attempt's request was written.
    var sent: ContinuousClock.Instant?
    /// Written → the backend's response head.
    var ttfb: Duration?

    mutating func firstByteArrived(at now: ContinuousClock.Instant) {
        if let sent, ttfb == nil { ttfb = now - sent }
    }

    struct Parts: Sendable, Equatable {
        var queue: Duration
        var connect: Duration?
        var ttfb: Duration?
        var upstream: Duration?
        var gateway: Duration
        var total: Duration

        /// `queue;dur=0.1;desc="…", …` in milliseconds (RFC: W3C Server Timing).
        var serverTiming: String {
            var entries = [("queue", queue, "waiting for a slot")]
            if let connect { entries.append(("connect", connect, "backend connection")) }
            if let ttfb { entries.append(("ttfb", ttfb, "backend first byte")) }
            if let upstream { entries.append(("upstream", upstream, "backend until the answer started")) }
            entries.append(("gateway", gateway, "gateway overhead"))
            entries.append(("total", total, "total"))
            return entries.map { "\($0.0);dur=\(HopTiming.ms($0.1));desc=\"\($0.2)\"" }.joined(separator: ", ")
        }
    }

    func parts(start: ContinuousClock.Instant, queue: Duration, now: ContinuousClock.Instant) -> Parts {
        let total = max(.zero, now - start)
        let upstream = sent.map { max(.zero, now - $0) }
        let gateway = total - queue - (connect ?? .zero) - (upstream ?? .zero)
        return Parts(queue: queue, connect: connect, ttfb: ttfb, upstream: upstream, gateway: max(.zero, gateway), total: total)
    }

    /// Milliseconds with a tenth: `12.3`.
    static func ms(_ d: Duration) -> String {
        let tenths = Int((d.seconds * 10_000).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
