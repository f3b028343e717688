import SwitchyardCore
import Testing

@testable import SwitchyardScheduling

/// The pool's decisions on a test clock: pool time is whatever the test says, no sockets, no
/// tasks, no sleeping.
@Suite struct PoolStateMachineTests {
    typealias M = PoolStateMachine
    static let origin = ContinuousClock.now

    /// The machine in a box, so `#expect` may call its mutating methods.
    final class Driver {
        var m: M
        init(_ m: M) { self.m = m }
        func arrive(_ t: M.Ticket, now: Duration) -> M.Arrival { m.arrive(t, now: now) }
        func leaseNow(_ t: M.Ticket, now: Duration) -> M.Lease? { m.leaseNow(t, now: now) }
        func release(_ l: M.Lease, outcome: AttemptOutcome, now: Duration) { _ = m.release(l, outcome: outcome, now: now) }
        func tick(now: Duration) -> M.TickReport { m.tick(now: now) }
        func takeEffects() -> M.Effects { m.takeEffects() }
        func cancel(_ id: UInt64) -> Bool { m.cancel(id) }
        func coolDown(_ i: Int, for d: Duration, now: Duration) { m.coolDown(i, for: d, now: now) }
        func preemptionRefused(_ id: UInt64) { m.preemptionRefused(id) }
        func applyCapacity(_ i: Int, _ f: M.Discovered, now: Duration) -> (before: M.CapacityStatus, after: M.CapacityStatus)? {
            m.applyCapacity(i, f, now: now)
        }
        func capacity(_ i: Int) -> M.CapacityStatus? { m.capacity(i) }
        func queued(lane: String) -> Int { m.queued(lane: lane) }
        func observe(_ l: M.Lease, ttft: Duration, promptTokens: Int) { m.observe(l, ttft: ttft, promptTokens: promptTokens) }
    }

    static func machine(
        slots: [Int?] = [1], lanes: [LaneConfig] = LaneConfig.defaults, _ edit: (inout ModelConfig) -> Void = { _ in }
    ) -> Driver {
        var health = HealthCheckConfig()
        health.enabled = false
        var config = ModelConfig(
            name: "m", backends: slots.enumerated().map { i, n in BackendConfig(url: "http://127.0.0.1:\(9000 + i)/v1", maxInflight: n) })
        edit(&config)
        return Driver(M(config: config, health: health, outlier: OutlierConfig(), lanes: lanes, origin: origin))
    }

    /// A ticket whose deadlines are given in pool time.
    static func ticket(_ lane: String = "realtime", tenant: String = "t", startBy: Duration? = nil, giveUpAt: Duration = .seconds(60)) -> M.Ticket {
        M.Ticket(
            lane: lane, tenant: tenant, inputTokens: 10, maxOutputTokens: 10, startBy: startBy.map { origin + $0 },
            giveUpAt: origin + giveUpAt)
    }

    static func lease(_ arrival: M.Arrival) -> M.Lease? {
        if case .done(.success(let lease)) = arrival { return lease }
        return nil
    }

    static func queuedID(_ arrival: M.Arrival) -> UInt64? {
        if case .queued(let id) = arrival { return id }
        return nil
    }

    @Test func aFreeSlotIsLeasedAtOnceAndTheNextRequestWaitsForIt() throws {
        let m = Self.machine()
        let first = try #require(Self.lease(m.arrive(Self.ticket(), now: .zero)))
        #expect(first.index == 0 && first.inflight == 1)
        let id = try #require(Self.queuedID(m.arrive(Self.ticket(), now: .zero)))
        #expect(m.queued(lane: "realtime") == 1)
        #expect(m.takeEffects().decided.isEmpty)
        m.release(first, outcome: .success, now: .milliseconds(5))
        let effects = m.takeEffects()
        #expect(effects.decided.count == 1 && effects.decided[0].id == id)
        #expect((try? effects.decided[0].result.get())?.index == 0)
        #expect(m.queued(lane: "realtime") == 0)
    }

