import SwitchyardCore
import Testing

@testable import SwitchyardScheduling

/// Quotas on a test clock: buckets refill continuously, every limit that applies must admit,
/// nothing is charged on a refusal, usage reconciles the charge, budgets renew with the day.
@Suite struct QuotaBookTests {
    static func book(_ edit: (inout QuotaBook.Plan) -> Void) -> QuotaBook {
        var plan = QuotaBook.Plan()
        edit(&plan)
        return QuotaBook(plan: plan)
    }

    @Test func requestsPerMinuteRefillContinuouslyAndSayWhenToComeBack() throws {
        var book = Self.book { $0.tenants["a"] = RateLimits(requestsPerMinute: 3) }
        for i in 0..<3 {
            guard case .admitted(let grant) = book.admit(tenant: "a", lane: "realtime", tokens: 10, now: .zero, day: 1, secondsLeftToday: 100)
            else {
                Issue.record("request \(i) refused")
                return
            }
            #expect(grant.status.limitRequests == 3 && grant.status.remainingRequests == 2 - i)
        }
        guard case .refused(let refusal) = book.admit(tenant: "a", lane: "realtime", tokens: 10, now: .zero, day: 1, secondsLeftToday: 100)
        else {
            Issue.record("the fourth request in the same instant must be refused")
            return
        }
        #expect(refusal.limit == "requests" && refusal.retryAfter == .seconds(20), "one request refills every 20 s")
        if case .refused = book.admit(tenant: "b", lane: "realtime", tokens: 10, now: .zero, day: 1, secondsLeftToday: 100) {
            Issue.record("a tenant without limits is never refused")
        }
        guard case .admitted = book.admit(tenant: "a", lane: "realtime", tokens: 10, now: .seconds(20), day: 1, secondsLeftToday: 80) else {
            Issue.record("20 s later one request is available again")
            return
        }
    }

    @Test func tokensAreChargedUpFrontReconciledAndLaneLimitsStack() throws {
        var book = Self.book {
            $0.tenants["a"] = RateLimits(tokensPerMinute: 1000)
            $0.lanes["a"] = ["batch": RateLimits(tokensPerMinute: 300)]
        }
        guard case .admitted(let grant) = book.admit(tenant: "a", lane: "batch", tokens: 300, now: .zero, day: 1, secondsLeftToday: 100) else {
            Issue.record("fits the lane's 300")
            return
        }
        #expect(grant.status.limitTokens == 300 && grant.status.remainingTokens == 0, "the tighter limit is reported")
        guard case .refused(let lane) = book.admit(tenant: "a", lane: "batch", tokens: 10, now: .zero, day: 1, secondsLeftToday: 100) else {
            Issue.record("the lane's bucket is empty")
            return
        }
        #expect(lane.limit == "tokens" && lane.message.contains("lane batch"))
        // The realtime lane has only the tenant-wide bucket, 700 left.
        guard case .admitted = book.admit(tenant: "a", lane: "realtime", tokens: 700, now: .zero, day: 1, secondsLeftToday: 100) else {
            Issue.record("700 of the tenant's 1000 are left")
            return
        }
        // The batch answer used only 100 tokens: 200 come back to both buckets.
        book.reconcile(grant, usedTokens: 100, day: 1)
        guard case .admitted = book.admit(tenant: "a", lane: "batch", tokens: 200, now: .zero, day: 1, secondsLeftToday: 100) else {
            Issue.record("reconciled tokens are usable again")
            return
        }
        guard case .refused(let big) = book.admit(tenant: "a", lane: "realtime", tokens: 5000, now: .seconds(600), day: 1, secondsLeftToday: 10)
        else {
            Issue.record("larger than the limit itself")
            return
        }
        #expect(big.limit == "tokens_too_large" && big.message.contains("Lower max_tokens"))
    }

    @Test func aDailyBudgetIsSpentAndRenewsAtMidnight() {
        var book = Self.book { $0.tenants["a"] = RateLimits(tokensPerDay: 1000) }
        guard case .admitted = book.admit(tenant: "a", lane: "realtime", tokens: 900, now: .zero, day: 7, secondsLeftToday: 3600) else {
            Issue.record("within the budget")
            return
        }
        guard case .refused(let spent) = book.admit(tenant: "a", lane: "realtime", tokens: 200, now: .zero, day: 7, secondsLeftToday: 3600) else {
            Issue.record("over the budget")
            return
        }
        #expect(spent.limit == "daily_tokens" && spent.retryAfter == .seconds(3600) && spent.message.contains("900 of 1000"))
        guard case .admitted = book.admit(tenant: "a", lane: "realtime", tokens: 200, now: .zero, day: 8, secondsLeftToday: 86_400) else {
            Issue.record("a new day, a new budget")
            return
        }
    }
}

/// Shared limits: what one replica admitted, drained and charged to another, counts there.
@Suite struct SharedQuotaBookTests {
    static func plan() -> QuotaBook.Plan {
        var plan = QuotaBook.Plan()
        var limits = RateLimits()
        limits.requestsPerMinute = 6
        limits.tokensPerDay = 1000
        plan.tenants["a"] = limits
        return plan
    }

    @Test func usageDrainedOnOneReplicaIsChargedOnAnother() {
        var one = QuotaBook(plan: Self.plan())
        var two = QuotaBook(plan: Self.plan())
        one.recordsUsage = true
        for _ in 0..<4 {
            guard case .admitted(let grant) = one.admit(tenant: "a", lane: "realtime", tokens: 100, now: .zero, day: 7, secondsLeftToday: 100) else {
                Issue.record("admitted")
                return
            }
            one.reconcile(grant, usedTokens: 50, day: 7)
        }
        let usage = one.drainUsage()
        #expect(usage == [QuotaBook.Usage(tenant: "a", lane: "", requests: 4, tokens: 200, day: 7)])
        #expect(one.drainUsage().isEmpty, "drained once")
        for u in usage { two.chargeForeign(u, now: .zero, day: 7) }
        #expect(two.requestsLeft(tenant: "a", now: .zero) == 2)
        var admitted = 0
        for _ in 0..<4 {
            if case .admitted = two.admit(tenant: "a", lane: "realtime", tokens: 100, now: .zero, day: 7, secondsLeftToday: 100) { admitted += 1 }
        }
        #expect(admitted == 2, "6 per minute across both")
        // Daily budgets: 200 used elsewhere + 2×100 here; 600 left, so 800 more is refused.
        let big = two.admit(tenant: "a", lane: "realtime", tokens: 800, now: .seconds(60), day: 7, secondsLeftToday: 100)
        guard case .refused(let refusal) = big else {
            Issue.record("the day's budget counts the other replica's usage")
            return
        }
        #expect(refusal.limit == "daily_tokens")
        // A record of what could not be shared is kept for the next round.
        one.restoreUsage(usage)
        #expect(one.drainUsage() == usage)
    }
}
