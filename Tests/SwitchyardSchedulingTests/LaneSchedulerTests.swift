import Testing

@testable import SwitchyardScheduling

@Suite struct LaneSchedulerTests {
    typealias S = LaneScheduler

    static let lanes = [
        S.Lane(name: "realtime", band: 0, maxQueueSize: 4),
        S.Lane(name: "streaming", band: 1, maxQueueSize: 10_000),
        S.Lane(name: "batch", band: 2, minShare: 0.1, maxQueueSize: 100_000, timeoutAction: .delay),
    ]

    static func req(_ id: UInt64, _ lane: String, _ tenant: String = "t", input: Int = 100, output: Int = 50, deadline: Duration? = nil) -> S.Request
    {
        S.Request(id: id, lane: lane, tenant: tenant, inputTokens: input, maxOutputTokens: output, deadline: deadline)
    }

    @Test func bandsAreServedInPriorityOrder() {
        var s = S(lanes: [S.Lane(name: "realtime", band: 0), S.Lane(name: "streaming", band: 1), S.Lane(name: "batch", band: 2)])
        _ = s.enqueue(Self.req(1, "batch"), now: .zero)
        _ = s.enqueue(Self.req(2, "streaming"), now: .zero)
        _ = s.enqueue(Self.req(3, "realtime"), now: .zero)
        _ = s.enqueue(Self.req(4, "batch"), now: .zero)
        let order = (0..<4).compactMap { _ in s.dispatch(now: .zero)?.id }
        #expect(order == [3, 2, 1, 4])
        #expect(s.dispatch(now: .zero) == nil)
    }

    @Test func minShareKeepsALowerBandAlive() {
        var s = S(lanes: Self.lanes)
        for i in 0..<1000 { _ = s.enqueue(Self.req(UInt64(i), "streaming", "a"), now: .zero) }
        for i in 1000..<2000 { _ = s.enqueue(Self.req(UInt64(i), "batch", "b"), now: .zero) }
        var batch = 0
        for _ in 0..<500 where s.dispatch(now: .zero)?.lane == "batch" { batch += 1 }
        #expect(abs(Double(batch) / 500 - 0.1) < 0.01, "batch got \(batch)/500")
    }

