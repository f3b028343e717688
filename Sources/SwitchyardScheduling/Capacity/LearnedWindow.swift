/// How many requests to keep in flight on a backend that does not say how many it runs at once
/// (vLLM has no endpoint for `max_num_seqs`): learned from the engine's own waiting queue, so the
/// excess waits in Switchyard's lanes, where priority, fairness and deadlines apply, rather than
/// in the engine's FIFO.
///
/// - Starts at `initial` and, while the window is full and latency holds, doubles every
///   `growEvery` (slow start) until the engine first queues.
/// - When the engine reports waiting requests in two scrapes in a row (one could be a request
///   caught between arrival and the engine's next step) while ours are in flight, the window
///   drops to what the engine was running, and that becomes the ceiling.
/// - At the ceiling it holds; after `reprobeAfter` of full windows without queueing it tries one
///   more. Queueing again sends it back and doubles the wait before the next probe (up to
///   `maxReprobeAfter`); a probe that holds raises the ceiling.
/// - A connect timeout under load halves the window (once per `growEvery`): the backend cannot
///   even accept connections at this rate.
///
/// Pure: every event carries the clock reading.
package struct LearnedWindow: Sendable, Equatable {
    package struct Settings: Sendable, Equatable {
        package var initial = 4
        package var min = 1
        package var max = 256
        package var growEvery: Duration = .seconds(1)
        package var reprobeAfter: Duration = .seconds(30)
        package var maxReprobeAfter: Duration = .seconds(600)
        package init(initial: Int = 4, min: Int = 1, max: Int = 256) {
            self.min = Swift.max(1, min)
            self.max = Swift.max(self.min, max)
            self.initial = Swift.min(self.max, Swift.max(self.min, initial))
        }
    }

    package enum Change: Sendable, Equatable {
        case grew(from: Int, to: Int)
        case shrank(from: Int, to: Int, reason: String)
    }

    package let settings: Settings
    package private(set) var window: Int
    /// The most the engine ran without queueing, once it queued above it.
    package private(set) var ceiling: Int?
    private var lastChange: Duration
    private var queuedScrapes = 0
    private var probing = false
    private var reprobeAfter: Duration
    private var lastWasShrink = false
    private var lastLook: Duration

    package init(settings: Settings = Settings(), now: Duration) {
        self.settings = settings
        window = settings.initial
        lastChange = now
        lastLook = now
        reprobeAfter = settings.reprobeAfter
    }

    /// One scrape of the engine's metrics: `waiting` requests queued inside it and `running` ones
    /// (nil when it does not say), with `inflight` of ours on it.
    @discardableResult
    package mutating func observeEngine(running: Double?, waiting: Double, inflight: Int, now: Duration) -> Change? {
        guard waiting > 0, inflight > 0 else {
            queuedScrapes = 0
            return nil
        }
        queuedScrapes += 1
        guard queuedScrapes >= 2 else { return nil }
        queuedScrapes = 0
        let ran = running.map { Int($0.rounded(.down)) } ?? (inflight - Int(waiting.rounded(.up)))
        let next = Swift.max(settings.min, Swift.min(window - 1, ran))
        if probing { reprobeAfter = Swift.min(settings.maxReprobeAfter, reprobeAfter * 2) }
        return shrink(to: next, now: now, reason: "engine queued \(Int(waiting)) with \(ran) running")
    }

    /// A connection to the backend timed out while `inflight` of ours were on it.
    @discardableResult
    package mutating func connectTimedOut(inflight: Int, now: Duration) -> Change? {
        guard !(lastWasShrink && now - lastChange < settings.growEvery) else { return nil }
        let next = Swift.max(settings.min, Swift.min(window, Swift.max(1, inflight)) / 2)
        return shrink(to: next, now: now, reason: "connect timeout with \(inflight) in flight")
    }

    /// `next` becomes the ceiling (the most the backend took) and, when lower, the window.
    private mutating func shrink(to next: Int, now: Duration, reason: String) -> Change? {
        probing = false
        ceiling = next
        lastChange = now
        lastWasShrink = true
        guard next < window else { return nil }
        defer { window = next }
        return .shrank(from: window, to: next, reason: reason)
    }

    /// True when ``tick(now:saturated:latencyHolds:)`` would look at growing: at most once per
    /// `growEvery`, and not within `growEvery` of a change.
    /// When ``tick(now:saturated:latencyHolds:)`` next has something to decide.
    package var nextLook: Duration { Swift.max(lastChange, lastLook) + settings.growEvery }

    package func growthDue(now: Duration) -> Bool {
        now - lastChange >= settings.growEvery && now - lastLook >= settings.growEvery
    }

    /// Called often (every scheduler tick); once per `growEvery` it grows the window when the
    /// window was full since the last look (`saturated`), the engine did not queue, and latency
    /// holds.
    @discardableResult
    package mutating func tick(now: Duration, saturated: Bool, latencyHolds: Bool) -> Change? {
        guard growthDue(now: now) else { return nil }
        lastLook = now
        guard saturated, latencyHolds, queuedScrapes == 0 else { return nil }
        let from = window
        if probing {
            // The probe held for a whole step: the engine runs this many without queueing.
            probing = false
            ceiling = window
            reprobeAfter = settings.reprobeAfter
        }
        if let ceiling {
            if window < ceiling {
                window = Swift.min(ceiling, window * 2)
            } else if now - lastChange >= reprobeAfter, window < settings.max {
                window += 1
                probing = true
            } else {
                return nil
            }
        } else {
            guard window < settings.max else { return nil }
            window = Swift.min(settings.max, window * 2)
        }
        lastChange = now
        lastWasShrink = false
        return .grew(from: from, to: window)
    }
}
