import SwitchyardCore
import Testing

@testable import SwitchyardScheduling

/// A configuration reload applied to a pool's machine: queued requests stay, in-flight ones
/// finish where they are, backends join and leave by URL.
@Suite struct ReconfigureTests {
    typealias M = PoolStateMachine
    typealias T = PoolStateMachineTests

    static func backends(_ ports: [Int], maxInflight: Int? = 1) -> [BackendConfig] {
        ports.map { BackendConfig(url: "http://127.0.0.1:\($0)/v1", maxInflight: maxInflight) }
    }

    @Test func aRemovedBackendClosesAtOnceAndLeavesWhenItsLastRequestEnds() throws {
        let d = T.machine(slots: [1, 1])
        let first = try #require(T.lease(d.arrive(T.ticket(), now: .zero)))
        let second = try #require(T.lease(d.arrive(T.ticket(), now: .zero)))
        let busy = [first, second].first { $0.backend.id.contains(":9000/") }!
        var model = d.m.config
        model.backends = Self.backends([9001, 9002])
        let done = d.m.reconfigure(model: model, lanes: LaneConfig.defaults, tenantWeights: [:], now: .seconds(1))
        #expect(done.retiring == [0])
        #expect(done.discover == [2] && done.added == [2], "the new backend's capacity is asked")
        #expect(d.m.snapshot(now: .seconds(1)).first { $0.index == 0 }?.state == .draining)
        #expect(d.m.snapshot(now: .seconds(1)).first { $0.index == 2 }?.state == .drained, "closed until the gateway admits it")
        guard case .queued = d.arrive(T.ticket(), now: .seconds(1)) else {
            Issue.record("nothing should take a request: 9001 is full, 9002 not admitted yet")
            return
        }
        // Admitted (health checked, capacity asked): the waiting request goes to 9002.
        d.m.setGate(2, open: true, now: .seconds(1))
        let third = try #require(try d.takeEffects().decided.first?.result.get())
        #expect(third.index == 2)
        // The request in flight on the removed backend finishes; then it is gone.
        d.release(busy, outcome: .success, now: .seconds(2))
        #expect(!d.m.isLive(0))
        #expect(d.m.snapshot(now: .seconds(2)).map(\.index).sorted() == [1, 2])
    }

    @Test func settingsOfAKeptBackendChangeInPlace() throws {
        let d = T.machine(slots: [2])
        var model = d.m.config
        model.backends = [BackendConfig(url: "http://127.0.0.1:9000/v1", upstreamModel: "other", weight: 3, maxInflight: 5)]
        let done = d.m.reconfigure(model: model, lanes: LaneConfig.defaults, tenantWeights: [:], now: .zero)
        #expect(done.retiring.isEmpty)
        #expect(done.discover == [0])
        let r = try #require(d.m.snapshot(now: .zero).first)
        #expect(r.backend.upstreamModel == "other" && r.backend.weight == 3)
        #expect(r.capacity.limit == 5 && r.capacity.source == .config)
    }

    @Test func queuedRequestsWaitOnUnderTheNewLanesAndADroppedLaneKeepsWhatItHolds() throws {
        var custom = LaneConfig(name: "bulk", priority: 2)
        custom.queue.maxSize = 10
        let d = T.machine(slots: [1], lanes: LaneConfig.defaults + [custom])
        let running = try #require(T.lease(d.arrive(T.ticket(), now: .zero)))
        guard case .queued = d.arrive(T.ticket("bulk"), now: .zero), case .queued = d.arrive(T.ticket("realtime"), now: .zero) else {
            Issue.record("expected both to queue")
            return
        }
        var lanes = LaneConfig.defaults
        lanes[0].queue.maxSize = 1
        _ = d.m.reconfigure(model: d.m.config, lanes: lanes, tenantWeights: ["t": 2], now: .seconds(1))
        #expect(d.queued(lane: "bulk") == 1 && d.queued(lane: "realtime") == 1)
        // The new queue limit holds for arrivals.
        guard case .done(.failure(.rejected)) = d.arrive(T.ticket("realtime"), now: .seconds(1)) else {
            Issue.record("realtime's new max_size of 1 should refuse a second waiting request")
            return
        }
        // Both queued requests are still served, realtime first.
        d.release(running, outcome: .success, now: .seconds(2))
        let next = d.takeEffects().decided
        #expect(next.count == 1)
        let lease = try #require(try next.first?.result.get())
        #expect(lease.request.lane == "realtime")
        d.release(lease, outcome: .success, now: .seconds(3))
        let last = try #require(try d.takeEffects().decided.first?.result.get())
        #expect(last.request.lane == "bulk", "the dropped lane's request was not lost")
    }
}

@Suite struct LaneSchedulerReconfigureTests {
    typealias S = LaneScheduler

    static func request(_ id: UInt64, _ lane: String, _ tenant: String) -> S.Request {
        S.Request(id: id, lane: lane, tenant: tenant, inputTokens: 10, maxOutputTokens: 10)
    }

    @Test func orderCountersAndDelayedRequestsSurvive() {
        var s = S(lanes: [S.Lane(name: "a", band: 0), S.Lane(name: "b", band: 1, minShare: 0.2)])
        for (i, tenant) in ["x", "x", "y"].enumerated() { _ = s.enqueue(Self.request(UInt64(i), "a", tenant), now: .zero) }
        _ = s.enqueue(Self.request(9, "b", "x"), now: .zero)
        _ = s.dispatch(now: .zero)  // x's first: x's counter is now ahead of y's
        let counter = s.counter(band: 0, tenant: "x")
        let next = s.reconfigured(lanes: [S.Lane(name: "a", band: 0, maxQueueSize: 2)], tenantWeights: [:])
        #expect(next.queued(lane: "a") == 2 && next.queued(lane: "b") == 1)
        #expect(next.counter(band: 0, tenant: "x") == counter)
        var n = next
        #expect(n.dispatch(now: .zero)?.id == 2, "y, behind on its counter, goes before x's second")
        #expect(n.dispatch(now: .zero)?.id == 1)
        #expect(n.dispatch(now: .zero)?.id == 9, "lane b, dropped from the configuration, still serves what it held")
        #expect(n.dispatch(now: .zero) == nil)
    }
}
