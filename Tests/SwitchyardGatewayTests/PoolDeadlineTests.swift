import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// The pool's clock work is armed for deadlines, not polled: its tick says when it next has
/// something to do, and a request queued with a sooner deadline rings the ticker's doorbell.
/// (Timing: the pool reads the real clock, and the deadlines must not pass while a loaded
/// machine schedules the test.)
@Suite(.tags(.timing)) struct PoolDeadlineTests {
    static func pool() -> ModelPool {
        var health = HealthCheckConfig()
        health.enabled = false
        return ModelPool(
            config: ModelConfig(name: "m", backends: [BackendConfig(url: "http://127.0.0.1:9/v1", maxInflight: 1)]), health: health,
            outlier: OutlierConfig(), lanes: LaneConfig.defaults.filter { $0.name == "realtime" })
    }

    static func ticket(startBy: ContinuousClock.Instant? = nil, giveUpAt: ContinuousClock.Instant = .now + .seconds(20)) -> ModelPool.Ticket {
        ModelPool.Ticket(lane: "realtime", tenant: "t", inputTokens: 10, maxOutputTokens: 10, startBy: startBy, giveUpAt: giveUpAt)
    }

    @Test func anIdlePoolHasNothingOnTheClock() {
        #expect(Self.pool().tick().next == nil)
    }

    @Test func aQueuedRequestArmsItsDeadlineAndRingsTheTicker() async throws {
        let pool = Self.pool()
        let held = try #require(pool.tryAcquireNow(Self.ticket()))
        #expect(pool.tick().next == nil)
        let startBy = ContinuousClock.now + .seconds(2)
        let waiter = Task { try await pool.acquire(Self.ticket(startBy: startBy)) }
        // The doorbell rings (the ticker slept with nothing on its clock).
        await pool.doorbell.wait(timeout: .seconds(10))
        let next = try #require(pool.tick().next)
        #expect(next >= startBy && next <= startBy + .milliseconds(5), "the lane deadline, not a polling interval")
        // Ticking at that deadline rejects the request, as the lane's timeout action says.
        try await Task.sleep(until: next, clock: .continuous)
        #expect(pool.tick().next == nil)
        await #expect(throws: ModelPool.AcquireError.self) { try await waiter.value }
        pool.release(held, outcome: .neutral)
    }

    @Test func aCooldownWithRequestsWaitingIsOnTheClock() async throws {
        let pool = Self.pool()
        let held = try #require(pool.tryAcquireNow(Self.ticket()))
        let waiter = Task { try await pool.acquire(Self.ticket()) }
        await pool.doorbell.wait(timeout: .seconds(10))
        _ = pool.tick()
        let before = ContinuousClock.now
        pool.coolDown(0, for: .seconds(2))
        let after = ContinuousClock.now
        pool.release(held, outcome: .neutral)
        let next = try #require(pool.tick().next)
        #expect(next >= before + .seconds(2) && next <= after + .seconds(2), "the end of the cooldown")
        try await Task.sleep(until: next, clock: .continuous)
        _ = pool.tick()
        let lease = try await waiter.value
        pool.release(lease, outcome: .neutral)
    }
}