    @Test func theBatchLaneHoldsAtMostItsShareOfTheSlotsAndNeverBlocksRealtime() throws {
        // Four slots; the batch lane (share 0.5 by default) may hold two of them.
        let m = Self.machine(slots: [2, 2])
        let b1 = try #require(Self.lease(m.arrive(Self.ticket("batch"), now: .zero)))
        _ = try #require(Self.lease(m.arrive(Self.ticket("batch"), now: .zero)))
        let queued = try #require(Self.queuedID(m.arrive(Self.ticket("batch"), now: .zero)), "a third batch request waits with slots free")
        #expect(m.leaseNow(Self.ticket("batch"), now: .zero) == nil)
        // Realtime takes the free slots, also past a batch request whose band has credit.
        for _ in 0..<2 { #expect(Self.lease(m.arrive(Self.ticket(), now: .zero)) != nil) }
        let rt = try #require(Self.queuedID(m.arrive(Self.ticket(), now: .zero)))
        // A batch slot frees: realtime waiting ahead of batch gets it.
        m.release(b1, outcome: .success, now: .milliseconds(1))
        let effects = m.takeEffects()
        #expect(effects.decided.map(\.id) == [rt])
        #expect(m.queued(lane: "batch") == 1 && queued > 0)
        // Without the cap every slot may go to batch.
        var lanes = LaneConfig.defaults
        lanes[2].maxInflightShare = nil
        let open = Self.machine(slots: [2, 2], lanes: lanes)
        for _ in 0..<4 { #expect(Self.lease(open.arrive(Self.ticket("batch"), now: .zero)) != nil) }
    }

    @Test func theFastPathLeasesOnlyWhenNobodyWaits() throws {
        let m = Self.machine()
        let held = try #require(m.leaseNow(Self.ticket(), now: .zero))
        #expect(m.leaseNow(Self.ticket(), now: .zero) == nil, "the only slot is held")
        _ = m.arrive(Self.ticket(), now: .zero)
        m.release(held, outcome: .neutral, now: .zero)
        _ = m.takeEffects()
        #expect(m.leaseNow(Self.ticket(), now: .zero) == nil, "the queued request got the slot first")
    }

    @Test func aLaneDeadlineIsOnTheClockAndRejectsWhenItPasses() throws {
        // Without a preemptible lane, realtime has no preemption check before its deadline.
        let m = Self.machine(lanes: LaneConfig.defaults.filter { $0.name == "realtime" })
        _ = try #require(Self.lease(m.arrive(Self.ticket(), now: .zero)))
        #expect(m.tick(now: .zero).next == nil, "nothing queued, nothing on the clock")
        let id = try #require(Self.queuedID(m.arrive(Self.ticket(startBy: .seconds(2)), now: .zero)))
        #expect(m.takeEffects().wake, "the timer slept with nothing on its clock")
        let next = try #require(m.tick(now: .milliseconds(100)).next)
        #expect(next == .seconds(2) + .milliseconds(1))
        #expect(m.takeEffects().decided.isEmpty)
        #expect(m.tick(now: next).next == nil)
        let effects = m.takeEffects()
        #expect(effects.decided.count == 1 && effects.decided[0].id == id)
        guard case .failure(.queueTimeout) = effects.decided[0].result else {
            Issue.record("expected a queue timeout, got \(effects.decided[0].result)")
            return
        }
    }

    /// CI saw short requests refused as "estimated wait 31.1s" on a loaded host: a 4-token prompt
    /// whose first token took a second had been read as a prefill rate of 4 tokens/s.
    @Test func onlyLongPromptsTeachThePrefillRateThatRefusesUnreachableDeadlines() throws {
        let m = Self.machine(slots: [1, 1], lanes: LaneConfig.defaults.filter { $0.name == "realtime" })
        func ticket(_ tokens: Int) -> M.Ticket {
            M.Ticket(
                lane: "realtime", tenant: "t", inputTokens: tokens, maxOutputTokens: 10, startBy: Self.origin + .seconds(3),
                giveUpAt: Self.origin + .seconds(60))
        }
        let a = try #require(Self.lease(m.arrive(ticket(4), now: .zero)))
        let b = try #require(Self.lease(m.arrive(ticket(4), now: .zero)))
        m.observe(a, ttft: .seconds(1), promptTokens: 4)
        for _ in 0..<5 { _ = try #require(Self.queuedID(m.arrive(ticket(10), now: .zero)), "overhead is not a prefill rate") }
        // 1,000 tokens in 1 s per request, two replicas: 2,000 tokens a second. 50 queued tokens
        // leave the deadline reachable; 6,050 put it three seconds away.
        m.observe(b, ttft: .seconds(1), promptTokens: 1000)
        _ = try #require(Self.queuedID(m.arrive(ticket(6000), now: .zero)))
        guard case .done(.failure(.rejected(let error, reason: "deadline"))) = m.arrive(ticket(10), now: .zero) else {
            Issue.record("a deadline over three seconds of prefill away was admitted")
            return
        }
        #expect(error.status == 503)
    }

    /// An urgent request past its preemption check with nothing preemptible in flight: the
    /// timer looks again after its slack, not at once (it used to spin until the deadline).
    @Test func anUrgentRequestWithNothingToPreemptDoesNotSpinTheTimer() throws {
        var realtime = LaneConfig(name: "realtime", priority: 0)
        realtime.queue.timeout = .seconds(5)
        var batch = LaneConfig(name: "batch", priority: 1)
        batch.preemptible = true
        let m = Self.machine(lanes: [realtime, batch])
        _ = try #require(Self.lease(m.arrive(Self.ticket(), now: .zero)), "realtime holds the only slot: nothing to preempt")
        _ = try #require(Self.queuedID(m.arrive(Self.ticket(startBy: .seconds(2)), now: .zero)))
        // The check is due at 2 s − 1 s lead − 2 × 10 ms slack.
        let check = Duration.milliseconds(980)
        var now = check
        for _ in 0..<5 {
            let next = try #require(m.tick(now: now).next)
            #expect(next > now, "the timer would fire again at once")
            now = next
        }
        #expect(now >= check + .milliseconds(50))
    }

    @Test func theTotalTimeoutEndsWaitingInADelayLane() throws {
        let m = Self.machine()
        _ = try #require(Self.lease(m.arrive(Self.ticket(), now: .zero)))
        // Batch delays past its deadline, but not past the request's total timeout.
        let id = try #require(Self.queuedID(m.arrive(Self.ticket("batch", startBy: .seconds(1), giveUpAt: .seconds(5)), now: .zero)))
        _ = m.tick(now: .seconds(2))
        #expect(m.takeEffects().decided.isEmpty, "a delay lane keeps waiting past its deadline")
        _ = m.tick(now: .seconds(5))
        let decided = m.takeEffects().decided
        #expect(decided.map(\.id) == [id])
    }

    @Test func anUrgentRequestPreemptsTheYoungestBatchRequestOnlyWhenItMustAndAsksAgainIfRefused() throws {
        // The batch lane without its share cap, so batch work can fill every slot.
        var lanes = LaneConfig.defaults
        lanes[2].maxInflightShare = nil
        let m2 = Self.machine(slots: [2], lanes: lanes) { $0.preemptionLead = .milliseconds(500) }
        let a = try #require(Self.lease(m2.arrive(Self.ticket("batch"), now: .zero)))
        let b = try #require(Self.lease(m2.arrive(Self.ticket("batch"), now: .seconds(1))))
        let id = try #require(Self.queuedID(m2.arrive(Self.ticket(startBy: .seconds(3)), now: .seconds(1))))
        // Due at the start deadline less the lead and twice the timer slack.
        let due = Duration.seconds(3) - .milliseconds(500) - .milliseconds(20)
        _ = m2.takeEffects()
        #expect(m2.tick(now: .seconds(1)).next == due)
        #expect(m2.takeEffects().preempt.isEmpty, "not yet needed")
        _ = m2.tick(now: due)
        let asked = m2.takeEffects().preempt
        #expect(asked.count == 1 && asked.first?.waiting == id)
        #expect(asked.first?.signal === b.preemption, "the youngest batch request")
        // Its answer reached the client first: the machine looks for another victim.
        #expect(b.preemption?.commit() == true)
        m2.preemptionRefused(id)
        _ = m2.tick(now: due + .milliseconds(1))
        #expect(m2.takeEffects().preempt.first?.signal === a.preemption)
    }

    @Test func aCooldownKeepsTrafficAwayAndIsOnTheClockWhileRequestsWait() throws {
        let m = Self.machine(slots: [1])
        let held = try #require(Self.lease(m.arrive(Self.ticket(), now: .zero)))
        let id = try #require(Self.queuedID(m.arrive(Self.ticket(), now: .zero)))
        _ = m.takeEffects()
        m.coolDown(0, for: .seconds(2), now: .seconds(1))
        #expect(m.takeEffects().wake)
        m.release(held, outcome: .neutral, now: .seconds(1))
        #expect(m.takeEffects().decided.isEmpty, "cooling down")
        #expect(m.tick(now: .seconds(1)).next == .seconds(3))
        _ = m.tick(now: .seconds(3))
        #expect(m.takeEffects().decided.map(\.id) == [id])
    }

    @Test func aCancelledRequestLeavesItsQueueButADecidedOneMustBeReleased() throws {
        let m = Self.machine()
        let held = try #require(Self.lease(m.arrive(Self.ticket(), now: .zero)))
        let a = try #require(Self.queuedID(m.arrive(Self.ticket(), now: .zero)))
        let b = try #require(Self.queuedID(m.arrive(Self.ticket(), now: .zero)))
        #expect(m.cancel(a))
        m.release(held, outcome: .neutral, now: .zero)
        #expect(m.takeEffects().decided.map(\.id) == [b])
        #expect(!m.cancel(b), "already decided: its lease is on the way")
    }

    @Test func discoveredCapacityOpensSlotsForWaitingRequests() throws {
        let m = Self.machine(slots: [nil])
        #expect(m.capacity(0) == M.CapacityStatus(source: .pending, limit: UpstreamConfig().defaultMaxInflight))
        let status = try #require(m.applyCapacity(0, .engine(EngineCapacity(slots: 2, source: .props)), now: .zero))
        #expect(status.after == M.CapacityStatus(source: .props, limit: 2))
        _ = try #require(Self.lease(m.arrive(Self.ticket(), now: .zero)))
        _ = try #require(Self.lease(m.arrive(Self.ticket(), now: .zero)))
        #expect(Self.queuedID(m.arrive(Self.ticket(), now: .zero)) != nil)
        // A configured max_inflight wins over discovery.
        let configured = Self.machine(slots: [3])
        #expect(configured.applyCapacity(0, .engine(EngineCapacity(slots: 8, source: .props)), now: .zero) == nil)
    }

    @Test func aFullQueueAndAnUnknownLaneAreRefusedWithTheirReasons() throws {
        var lanes = LaneConfig.defaults
        lanes[0].queue.maxSize = 1
        let m = Self.machine(lanes: lanes)
        _ = try #require(Self.lease(m.arrive(Self.ticket(), now: .zero)))
        _ = try #require(Self.queuedID(m.arrive(Self.ticket(), now: .zero)))
        guard case .done(.failure(.rejected(let error, let reason))) = m.arrive(Self.ticket(), now: .zero) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(reason == "queue_full" && error.status == 429)
        guard case .done(.failure(.rejected(_, "unknown_lane"))) = m.arrive(Self.ticket("nope"), now: .zero) else {
            Issue.record("expected an unknown lane")
            return
        }
    }

    @Test func anUnhealthyReplicaIsAvoidedAndItsComebackDispatchesTheQueue() throws {
        let m = Self.machine(slots: [1, 1])
        for _ in 0..<OutlierConfig().consecutiveFailures {
            let a = try #require(m.leaseNow(Self.ticket(), now: .zero))
            let b = try #require(m.leaseNow(Self.ticket(), now: .zero))
            for lease in [a, b] { m.release(lease, outcome: lease.index == 1 ? .failure : .success, now: .zero) }
        }
        _ = m.takeEffects()
        // Replica 1 is ejected: both requests go to replica 0 in turn.
        let first = try #require(Self.lease(m.arrive(Self.ticket(), now: .zero)))
        #expect(first.index == 0)
        #expect(Self.queuedID(m.arrive(Self.ticket(), now: .zero)) != nil)
        let next = try #require(m.tick(now: .zero).next, "the ejection's end is on the clock while a request waits")
        _ = m.tick(now: next)
        let decided = m.takeEffects().decided
        #expect((try? decided.first?.result.get())?.index == 1, "probed once the ejection ended")
    }
}

extension PoolStateMachineTests {
    @Test func aReplicaSaysWhatItIsDoing() throws {
        let d = Self.machine(slots: [1, 1, 1, 1])
        func states() -> [M.ReplicaState] { d.m.snapshot(now: .seconds(1)).map(\.state) }
        #expect(states() == [.serving, .serving, .serving, .serving])
        let lease = try #require(d.leaseNow(Self.ticket(), now: .zero))
        d.m.setGate(lease.index, open: false, now: .zero)
        d.coolDown((lease.index + 1) % 4, for: .seconds(5), now: .zero)
        _ = d.m.recordHealthCheck((lease.index + 2) % 4, passed: false, now: .zero)
        for _ in 0..<HealthCheckConfig().unhealthyThreshold { _ = d.m.recordHealthCheck((lease.index + 2) % 4, passed: false, now: .zero) }
        var expected = [M.ReplicaState](repeating: .serving, count: 4)
        expected[lease.index] = .draining
        expected[(lease.index + 1) % 4] = .cooling
        expected[(lease.index + 2) % 4] = .unhealthy
        #expect(states() == expected)
        d.release(lease, outcome: .neutral, now: .zero)
        expected[lease.index] = .drained
        #expect(states() == expected, "idle once its last request ended")
    }
}

extension PoolStateMachineTests {
    @Test func whenEveryReplicaIsCoolingARequestWaitsForTheFirstBackOrIsToldWhen() throws {
        let d = Self.machine(slots: [1])
        d.coolDown(0, for: .seconds(2), now: .zero)
        // Its deadline allows the wait: it queues (no misleading no_healthy_backend) ...
        let id = try #require(Self.queuedID(d.arrive(Self.ticket(giveUpAt: .seconds(10)), now: .zero)))
        #expect(d.takeEffects().wake, "the cooldown's end is on the clock")
        #expect(d.tick(now: .zero).next == .seconds(2))
        _ = d.tick(now: .seconds(2))
        #expect(d.takeEffects().decided.map(\.id) == [id])
        // ... and one whose deadline comes first hears when to retry.
        d.coolDown(0, for: .seconds(5), now: .seconds(3))
        guard case .done(.failure(.rejected(let error, "cooling"))) = d.arrive(Self.ticket(startBy: .seconds(4)), now: .seconds(3)) else {
            Issue.record("expected upstream_unavailable")
            return
        }
        #expect(error.status == 503 && error.code == "upstream_unavailable" && error.retryAfterSeconds == 5)
    }

    @Test func requestsWaitForAReplicasFirstHealthChecks() throws {
        var health = HealthCheckConfig()
        health.healthyThreshold = 1
        let config = ModelConfig(name: "m", backends: [BackendConfig(url: "http://127.0.0.1:9000/v1", maxInflight: 1)])
        let d = Driver(M(config: config, health: health, outlier: OutlierConfig(), origin: Self.origin))
        // Not checked yet: the request waits instead of failing.
        let first = try #require(Self.queuedID(d.arrive(Self.ticket(), now: .zero)))
        _ = d.m.recordHealthCheck(0, passed: true, now: .milliseconds(100))
        #expect(d.takeEffects().decided.map(\.id) == [first], "dispatched once the check passed")

        // A replica whose first checks fail: the waiting request fails at its verdict.
        let other = Driver(M(config: config, health: health, outlier: OutlierConfig(), origin: Self.origin))
        let waiting = try #require(Self.queuedID(other.arrive(Self.ticket(), now: .zero)))
        _ = other.m.recordHealthCheck(0, passed: false, now: .milliseconds(100))
        let decided = other.takeEffects().decided
        #expect(decided.map(\.id) == [waiting])
        guard case .failure(.noReplica) = decided.first?.result else {
            Issue.record("expected noReplica")
            return
        }
        #expect(Self.lease(other.arrive(Self.ticket(), now: .seconds(1))) == nil, "and later ones fail at once")
    }
}
