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
    var buckets: [String: Bucket] = [:]
    /// Tokens used per tenant on `day`.
    var daily: [String: (day: Int, used: Int)] = [:]

    package init(plan: Plan) { self.plan = plan }

    /// New limits (a reload): buckets whose size is unchanged keep their level.
    package mutating func replan(_ plan: Plan) {
        self.plan = plan
    }

    /// Admits a request of `tokens` (prompt estimate + max output) for `tenant` in `lane`, or
    /// says which limit refuses it and when to try again. Nothing is charged on a refusal.
    package mutating func admit(tenant: String, lane: String, tokens: Int, now: Duration, day: Int, secondsLeftToday: Double) -> Decision {
        let scopes: [(key: String, limits: Limits, label: String)] = [
            plan.tenants[tenant].map { ("\(tenant)", $0, "tenant \(tenant)") },
            plan.lanes[tenant]?[lane].map { ("\(tenant)/\(lane)", $0, "tenant \(tenant) in lane \(lane)") },
        ].compactMap { $0 }
        var status = Status()
        // Check every limit first; charge only when all of them admit.
        for scope in scopes {
            if let rpm = scope.limits.requestsPerMinute {
                var bucket = self.bucket(scope.key + "#r", capacity: Double(rpm), now: now)
                bucket.refill(now)
                buckets[scope.key + "#r"] = bucket
                note(&status, requests: rpm, remaining: bucket.level - 1, reset: bucket.wait(for: bucket.capacity))
                if bucket.level < 1 {
                    return .refused(
                        Refusal(
                            limit: "requests", retryAfter: bucket.wait(for: 1),
                            message: "Rate limit reached for \(scope.label): \(rpm) requests per minute.", status: status))
                }
            }
            if let tpm = scope.limits.tokensPerMinute {
                if tokens > tpm {
                    return .refused(
                        Refusal(
                            limit: "tokens_too_large", retryAfter: .zero,
                            message:
                                "Request too large for \(scope.label): \(tokens) tokens (prompt estimate + max_tokens) against a limit of \(tpm) tokens per minute. Lower max_tokens or the prompt.",
                            status: status))
                }
                var bucket = self.bucket(scope.key + "#t", capacity: Double(tpm), now: now)
                bucket.refill(now)
                buckets[scope.key + "#t"] = bucket
                note(&status, tokens: tpm, remaining: bucket.level - Double(tokens), reset: bucket.wait(for: bucket.capacity))
                if bucket.level < Double(tokens) {
                    return .refused(
                        Refusal(
                            limit: "tokens", retryAfter: bucket.wait(for: Double(tokens)),
                            message: "Rate limit reached for \(scope.label): \(tpm) tokens per minute; this request needs \(tokens).",
                            status: status))
                }
            }
            if let budget = scope.limits.tokensPerDay {
                let used = usedToday(scope.key, day: day)
                if used + tokens > budget {
                    return .refused(
                        Refusal(
                            limit: "daily_tokens", retryAfter: .seconds(secondsLeftToday),
                            message:
                                "Daily token budget of \(scope.label) is spent: \(used) of \(budget) tokens used today (UTC); it renews at midnight UTC.",
                            status: status))
                }
            }
        }
        for scope in scopes {
            if scope.limits.requestsPerMinute != nil { buckets[scope.key + "#r"]!.level -= 1 }
            if scope.limits.tokensPerMinute != nil { buckets[scope.key + "#t"]!.level -= Double(tokens) }
            if scope.limits.tokensPerDay != nil { daily[scope.key] = (day, usedToday(scope.key, day: day) + tokens) }
        }
        return .admitted(Grant(tenant: tenant, lane: lane, tokens: tokens, status: status))
    }

    /// The answer's real token count replaces the charge made at admission (unused output is
    /// given back; a longer prompt than estimated is taken).
    package mutating func reconcile(_ grant: Grant, usedTokens: Int, day: Int) {
        let delta = Double(usedTokens - grant.tokens)
        for key in ["\(grant.tenant)", "\(grant.tenant)/\(grant.lane)"] {
            if var bucket = buckets[key + "#t"] {
                bucket.level = min(bucket.capacity, bucket.level - delta)
                buckets[key + "#t"] = bucket
            }
            if let spent = daily[key], spent.day == day { daily[key] = (day, max(0, spent.used + Int(delta))) }
        }
    }

    func bucket(_ key: String, capacity: Double, now: Duration) -> Bucket {
        guard var bucket = buckets[key] else { return Bucket(level: capacity, capacity: capacity, updated: now) }
        if bucket.capacity != capacity {
            bucket.level = min(bucket.level, capacity)
            bucket.capacity = capacity
        }
        return bucket
    }

    func usedToday(_ key: String, day: Int) -> Int {
        guard let spent = daily[key], spent.day == day else { return 0 }
        return spent.used
    }

    /// Keeps the tightest request and token figures for the headers.
    func note(_ status: inout Status, requests: Int? = nil, tokens: Int? = nil, remaining: Double, reset: Duration) {
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
