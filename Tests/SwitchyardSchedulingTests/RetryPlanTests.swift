import Testing

@testable import SwitchyardScheduling

/// Every retry rule of the README, on a test clock.
@Suite struct RetryPlanTests {
    let t0 = ContinuousClock.now

    func plan(maxAttempts: Int = 3, backoff: Duration = .zero, maxRetryAfter: Duration = .seconds(2), models: Int = 1) -> RetryPlan {
        RetryPlan(
            policy: .init(
                maxAttempts: maxAttempts, backoff: backoff, maxRetryAfter: maxRetryAfter, models: models, deadline: t0 + .seconds(30)))
    }

    static let reset = RetryPlan.Failure(reason: "reset")
    static let overloaded = RetryPlan.Failure(reason: "status_503", status: 503, retryAfter: .seconds(1))

    @Test func aFailedAttemptMovesToAnotherReplicaAndSpendsBudget() {
        var p = plan()
        #expect(p.next(now: t0) == .acquire(model: 0, excluding: [], requeue: false))
        #expect(p.budgetReason == nil, "the first attempt is not a retry")
        p.leased(replica: 0)
        p.failed(Self.reset, replica: 0)
        #expect(p.next(now: t0) == .acquire(model: 0, excluding: [0], requeue: false))
        #expect(p.budgetReason == "reset")
        p.leased(replica: 1)
        #expect(p.attempts == 2)
    }

    @Test func afterConnectionFailuresTheSameReplicasAreTriedOnceMore() {
        var p = plan()
        _ = p.next(now: t0)
        p.leased(replica: 0)
        p.failed(Self.reset, replica: 0)
        _ = p.next(now: t0)
        p.refused(.noReplica, now: t0)
        #expect(p.next(now: t0) == .acquire(model: 0, excluding: [], requeue: false))
        p.leased(replica: 0)
        p.failed(Self.reset, replica: 0)
        _ = p.next(now: t0)
        p.refused(.noReplica, now: t0)
        #expect(p.next(now: t0) == .giveUp, "once only")
        #expect(p.outcome == .allFailed)
    }

    @Test func aShortRetryAfterIsWaitedForWhenEveryReplicaWasTried() {
        var p = plan()
        _ = p.next(now: t0)
        p.leased(replica: 0)
        p.failed(Self.overloaded, replica: 0)
        _ = p.next(now: t0)
        p.refused(.noReplica, now: t0)
        #expect(p.next(now: t0) == .wait(until: t0 + .seconds(1)))
        #expect(p.next(now: t0 + .seconds(1)) == .acquire(model: 0, excluding: [], requeue: false))
    }

    @Test func aLongRetryAfterIsRelayedNotWaitedFor() {
        var p = plan(maxRetryAfter: .milliseconds(500))
        _ = p.next(now: t0)
        p.leased(replica: 0)
        p.failed(Self.overloaded, replica: 0)
        _ = p.next(now: t0)
        p.refused(.noReplica, now: t0)
        #expect(p.next(now: t0) == .giveUp)
        #expect(p.outcome == .overloaded(status: 503, retryAfter: .seconds(1)))
    }

    @Test func attemptsPerModelAreCappedThenTheFallbackIsTried() {
        var p = plan(maxAttempts: 2, models: 2)
        for replica in 0..<2 {
            _ = p.next(now: t0)
            p.leased(replica: replica)
            p.failed(Self.reset, replica: replica)
        }
        #expect(p.next(now: t0) == .acquire(model: 1, excluding: [], requeue: false))
        #expect(p.budgetReason == "fallback")
    }

    @Test func backoffIsWaitedBetweenAttemptsButNotPastTheDeadline() {
        var p = plan(backoff: .milliseconds(100))
        _ = p.next(now: t0)
        p.leased(replica: 0)
        p.failed(Self.reset, replica: 0)
        #expect(p.next(now: t0) == .wait(until: t0 + .milliseconds(100)))
        #expect(p.next(now: t0 + .milliseconds(100)) == .acquire(model: 0, excluding: [0], requeue: false))
        p.leased(replica: 1)
        p.failed(Self.reset, replica: 1)
        #expect(p.next(now: t0 + .seconds(30)) == .giveUp)
    }

    @Test func aConnectTimeoutUnderLoadGoesBackToTheLaneWithoutBudget() {
        var p = plan(maxAttempts: 1)
        _ = p.next(now: t0)
        p.leased(replica: 0)
        p.failed(RetryPlan.Failure(reason: "connect", requeue: true), replica: 0)
        #expect(p.next(now: t0) == .acquire(model: 0, excluding: [], requeue: true), "the attempt did not count")
        #expect(p.budgetReason == nil)
        #expect(p.connectRequeues == 1)
    }

    @Test func connectRequeuesAreBounded() {
        var p = RetryPlan(
            policy: .init(maxAttempts: 1, backoff: .zero, maxRetryAfter: .zero, models: 1, deadline: t0 + .seconds(30), maxConnectRequeues: 2))
        for _ in 0..<3 {
            _ = p.next(now: t0)
            p.leased(replica: 0)
            p.failed(RetryPlan.Failure(reason: "connect", requeue: true), replica: 0)
        }
        #expect(p.connectRequeues == 2)
        #expect(p.next(now: t0) == .giveUp)
    }

    @Test func aPreemptedRequestIsRequeuedFirstInLineEvenOnItsLastAttempt() {
        var p = plan(maxAttempts: 1)
        _ = p.next(now: t0)
        p.leased(replica: 0)
        p.preempted(replica: 0)
        #expect(p.next(now: t0) == .acquire(model: 0, excluding: [], requeue: true))
        #expect(p.budgetReason == nil)
        p.leased(replica: 0)
        #expect(p.preemptions == 1)
        #expect(p.attempts == 2)
    }

    @Test func theFastPathsAttemptCounts() {
        var p = RetryPlan(
            policy: .init(maxAttempts: 3, backoff: .zero, maxRetryAfter: .zero, models: 1, deadline: t0 + .seconds(30)),
            prior: (replica: 2, failure: Self.reset))
        #expect(p.attempts == 1)
        #expect(p.next(now: t0) == .acquire(model: 0, excluding: [2], requeue: false))
        #expect(p.budgetReason == "reset")
    }

    @Test func theBudgetSayingNoEndsIt() {
        var p = plan(models: 2)
        _ = p.next(now: t0)
        p.leased(replica: 0)
        p.failed(Self.reset, replica: 0)
        _ = p.next(now: t0)
        p.budgetDenied()
        #expect(p.next(now: t0) == .giveUp)
    }

    @Test func aQueueTimeoutEndsItWithItsOwnError() {
        var p = plan(models: 2)
        _ = p.next(now: t0)
        p.refused(.queueTimeout, now: t0)
        #expect(p.next(now: t0) == .giveUp)
        #expect(p.outcome == .queueTimeout)
    }

    @Test func noReplicaAtAllIsNoBackend() {
        var p = plan()
        _ = p.next(now: t0)
        p.refused(.noReplica, now: t0)
        #expect(p.next(now: t0) == .giveUp)
        #expect(p.outcome == .noBackend)
    }
}
