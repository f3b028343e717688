import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchyardCore
import Synchronization

/// What `switchyard bench` sends and how.
package struct BenchOptions: Sendable {
    package enum Load: Sendable, Equatable {
        /// Open loop: requests go at precomputed times whatever the server does.
        case rate(Double, ArrivalProcess)
        /// Closed loop: this many clients, each sending its next request when the last ended.
        case concurrency(Int)
    }

    package enum API: String, Sendable, CaseIterable { case chat, completions }

    /// The server's OpenAI base URL, e.g. `http://127.0.0.1:8080/v1`.
    package var baseURL: String
    package var model: String
    package var api: API = .chat
    package var load: Load
    package var duration: Duration?
    package var requests: Int?
    /// Requests scheduled before this are sent but left out of the statistics.
    package var warmup: Duration = .zero
    package var seed: UInt64 = 1
    package var workload = Workload()
    package var stream = true
    /// Sent as `x-switchyard-lane`; also the lane name in the records ("default" without).
    package var lane: String?
    package var apiKey: String?
    /// After the load (its duration, or its last request sent), how long requests still in
    /// flight may take; then they are given up and recorded as incomplete (SLO misses). Nil:
    /// wait for every one.
    package var drainTimeout: Duration? = .seconds(30)

    package init(baseURL: String, model: String, load: Load) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.model = model
        self.load = load
    }

    package var laneLabel: String { label ?? lane ?? "default" }
    /// Name of the lane in the records when it differs from the header (acceptance lanes).
    package var label: String?
}

/// Live counters for the progress line.
package struct BenchProgress: Sendable {
    package var elapsed: Duration
    package var sent: Int
    package var inFlight: Int
    package var completed: Int
    package var errors: Int
    /// Completed requests per second since the start.
    package var achievedRate: Double
    package var ttftP50: Double?
    package var ttftP99: Double?
    /// The load is over and requests are still in flight: how long they may still take (nil:
    /// without bound); absent while the load runs.
    package var draining: Duration??

    package var line: String {
        func ms(_ v: Double?) -> String { v.map { String(format: "%.0fms", $0 * 1000) } ?? "-" }
        var line = String(
            format: "%6.1fs  sent %d  in flight %d  done %d  errors %d  %.1f req/s  TTFT p50 %@ p99 %@",
            elapsed.seconds, sent, inFlight, completed, errors, achievedRate, ms(ttftP50), ms(ttftP99))
        if let draining {
            line +=
                "  draining: "
                + (draining.map { String(format: "%.0f s left, then the rest count as incomplete", max(0, $0.seconds)) } ?? "waiting for all")
        }
        return line
    }
}