    @Test func queueFullIsRejectedAtOnce() {
        var s = S(lanes: Self.lanes)
        for i in 0..<4 { #expect(s.enqueue(Self.req(UInt64(i), "realtime"), now: .zero) == .queued) }
        #expect(s.enqueue(Self.req(9, "realtime"), now: .zero) == .rejected(.queueFull(limit: 4)))
        _ = s.dispatch(now: .zero)
        #expect(s.enqueue(Self.req(10, "realtime"), now: .zero) == .queued)
        #expect(s.enqueue(Self.req(11, "nope"), now: .zero) == .rejected(.unknownLane))
    }

    @Test func unreachableDeadlineIsRejectedWithTheEstimate() {
        var s = S(lanes: Self.lanes)
        let capacity = S.Capacity(prefillTokensPerSecond: 1000, timeToFreeSlot: .milliseconds(100))
        // 3 × 100 tokens ahead at 1000 tok/s = 300 ms, + 100 ms to a free slot = 400 ms.
        for i in 0..<3 { _ = s.enqueue(Self.req(UInt64(i), "streaming"), now: .zero) }
        #expect(s.enqueue(Self.req(7, "streaming", deadline: .milliseconds(500)), now: .zero, capacity: capacity) == .queued)
        let late = s.enqueue(Self.req(8, "streaming", deadline: .milliseconds(450)), now: .zero, capacity: capacity)
        #expect(late == .rejected(.deadlineUnreachable(estimatedWait: .milliseconds(500))))
        // Lower bands do not count against a higher band's deadline.
        for i in 20..<40 { _ = s.enqueue(Self.req(UInt64(i), "batch"), now: .zero) }
        #expect(s.enqueue(Self.req(9, "realtime", deadline: .milliseconds(150)), now: .zero, capacity: capacity) == .queued)
    }

    @Test func rejectVersusDelayOnTimeout() {
        var s = S(lanes: Self.lanes)
        _ = s.enqueue(Self.req(1, "realtime", deadline: .milliseconds(100)), now: .zero)
        _ = s.enqueue(Self.req(2, "batch", deadline: .milliseconds(100)), now: .zero)
        _ = s.enqueue(Self.req(3, "batch"), now: .zero)
        #expect(s.expire(now: .milliseconds(50)).isEmpty)
        let rejected = s.expire(now: .milliseconds(150))
        #expect(rejected.map(\.id) == [1], "realtime rejects")
        // The timed-out batch request is kept but moved behind request 3.
        #expect(s.dispatch(now: .milliseconds(150))?.id == 3)
        let delayed = s.dispatch(now: .milliseconds(150))
        #expect(delayed?.id == 2)
        #expect(delayed?.delayed == true)
        #expect(s.queuedTotal == 0)
    }

    /// Two backlogged tenants with very different request sizes: VTC keeps the service difference
    /// (weighted tokens) bounded by one request's cost, whatever the arrival pattern.
    @Test func vtcBoundsTheServiceDifference() {
        var s = S(lanes: Self.lanes)
        var id: UInt64 = 0
        func add(_ tenant: String, _ input: Int, _ output: Int, count: Int) {
            for _ in 0..<count {
                id += 1
                _ = s.enqueue(Self.req(id, "streaming", tenant, input: input, output: output), now: .zero)
            }
        }
        add("big", 800, 200, count: 60)  // cost 1200 each
        add("small", 50, 25, count: 60)  // cost 100 each
        var served: [String: Double] = ["big": 0, "small": 0]
        var maxGap = 0.0
        for _ in 0..<60 {
            guard let r = s.dispatch(now: .zero) else { break }
            served[r.tenant]! += Double(r.inputTokens + 2 * r.maxOutputTokens)
            maxGap = max(maxGap, abs(served["big"]! - served["small"]!))
        }
        #expect(maxGap <= 1200, "service difference \(maxGap) exceeds one big request")
        #expect(served["small"]! > 0 && served["big"]! > 0)
    }

    @Test func weightsShareServiceProportionally() {
        var s = S(lanes: Self.lanes, tenantWeights: ["gold": 2, "free": 1])
        for i in 0..<300 {
            _ = s.enqueue(Self.req(UInt64(i), "streaming", i % 2 == 0 ? "gold" : "free"), now: .zero)
        }
        var gold = 0
        for _ in 0..<90 where s.dispatch(now: .zero)?.tenant == "gold" { gold += 1 }
        #expect(gold == 60, "2:1 weights → 2/3 of dispatches, got \(gold)/90")
    }

    @Test func counterLiftGivesNoBankedCreditToAnIdleTenant() {
        var s = S(lanes: Self.lanes)
        for i in 0..<50 { _ = s.enqueue(Self.req(UInt64(i), "streaming", "busy"), now: .zero) }
        for _ in 0..<40 { _ = s.dispatch(now: .zero) }
        let busyCounter = s.counter(band: 1, tenant: "busy")!
        // "late" was idle the whole time; it starts level with "busy", not 40 requests behind it.
        _ = s.enqueue(Self.req(100, "streaming", "late"), now: .zero)
        #expect(s.counter(band: 1, tenant: "late") == busyCounter)
        for i in 101..<110 { _ = s.enqueue(Self.req(UInt64(i), "streaming", "late"), now: .zero) }
        let next10 = (0..<10).compactMap { _ in s.dispatch(now: .zero)?.tenant }
        #expect(next10.filter { $0 == "late" }.count == 5, "alternates instead of draining 'late' first: \(next10)")
    }

    @Test func completionReconcilesTheOutputCharge() {
        var s = S(lanes: Self.lanes)
        _ = s.enqueue(Self.req(1, "streaming", "a", input: 100, output: 500), now: .zero)
        let r = s.dispatch(now: .zero)!
        #expect(s.counter(band: 1, tenant: "a") == 1100.0)
        s.complete(r, outputTokens: 20)
        #expect(s.counter(band: 1, tenant: "a") == 140.0)
    }

    @Test func aHeadRequestThatDoesNotFitWaits() {
        var s = S(lanes: Self.lanes)
        _ = s.enqueue(Self.req(1, "streaming", input: 5000), now: .zero)
        #expect(s.dispatch(now: .zero) { $0.inputTokens <= 4096 } == nil)
        #expect(s.queuedTotal == 1)
        #expect(s.dispatch(now: .zero) { _ in true }?.id == 1)
    }
    @Test func removedRequestsLeaveTheQueue() {
        var s = S(lanes: Self.lanes)
        _ = s.enqueue(Self.req(1, "realtime", "a"), now: .zero)
        _ = s.enqueue(Self.req(2, "realtime", "a"), now: .zero)
        _ = s.enqueue(Self.req(3, "realtime", "b"), now: .zero)
        let removed = s.remove(id: 2, lane: "realtime", tenant: "a")
        let again = s.remove(id: 2, lane: "realtime", tenant: "a")
        #expect(removed)
        #expect(!again, "already gone")
        #expect(s.queued(lane: "realtime") == 2)
        // A freed place in a full lane can be taken again.
        for i in 4...5 {
            let admission = s.enqueue(Self.req(UInt64(i), "realtime", "c"), now: .zero)
            #expect(admission == .queued)
        }
        let full = s.enqueue(Self.req(6, "realtime", "c"), now: .zero)
        #expect(full == .rejected(.queueFull(limit: 4)))
        let order = (0..<4).compactMap { _ in s.dispatch(now: .zero)?.id }
        #expect(Set(order) == [1, 3, 4, 5])
    }

    @Test func preemptedRequestGoesBackFirstWithItsChargeRefunded() {
        var s = S(lanes: Self.lanes)
        for i in 1...3 { _ = s.enqueue(Self.req(UInt64(i), "batch", "a"), now: .zero) }
        let first = s.dispatch(now: .zero)!
        #expect(first.id == 1)
        let charged = s.counter(band: 2, tenant: "a")!
        #expect(charged == 200, "100 input + 2 × 50 output")
        s.requeueAtFront(first)
        #expect(s.counter(band: 2, tenant: "a") == 0, "refunded")
        #expect(s.queued(lane: "batch") == 3)
        #expect(s.dispatch(now: .zero)?.id == 1, "first in line again")
    }

    @Test func requeueBypassesTheQueueLimit() {
        var s = S(lanes: Self.lanes)
        for i in 1...4 { _ = s.enqueue(Self.req(UInt64(i), "realtime"), now: .zero) }
        let r = s.dispatch(now: .zero)!
        _ = s.enqueue(Self.req(9, "realtime"), now: .zero)
        s.requeueAtFront(r)
        #expect(s.queued(lane: "realtime") == 5, "admitted once, never lost")
    }

    @Test func expiryIsSkippedUntilTheEarliestDeadline() {
        var s = S(lanes: Self.lanes)
        _ = s.enqueue(Self.req(1, "realtime", deadline: .seconds(2)), now: .zero)
        _ = s.enqueue(Self.req(2, "realtime", deadline: .seconds(1)), now: .zero)
        #expect(s.earliestDeadline == .seconds(1))
        let none = s.expire(now: .milliseconds(900))
        #expect(none.isEmpty)
        let one = s.expire(now: .milliseconds(1100))
        #expect(one.map(\.id) == [2])
        #expect(s.earliestDeadline == .seconds(2), "recomputed from what is left")
        let other = s.expire(now: .milliseconds(2100))
        #expect(other.map(\.id) == [1])
        #expect(s.earliestDeadline == nil)
    }

    @Test func usageReconcilesInputAndOutput() {
        var s = S(lanes: Self.lanes)
        _ = s.enqueue(Self.req(1, "realtime", "a", input: 100, output: 50), now: .zero)
        _ = s.enqueue(Self.req(2, "realtime", "a"), now: .zero)
        let r = s.dispatch(now: .zero)!
        s.complete(r, outputTokens: 10, inputTokens: 40)
        let counter = s.counter(band: 0, tenant: "a") ?? -1
        #expect(counter == 60, "40 input + 2 × 10 output, got \(counter.description)")
    }
}
