/// Passive health of one backend from real traffic: after `consecutiveFailures` failures in a row
/// the backend is ejected for a backoff that doubles on each ejection (up to `maxEjection`). When
/// the ejection ends it is half-open: exactly one probe request is let through; success re-admits
/// it and resets the backoff, failure ejects it again for longer.
package struct OutlierDetector: Sendable, Equatable {
    package enum State: Sendable, Equatable {
        case healthy
        case ejected(until: Duration)
        /// Ejection over; `probing` is true while the single probe request is in flight.
        case halfOpen(probing: Bool)
    }

    package let consecutiveFailureLimit: Int
    package let baseEjection: Duration
    package let maxEjection: Duration

    package private(set) var state: State = .healthy
    package private(set) var consecutiveFailures = 0
    package private(set) var ejections = 0

    package init(consecutiveFailures: Int, baseEjection: Duration, maxEjection: Duration) {
        consecutiveFailureLimit = consecutiveFailures
        self.baseEjection = baseEjection
        self.maxEjection = maxEjection
    }

    /// What a new request may do with this backend now.
    package enum Admission: Sendable, Equatable {
        case admit
        /// Admit as the single half-open probe.
        case probe
        case refuse
    }

    /// Whether a request may be routed here; `.probe` must be followed by ``startProbe(now:)``.
    package func admission(now: Duration) -> Admission {
        switch state {
        case .healthy: return .admit
        case .ejected(let until): return now >= until ? .probe : .refuse
        case .halfOpen(let probing): return probing ? .refuse : .probe
        }
    }

    package mutating func startProbe(now: Duration) {
        state = .halfOpen(probing: true)
    }

    package mutating func recordSuccess() {
        consecutiveFailures = 0
        if state != .healthy {
            state = .healthy
            ejections = 0
        }
    }

    /// Records a failed request; returns true when this failure ejected the backend.
    @discardableResult
    package mutating func recordFailure(now: Duration) -> Bool {
        consecutiveFailures += 1
        switch state {
        case .halfOpen:
            eject(now: now)
            return true
        case .healthy where consecutiveFailures >= consecutiveFailureLimit:
            eject(now: now)
            return true
        default:
            return false
        }
    }

    /// The probe was abandoned without an answer (e.g. cancelled): let another request probe.
    package mutating func cancelProbe() {
        if case .halfOpen(true) = state { state = .halfOpen(probing: false) }
    }

    private mutating func eject(now: Duration) {
        let factor = Double(1 << min(ejections, 30))
        let length = min(baseEjection * factor, maxEjection)
        ejections += 1
        state = .ejected(until: now + length)
    }

    package var isEjected: Bool {
        if case .healthy = state { return false }
        return true
    }
}
