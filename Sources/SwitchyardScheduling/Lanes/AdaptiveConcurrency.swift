/// Per-replica concurrency window, AIMD on what the backend and the SLOs say.
///
/// Every `interval`, from the window's observations: grow by one when p95 TPOT is under
/// `(1 − margin) × SLO`, TTFT under its SLO, and the engine reported no deferral or preemption;
/// shrink ×`decrease` on an SLO breach, a backend 429/503, or rising deferrals/preemptions.
/// Bounded by `min` and the engine's slot count (`max`).
package struct AdaptiveConcurrency: Sendable, Equatable {
    package struct Observation: Sendable, Equatable {
        package var tpotP95: Duration?
        package var ttftP95: Duration?
        /// Backend 429/503 answers in the window.
        package var overloadAnswers = 0
        /// Increase of the engine's deferred / preempted counters over the window.
        package var deferrals = 0
        package var preemptions = 0

        package init(tpotP95: Duration? = nil, ttftP95: Duration? = nil, overloadAnswers: Int = 0, deferrals: Int = 0, preemptions: Int = 0) {
            self.tpotP95 = tpotP95
            self.ttftP95 = ttftP95
            self.overloadAnswers = overloadAnswers
            self.deferrals = deferrals
            self.preemptions = preemptions
        }
    }

    package let min: Int
    package let max: Int
    package let tpotSLO: Duration?
    package let ttftSLO: Duration?
    package let margin: Double
    package let decrease: Double
    /// Fractional window, so repeated ×0.9 steps are not lost to rounding.
    private var exact: Double

    package var window: Int { Swift.max(min, Swift.min(max, Int(exact.rounded(.down)))) }

    package init(min: Int, max: Int, initial: Int? = nil, tpotSLO: Duration?, ttftSLO: Duration?, margin: Double = 0.2, decrease: Double = 0.9) {
        let lower = Swift.max(1, min)
        let upper = Swift.max(lower, max)
        self.min = lower
        self.max = upper
        self.tpotSLO = tpotSLO
        self.ttftSLO = ttftSLO
        self.margin = margin
        self.decrease = decrease
        exact = Double(initial.map { Swift.max(lower, Swift.min(upper, $0)) } ?? upper)
    }

    package enum Decision: Sendable, Equatable { case increase, decrease, hold }

    /// Applies one window's observations; returns what it did.
    @discardableResult
    package mutating func update(_ o: Observation) -> Decision {
        let breach =
            (tpotSLO.flatMap { slo in o.tpotP95.map { $0 > slo } } ?? false)
            || (ttftSLO.flatMap { slo in o.ttftP95.map { $0 > slo } } ?? false)
        if breach || o.overloadAnswers > 0 || o.deferrals > 0 || o.preemptions > 0 {
            let next = Swift.max(Double(min), exact * decrease)
            defer { exact = next }
            return next < exact ? .decrease : .hold
        }
        let headroom = tpotSLO.flatMap { slo in o.tpotP95.map { $0 < slo * (1 - margin) } } ?? true
        guard headroom, exact < Double(max) else { return .hold }
        exact = Swift.min(Double(max), exact.rounded(.down) + 1)
        return .increase
    }
}