/// Sends the load of ``BenchOptions`` and measures each request per reference/metrics.md, on
/// NIO event loops (see ``BenchClient``).
package final class LoadRunner: Sendable {
    package let options: BenchOptions
    private let origin: ContinuousClock.Instant
    private let counters = Mutex(Counters())
    private let drainTimer = Mutex<Task<Void, Never>?>(nil)
    private let threads: Int

    struct Counters {
        var sent = 0
        var completed = 0
        var errors = 0
        /// TTFT in microseconds, 3 significant digits (HdrHistogram): the live line's percentiles
        /// in constant memory and time however long the run; the report uses exact ranks.
        var ttfts = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var records: [RequestRecord] = []
        var finished: CheckedContinuation<Void, Never>?
        var expected: Int?
        /// Requests issued and not finished: id → scheduled time (the incomplete ones' records).
        var open: [Int: Duration] = [:]
        /// When the load ended (drain started), on the run clock.
        var loadEnded: Duration?
        /// Given up at the drain timeout: late answers are ignored.
        var closed = false
    }

    /// - Parameter threads: event loops (default: the cores).
    /// - Parameter origin: time zero of the records (lanes of one acceptance run share it).
    package init(options: BenchOptions, threads: Int = System.coreCount, origin: ContinuousClock.Instant = .now) {
        self.options = options
        self.threads = threads
        self.origin = origin
    }

    var now: Duration { ContinuousClock.now - origin }

    package func progress() -> BenchProgress {
        let elapsed = now
        return counters.withLock { c in
            let any = c.ttfts.totalCount > 0
            return BenchProgress(
                elapsed: elapsed, sent: c.sent, inFlight: c.sent - c.completed, completed: c.completed, errors: c.errors,
                achievedRate: elapsed > .zero ? Double(c.completed) / elapsed.seconds : 0,
                ttftP50: any ? Double(c.ttfts.valueAtPercentile(50)) / 1e6 : nil,
                ttftP99: any ? Double(c.ttfts.valueAtPercentile(99)) / 1e6 : nil,
                draining: c.sent > c.completed ? c.loadEnded.map { end in options.drainTimeout.map { end + $0 - elapsed } } : nil)
        }
    }

    package struct SetupError: Error, CustomStringConvertible {
        package let description: String
    }

    /// Runs the whole load; returns every request's record, in id order.
    package func run() async throws(SetupError) -> [RequestRecord] {
        guard let url = HTTPURL(options.baseURL), url.scheme == "http" else {
            throw SetupError(description: "--url must be an http:// OpenAI base URL (got '\(options.baseURL)')")
        }
        let path = url.path + (options.api == .chat ? "/chat/completions" : "/completions")
        let target = BenchClient.Target(
            host: url.host, port: url.port, path: path,
            hostHeader: url.host.contains(":") ? "[\(url.host)]:\(url.port)" : "\(url.host):\(url.port)")
        let client = BenchClient(target: target, threads: threads, origin: origin)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: options.stream ? "text/event-stream" : "application/json")
        if let lane = options.lane { headers.add(name: "x-switchyard-lane", value: lane) }
        if let key = options.apiKey { headers.add(name: "authorization", value: "Bearer \(key)") }
        let fixedHeaders = headers
        @Sendable func job(_ i: Int, at offset: Duration) -> BenchClient.Job {
            counters.withLock { $0.open[i] = offset }
            return BenchClient.Job(
                id: i, lane: options.laneLabel, warmup: offset < options.warmup, tSched: offset, body: body(for: i), headers: fixedHeaders)
        }
        switch options.load {
        case .rate(let rate, _): await client.prewarm(perLoop: min(32, max(4, Int(rate / 500) / client.loops)))
        case .concurrency(let c): await client.prewarm(perLoop: (c + client.loops - 1) / client.loops)
        }
        // The schedule starts once the connections are up (a few ms after the origin).
        let start = now
        var scheduleEnd = Duration.zero
        switch options.load {
        case .rate(let rate, let process):
            let schedule = Schedule.make(rate: rate, process: process, seed: options.seed, count: options.requests, duration: options.duration)
                .map { $0 + start }
            counters.withLock { $0.expected = schedule.count }
            scheduleEnd = schedule.last ?? start
            // Timers are armed a little ahead, in slices, on the event loops: they fire on time
            // however busy this task is, and memory stays bounded on long runs.
            // Small slices (short bursts of timer arming on the loops), armed well ahead (this
            // task may wake up late by that much without anyone sending late).
            let slice: Duration = .milliseconds(50)
            let lead: Duration = .milliseconds(400)
            var next = 0
            while next < schedule.count {
                let horizon = schedule[next] + slice
                var i = next
                while i < schedule.count, schedule[i] < horizon {
                    let offset = schedule[i]
                    let request = job(i, at: offset)
                    client.schedule(request, at: offset, loop: i, started: { [self] in counters.withLock { $0.sent += 1 } }) { [self] record in
                        self.finished(record)
                    }
                    i += 1
                }
                next = i
                if next < schedule.count {
                    try? await Task.sleep(until: origin + schedule[next] - lead, clock: .continuous)
                }
            }
        case .concurrency(let clients):
            let end = options.duration.map { origin + $0 }
            let limit = options.requests
            let issued = Mutex(0)
            counters.withLock { $0.expected = nil }
            @Sendable func issue(loop: Int) {
                let i: Int? = issued.withLock { n in
                    if let end, ContinuousClock.now >= end { return nil }
                    if let limit, n >= limit { return nil }
                    defer { n += 1 }
                    return n
                }
                guard let i else {
                    loadOver()
                    counters.withLock { c in
                        c.expected = issued.withLock { $0 }
                        if c.completed == c.expected, let k = c.finished {
                            c.finished = nil
                            k.resume()
                        }
                    }
                    return
                }
                counters.withLock { $0.sent += 1 }
                client.schedule(job(i, at: now), at: nil, loop: loop) { [self] record in
                    self.finished(record)
                    issue(loop: loop)
                }
            }
            for c in 0..<max(1, clients) { issue(loop: c) }
        }
        // The load is over at the end of its duration, or when its last request is sent (open
        // loop: its scheduled time; closed loop: ``loadOver()`` from the client that ran out).
        switch options.load {
        case .rate: try? await Task.sleep(until: origin + max(scheduleEnd, options.duration ?? .zero), clock: .continuous)
        case .concurrency: if let duration = options.duration { try? await Task.sleep(until: origin + duration, clock: .continuous) }
        }
        if case .rate = options.load { loadOver() } else if options.duration != nil { loadOver() }
        await withCheckedContinuation { (k: CheckedContinuation<Void, Never>) in
            let resumeNow = counters.withLock { c -> Bool in
                if c.closed { return true }
                if let expected = c.expected, c.completed >= expected { return true }
                c.finished = k
                return false
            }
            if resumeNow { k.resume() }
        }
        drainTimer.withLock { $0?.cancel() }
        await client.shutdown()
        return counters.withLock { $0.records }.sorted { $0.id < $1.id }
    }

    /// The load is over: requests in flight have the drain timeout to finish (once).
    private func loadOver() {
        let first = counters.withLock { c -> Bool in
            guard c.loadEnded == nil else { return false }
            c.loadEnded = now
            return true
        }
        guard first, let timeout = options.drainTimeout else { return }
        let deadline = ContinuousClock.now + timeout
        drainTimer.withLock {
            $0 = Task { [self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                if !Task.isCancelled { giveUp() }
            }
        }
    }

    /// The drain timeout: every request still open is recorded as incomplete (an error, so an
    /// SLO miss), and answers that come later are ignored.
    private func giveUp() {
        let k = counters.withLock { c -> CheckedContinuation<Void, Never>? in
            guard !c.closed else { return nil }
            c.closed = true
            let seconds = Int((options.drainTimeout ?? .zero).seconds.rounded())
            for (id, tSched) in c.open {
                var record = RequestRecord(id: id, lane: options.laneLabel, tSched: tSched)
                record.warmup = tSched < options.warmup
                record.phase = record.warmup ? "warmup" : "measured"
                record.error = "incomplete: no answer \(seconds) s after the load ended (--drain-timeout)"
                c.records.append(record)
                c.completed += 1
                c.errors += 1
            }
            c.open = [:]
            defer { c.finished = nil }
            return c.finished
        }
        k?.resume()
    }

    private func finished(_ record: RequestRecord) {
        let k = counters.withLock { c -> CheckedContinuation<Void, Never>? in
            guard !c.closed else { return nil }
            c.open[record.id] = nil
            c.completed += 1
            if !record.succeeded { c.errors += 1 }
            if let ttft = record.ttft, record.succeeded, !record.warmup { _ = c.ttfts.record(UInt64(max(0, ttft) * 1e6)) }
            c.records.append(record)
            guard let expected = c.expected, c.completed >= expected, let k = c.finished else { return nil }
            c.finished = nil
            return k
        }
        k?.resume()
    }

    func body(for index: Int) -> ByteBuffer {
        let (prompt, maxTokens) = options.workload.request(index, seed: options.seed)
        var fields: [(String, JSONValue)] = [("model", .string(options.model))]
        switch options.api {
        case .chat: fields.append(("messages", .array([.object([("role", .string("user")), ("content", .string(prompt))])])))
        case .completions: fields.append(("prompt", .string(prompt)))
        }
        fields.append(("max_tokens", .number(maxTokens)))
        if options.workload.ignoreEOS { fields.append(("ignore_eos", .bool(true))) }
        if options.stream {
            fields.append(("stream", .bool(true)))
            fields.append(("stream_options", .object([("include_usage", .bool(true))])))
        }
        return ByteBuffer(bytes: JSONValue.object(fields).serialized())
    }
}
