import SwitchyardCore
import Testing

/// A failure every 500 ms for a minute is two log lines and a recovery, not 120 lines.
@Suite struct RepeatedFailureTests {
    @Test func onceThenEveryIntervalThenWhenItClears() {
        let t0 = ContinuousClock.now
        let log = RepeatedFailure(interval: .seconds(30))
        #expect(log.succeeded(at: t0) == nil, "nothing to recover from")
        var lines: [RepeatedFailure.Line] = []
        for i in 0..<120 {
            if let line = log.failed(at: t0 + .milliseconds(500 * i)) { lines.append(line) }
        }
        // Failures at 0, 0.5, …, 59.5 s: the first, and one reminder at 30 s for the 59 between.
        #expect(lines == [.first, .still(suppressed: 59, seconds: 30)], "\(lines)")
        #expect(log.succeeded(at: t0 + .seconds(60)) == .recovered(failures: 120, seconds: 60))
        #expect(log.succeeded(at: t0 + .seconds(61)) == nil, "said once")
        #expect(log.failed(at: t0 + .seconds(62)) == .first, "a new run of failures starts over")
    }
}
