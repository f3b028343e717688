import Testing

@testable import SwitchyardScheduling

@Suite struct AdaptiveConcurrencyTests {
    @Test func growsWithHeadroomAndShrinksOnBreach() {
        var a = AdaptiveConcurrency(min: 1, max: 8, initial: 2, tpotSLO: .milliseconds(100), ttftSLO: .seconds(1))
        let good = AdaptiveConcurrency.Observation(tpotP95: .milliseconds(40), ttftP95: .milliseconds(200))
        for _ in 0..<10 { a.update(good) }
        #expect(a.window == 8, "capped at the engine's slots")
        #expect(a.update(.init(tpotP95: .milliseconds(150), ttftP95: .milliseconds(200))) == .decrease)
        #expect(a.window == 7)
        // Near the SLO (inside the margin): hold, neither grow nor shrink.
        #expect(a.update(.init(tpotP95: .milliseconds(90))) == .hold)
        #expect(a.window == 7)
        for _ in 0..<30 { a.update(.init(overloadAnswers: 1)) }
        #expect(a.window == 1, "floored at min")
    }

    @Test func deferralsAndPreemptionsShrink() {
        var a = AdaptiveConcurrency(min: 2, max: 16, initial: 10, tpotSLO: nil, ttftSLO: nil)
        #expect(a.update(.init(deferrals: 3)) == .decrease)
        #expect(a.window == 9)
        #expect(a.update(.init(preemptions: 1)) == .decrease)
        #expect(a.window == 8)
        #expect(a.update(.init()) == .increase)
        #expect(a.window == 9)
    }
}

@Suite struct EmbeddingCoalescerTests {
    @Test func flushesWhenFullInOrder() {
        var c = EmbeddingCoalescer<Int>(maxBatchSize: 3, maxDelay: .milliseconds(5))
        #expect(c.add(1, now: .zero) == nil)
        #expect(c.add(2, now: .milliseconds(1)) == nil)
        #expect(c.add(3, now: .milliseconds(2)) == [1, 2, 3])
        #expect(c.pendingCount == 0)
        #expect(c.nextFlush == nil)
    }

    @Test func flushesOnDelay() {
        var c = EmbeddingCoalescer<Int>(maxBatchSize: 8, maxDelay: .milliseconds(5))
        _ = c.add(7, now: .milliseconds(10))
        _ = c.add(8, now: .milliseconds(12))
        #expect(c.nextFlush == .milliseconds(15), "measured from the oldest input")
        #expect(c.flushDue(now: .milliseconds(14)) == nil)
        #expect(c.flushDue(now: .milliseconds(15)) == [7, 8])
        #expect(c.flushDue(now: .milliseconds(30)) == nil)
    }
}

@Suite struct BackendSignalsTests {
    static let llamacpp = """
        # HELP llamacpp:requests_processing Number of requests processing.
        # TYPE llamacpp:requests_processing gauge
        llamacpp:requests_processing 3
        llamacpp:requests_deferred 2
        llamacpp:kv_cache_usage_ratio 0.42
        llamacpp:n_requests_deferred_total 17
        """

    static let vllm = """
        vllm:num_requests_running{model_name="m"} 12.0
        vllm:num_requests_waiting{model_name="m"} 7.0
        vllm:kv_cache_usage_perc{model_name="m"} 0.9
        vllm:num_preemptions_total{model_name="m"} 4.0
        """

    @Test func parsesBothEngines() {
        let l = BackendSignals.parse(Self.llamacpp, scrapedAt: .seconds(10))
        #expect(l.running == 3 && l.waiting == 2 && l.kvCacheUsage == 0.42 && l.deferredTotal == 17)
        let v = BackendSignals.parse(Self.vllm, scrapedAt: .seconds(10))
        #expect(v.running == 12 && v.waiting == 7 && v.kvCacheUsage == 0.9 && v.preemptionsTotal == 4)
    }

    @Test func saturationAndStaleness() {
        let v = BackendSignals.parse(Self.vllm, scrapedAt: .seconds(10))
        #expect(v.saturation(now: .seconds(11), staleAfter: .seconds(2)) == 7.0 / 5, "max(waiting/5, kv/0.8)")
        #expect(v.saturation(now: .seconds(13), staleAfter: .seconds(2)) == .infinity, "stale counts as saturated")
        #expect(!v.hasMemoryHeadroom(now: .seconds(11), kvCacheMax: 0.85, staleAfter: .seconds(2)))
        let l = BackendSignals.parse(Self.llamacpp, scrapedAt: .seconds(10))
        #expect(l.hasMemoryHeadroom(now: .seconds(11), kvCacheMax: 0.85, staleAfter: .seconds(2)))
        #expect(!l.hasMemoryHeadroom(now: .seconds(20), kvCacheMax: 0.85, staleAfter: .seconds(2)))
    }
}
