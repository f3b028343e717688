import SwitchyardCore

/// Per-tenant (and per tenant and lane) quotas as a pure state machine: requests per minute and
/// tokens per minute as token buckets that refill continuously, and a daily token budget.
/// Tokens are charged at admission (the prompt estimate plus `max_tokens`, as the fair scheduler
/// does) and reconciled with the answer's `usage`. Time is passed in: `now` for the buckets and
/// the UTC `day` number with the seconds left in it for the budget.
package struct QuotaBook: Sendable {
    package typealias Limits = RateLimits

    /// The limits of every tenant that has some: tenant-wide, and per lane.
    package struct Plan: Sendable, Equatable {
        package var tenants: [String: Limits] = [:]
        package var lanes: [String: [String: Limits]] = [:]
        package init() {}

        /// The limits the configuration gives its tenants.
        package init(_ tenants: [TenantConfig]) {
            for tenant in tenants {
                if !tenant.limits.isEmpty { self.tenants[tenant.name] = tenant.limits }
                if !tenant.laneLimits.isEmpty { lanes[tenant.name] = tenant.laneLimits }
            }
        }

        package var isEmpty: Bool { tenants.values.allSatisfy(\.isEmpty) && lanes.values.allSatisfy { $0.values.allSatisfy(\.isEmpty) } }
        package func hasLimits(_ tenant: String) -> Bool {
            !(tenants[tenant]?.isEmpty ?? true) || !(lanes[tenant]?.values.allSatisfy(\.isEmpty) ?? true)
        }
    }

    struct Bucket: Sendable {
        var level: Double
        var capacity: Double
        var updated: Duration

        var perSecond: Double { capacity / 60 }

        mutating func refill(_ now: Duration) {
            let elapsed = max(0, (now - updated).seconds)
            level = min(capacity, level + elapsed * perSecond)
            updated = now
        }

        /// Until `amount` is available again (zero when it is).
        func wait(for amount: Double) -> Duration {
            amount <= level ? .zero : .seconds((amount - level) / perSecond)
        }
    }

    /// What the `x-ratelimit-*` headers say after a decision (the tightest limit that applies).
    package struct Status: Sendable, Equatable {
        package var limitRequests: Int?
        package var remainingRequests: Int?
        package var resetRequests: Duration?
        package var limitTokens: Int?
        package var remainingTokens: Int?
        package var resetTokens: Duration?
    }

    package struct Grant: Sendable, Equatable {
        package var tenant: String
        package var lane: String
        package var tokens: Int
        package var status: Status
    }

    package struct Refusal: Sendable, Equatable {
        /// `requests`, `tokens` or `daily_tokens`, and whether waiting can ever help.
        package var limit: String
        package var retryAfter: Duration
        package var message: String
        package var status: Status
    }

    package enum Decision: Sendable, Equatable {
        case admitted(Grant)
        case refused(Refusal)
    }

    package private(set) var plan: Plan

    /// One scope's counters: a tenant, or a tenant in a lane.
    struct Scope: Sendable {
        var requests: Bucket?
        var tokens: Bucket?
        var day = 0
        var usedToday = 0
    }

    struct TenantState: Sendable {
        var all = Scope()
        var lanes: [String: Scope] = [:]
    }

    /// By tenant: one lookup per request, no keys built.
    var states: [String: TenantState] = [:]

    /// Usage counted in one scope since the last ``drainUsage()`` (shared limits: the replicas
    /// trade these through PostgreSQL). `lane` is empty for the tenant-wide scope.
    package struct Usage: Sendable, Equatable, Hashable {
        package var tenant: String
        package var lane: String
        package var requests: Int
        package var tokens: Int
        package var day: Int
        package init(tenant: String, lane: String, requests: Int, tokens: Int, day: Int) {
            (self.tenant, self.lane, self.requests, self.tokens, self.day) = (tenant, lane, requests, tokens, day)
        }
    }

    /// Whether usage is kept for ``drainUsage()`` (only with shared limits).
    package var recordsUsage = false
    private var pending: [String: [String: Usage]] = [:]

    package init(plan: Plan) { self.plan = plan }

    private mutating func record(tenant: String, lane: String, requests: Int, tokens: Int, day: Int) {
        guard recordsUsage else { return }
        var usage = pending[tenant, default: [:]][lane] ?? Usage(tenant: tenant, lane: lane, requests: 0, tokens: 0, day: day)
        if usage.day != day { usage = Usage(tenant: tenant, lane: lane, requests: 0, tokens: 0, day: day) }
        usage.requests += requests
        usage.tokens += tokens
        pending[tenant, default: [:]][lane] = usage
    }

    /// Requests left in `tenant`'s tenant-wide bucket at `now` (nil: no such limit yet).
    package func requestsLeft(tenant: String, now: Duration) -> Double? {
        guard var bucket = states[tenant]?.all.requests else { return nil }
        bucket.refill(now)
        return bucket.level
    }

    /// This replica's usage since the last call, per scope; the counters start again.
    package mutating func drainUsage() -> [Usage] {
        defer { pending = [:] }
        return pending.values.flatMap(\.values).filter { $0.requests != 0 || $0.tokens != 0 }
    }

    /// Usage that could not be shared yet (the store was unreachable): kept for the next try.
    package mutating func restoreUsage(_ usage: [Usage]) {
        for u in usage { record(tenant: u.tenant, lane: u.lane, requests: u.requests, tokens: u.tokens, day: u.day) }
    }

    /// Usage of other replicas, charged here as if it had been admitted here: the buckets at
    /// `now` (a debt of at most one bucket is kept, so a burst elsewhere slows this replica down
    /// too) when `buckets`, and the daily budget when it is today's.
    package mutating func chargeForeign(_ usage: Usage, now: Duration, day: Int, buckets: Bool = true) {
        let limits = usage.lane.isEmpty ? plan.tenants[usage.tenant] : plan.lanes[usage.tenant]?[usage.lane]
        guard let limits else { return }
        var state = states[usage.tenant] ?? TenantState()
        var scope = usage.lane.isEmpty ? state.all : (state.lanes[usage.lane] ?? Scope())
        if buckets {
            if let rpm = limits.requestsPerMinute {
                var bucket = Self.resized(scope.requests, capacity: Double(rpm), now: now)
                bucket.refill(now)
                bucket.level = max(-bucket.capacity, bucket.level - Double(usage.requests))
                scope.requests = bucket
            }
            if let tpm = limits.tokensPerMinute {
                var bucket = Self.resized(scope.tokens, capacity: Double(tpm), now: now)
                bucket.refill(now)
                bucket.level = max(-bucket.capacity, bucket.level - Double(usage.tokens))
                scope.tokens = bucket
            }
        }
        if limits.tokensPerDay != nil, usage.day == day {
            if scope.day != day { (scope.day, scope.usedToday) = (day, 0) }
            scope.usedToday = max(0, scope.usedToday + usage.tokens)
        }
        if usage.lane.isEmpty { state.all = scope } else { state.lanes[usage.lane] = scope }
        states[usage.tenant] = state
    }

    /// New limits (a reload): buckets keep their level, capped by a smaller new size.
    package mutating func replan(_ plan: Plan) {
        self.plan = plan
    }

    /// Admits a request of `tokens` (prompt estimate + max output) for `tenant` in `lane`, or
    /// says which limit refuses it and when to try again. Nothing is charged on a refusal.
    package mutating func admit(tenant: String, lane: String, tokens: Int, now: Duration, day: Int, secondsLeftToday: Double) -> Decision {
        let tenantLimits = plan.tenants[tenant]
        let laneLimits = plan.lanes[tenant]?[lane]
        var state = states[tenant] ?? TenantState()
        var laneScope = laneLimits == nil ? Scope() : (state.lanes[lane] ?? Scope())
        var status = Status()
        // Check every limit first; charge only when all of them admit.
        if let limits = tenantLimits,
            let refusal = Self.check(
                &state.all, limits, label: "tenant \(tenant)", tokens: tokens, now: now, day: day, left: secondsLeftToday, &status)
        {
            states[tenant] = state
            return .refused(refusal)
        }
        if let limits = laneLimits,
            let refusal = Self.check(
                &laneScope, limits, label: "tenant \(tenant) in lane \(lane)", tokens: tokens, now: now, day: day, left: secondsLeftToday, &status)
        {
            states[tenant] = state
            return .refused(refusal)
        }
        if tenantLimits != nil {
            Self.charge(&state.all, tokens: tokens, day: day)
            record(tenant: tenant, lane: "", requests: 1, tokens: tokens, day: day)
        }
        if laneLimits != nil {
            Self.charge(&laneScope, tokens: tokens, day: day)
            state.lanes[lane] = laneScope
            record(tenant: tenant, lane: lane, requests: 1, tokens: tokens, day: day)
        }
        states[tenant] = state
        return .admitted(Grant(tenant: tenant, lane: lane, tokens: tokens, status: status))
    }

    /// Refills `scope`'s buckets to `now`; the refusal when one of `limits` does not admit.
    static func check(
        _ scope: inout Scope, _ limits: Limits, label: @autoclosure () -> String, tokens: Int, now: Duration, day: Int, left: Double,
        _ status: inout Status
    ) -> Refusal? {
        if let rpm = limits.requestsPerMinute {
            var bucket = resized(scope.requests, capacity: Double(rpm), now: now)
            bucket.refill(now)
            scope.requests = bucket
            note(&status, requests: rpm, remaining: bucket.level - 1, reset: bucket.wait(for: bucket.capacity))
            if bucket.level < 1 {
                return Refusal(
                    limit: "requests", retryAfter: bucket.wait(for: 1), message: "Rate limit reached for \(label()): \(rpm) requests per minute.",
                    status: status)
            }
        }
        if let tpm = limits.tokensPerMinute {
            if tokens > tpm {
                return Refusal(
                    limit: "tokens_too_large", retryAfter: .zero,
                    message:
                        "Request too large for \(label()): \(tokens) tokens (prompt estimate + max_tokens) against a limit of \(tpm) tokens per minute. Lower max_tokens or the prompt.",
                    status: status)
            }
            var bucket = resized(scope.tokens, capacity: Double(tpm), now: now)
            bucket.refill(now)
            scope.tokens = bucket
            note(&status, tokens: tpm, remaining: bucket.level - Double(tokens), reset: bucket.wait(for: bucket.capacity))
            if bucket.level < Double(tokens) {
                return Refusal(
                    limit: "tokens", retryAfter: bucket.wait(for: Double(tokens)),
                    message: "Rate limit reached for \(label()): \(tpm) tokens per minute; this request needs \(tokens).", status: status)
            }
        }
        if let budget = limits.tokensPerDay {
            if scope.day != day { (scope.day, scope.usedToday) = (day, 0) }
            if scope.usedToday + tokens > budget {
                return Refusal(
                    limit: "daily_tokens", retryAfter: .seconds(left),
                    message:
                        "Daily token budget of \(label()) is spent: \(scope.usedToday) of \(budget) tokens used today (UTC); it renews at midnight UTC.",
                    status: status)
            }
        }
        return nil
    }

    static func charge(_ scope: inout Scope, tokens: Int, day: Int) {
        scope.requests?.level -= 1
        scope.tokens?.level -= Double(tokens)
        if scope.day == day { scope.usedToday += tokens }
    }

    /// The answer's real token count replaces the charge made at admission (unused output is
    /// given back; a longer prompt than estimated is taken).
    package mutating func reconcile(_ grant: Grant, usedTokens: Int, day: Int) {
        let delta = usedTokens - grant.tokens
        guard delta != 0, var state = states[grant.tenant] else { return }
        Self.adjust(&state.all, by: delta, day: day)
        if plan.tenants[grant.tenant] != nil { record(tenant: grant.tenant, lane: "", requests: 0, tokens: delta, day: day) }
        if var lane = state.lanes[grant.lane] {
            Self.adjust(&lane, by: delta, day: day)
            state.lanes[grant.lane] = lane
            record(tenant: grant.tenant, lane: grant.lane, requests: 0, tokens: delta, day: day)
        }
        states[grant.tenant] = state
    }

    static func adjust(_ scope: inout Scope, by delta: Int, day: Int) {
        if var bucket = scope.tokens {
            bucket.level = min(bucket.capacity, bucket.level - Double(delta))
            scope.tokens = bucket
        }
        if scope.day == day { scope.usedToday = max(0, scope.usedToday + delta) }
    }

    static func resized(_ bucket: Bucket?, capacity: Double, now: Duration) -> Bucket {
        guard var bucket else { return Bucket(level: capacity, capacity: capacity, updated: now) }
        if bucket.capacity != capacity {
            bucket.level = min(bucket.level, capacity)
            bucket.capacity = capacity
        }
        return bucket
    }

    /// Keeps the tightest request and token figures for the headers.
    static func note(_ status: inout Status, requests: Int? = nil, tokens: Int? = nil, remaining: Double, reset: Duration) {
        let left = max(0, Int(remaining.rounded(.down)))
        if let requests, status.remainingRequests.map({ left < $0 }) ?? true {
            status.limitRequests = requests
            status.remainingRequests = left
            status.resetRequests = reset
        }
        if let tokens, status.remainingTokens.map({ left < $0 }) ?? true {
            status.limitTokens = tokens
            status.remainingTokens = left
            status.resetTokens = reset
        }
    }
}
