import Testing

@testable import SwitchyardScheduling

@Suite struct RetryBudgetTests {
    @Test func retriesAreCappedAtTheRatio() {
        var budget = RetryBudget(ratio: 0.2, window: .seconds(10), minPerWindow: 0)
        let t = Duration.seconds(100)
        for _ in 0..<100 { budget.recordRequest(now: t) }
        var granted = 0
        for _ in 0..<100 where budget.tryAcquireRetry(now: t) { granted += 1 }
        #expect(granted == 20)
    }

    @Test func minimumAllowsRetriesWhenQuiet() {
        var budget = RetryBudget(ratio: 0.2, window: .seconds(10), minPerWindow: 3)
        let t = Duration.seconds(5)
        budget.recordRequest(now: t)
        let r1 = budget.tryAcquireRetry(now: t)
        #expect(r1)
        let r2 = budget.tryAcquireRetry(now: t)
        #expect(r2)
        let r3 = budget.tryAcquireRetry(now: t)
        #expect(r3)
        let r4 = budget.tryAcquireRetry(now: t)
        #expect(!r4)
    }

    @Test func windowSlides() {
        var budget = RetryBudget(ratio: 0.5, window: .seconds(10), minPerWindow: 0)
        for _ in 0..<10 { budget.recordRequest(now: .seconds(0)) }
        for _ in 0..<5 {
            let r5 = budget.tryAcquireRetry(now: .seconds(1))
            #expect(r5)
        }
        let r6 = budget.tryAcquireRetry(now: .seconds(2))
        #expect(!r6)
        // 11 s later the old requests and retries are out of the window: nothing to retry against.
        let r7 = budget.tryAcquireRetry(now: .seconds(12))
        #expect(!r7)
        for _ in 0..<4 { budget.recordRequest(now: .seconds(12)) }
        let r8 = budget.tryAcquireRetry(now: .seconds(12))
        #expect(r8)
        let r9 = budget.tryAcquireRetry(now: .seconds(12))
        #expect(r9)
        let r10 = budget.tryAcquireRetry(now: .seconds(12))
        #expect(!r10)
    }
}

@Suite struct OutlierDetectorTests {
    func detector() -> OutlierDetector {
        OutlierDetector(consecutiveFailures: 3, baseEjection: .seconds(5), maxEjection: .seconds(12))
    }

    @Test func ejectsAfterConsecutiveFailuresOnly() {
        var d = detector()
        d.recordFailure(now: .seconds(0))
        d.recordFailure(now: .seconds(0))
        d.recordSuccess()
        d.recordFailure(now: .seconds(1))
        d.recordFailure(now: .seconds(1))
        #expect(d.admission(now: .seconds(1)) == .admit)
        let r11 = d.recordFailure(now: .seconds(1))
        #expect(r11)
        #expect(d.admission(now: .seconds(2)) == .refuse)
        #expect(d.admission(now: .seconds(6)) == .probe)
    }

    @Test func singleProbeThenBackoffDoublesUpToMax() {
        var d = detector()
        for _ in 0..<3 { d.recordFailure(now: .zero) }
        #expect(d.state == .ejected(until: .seconds(5)))
        d.startProbe(now: .seconds(5))
        #expect(d.admission(now: .seconds(5)) == .refuse, "only one probe at a time")
        d.recordFailure(now: .seconds(5))
        #expect(d.state == .ejected(until: .seconds(15)), "second ejection lasts 10 s")
        d.startProbe(now: .seconds(15))
        d.recordFailure(now: .seconds(15))
        #expect(d.state == .ejected(until: .seconds(27)), "capped at 12 s")
        d.startProbe(now: .seconds(27))
        d.recordSuccess()
        #expect(d.state == .healthy)
        for _ in 0..<3 { d.recordFailure(now: .seconds(30)) }
        #expect(d.state == .ejected(until: .seconds(35)), "success resets the backoff")
    }

    @Test func cancelledProbeLetsAnotherTry() {
        var d = detector()
        for _ in 0..<3 { d.recordFailure(now: .zero) }
        d.startProbe(now: .seconds(6))
        d.cancelProbe()
        #expect(d.admission(now: .seconds(6)) == .probe)
    }
}

@Suite struct ActiveHealthTests {
    @Test func thresholds() {
        var h = ActiveHealth(healthyThreshold: 2, unhealthyThreshold: 2)
        #expect(!h.isHealthy)
        let r12 = h.record(passed: true)
        #expect(!r12)
        let r13 = h.record(passed: true)
        #expect(r13)
        #expect(h.isHealthy)
        let r14 = h.record(passed: false, error: "boom")
        #expect(!r14)
        #expect(h.isHealthy)
        let r15 = h.record(passed: false, error: "boom")
        #expect(r15)
        #expect(!h.isHealthy)
        #expect(h.lastError == "boom")
    }
}
