import Foundation
import HTTPTypes
import SwitchyardCore
import SwitchyardScheduling
import Synchronization

/// The gateway's tenants' quotas: the pure ``QuotaBook`` under a lock, the clocks it is given
/// (pool-style time for the buckets, the UTC day for budgets), and the OpenAI headers. Per
/// gateway replica: with several replicas each enforces the limits on its own share of the
/// traffic (the README says so).
package final class Quotas: Sendable {
    private let book: Mutex<QuotaBook>
    private let origin = ContinuousClock.now
    private let wallClock: @Sendable () -> Date

    init(plan: QuotaBook.Plan, wallClock: @escaping @Sendable () -> Date = { Date() }) {
        book = Mutex(QuotaBook(plan: plan))
        self.wallClock = wallClock
    }

    func replan(_ plan: QuotaBook.Plan) { book.withLock { $0.replan(plan) } }

    /// True when `tenant` has any limit (its requests then take the router path).
    func applies(to tenant: String) -> Bool { book.withLock { $0.plan.hasLimits(tenant) } }

    func admit(tenant: String, lane: String, tokens: Int) -> QuotaBook.Decision {
        let (day, left) = Self.day(wallClock())
        let now = ContinuousClock.now - origin
        return book.withLock { $0.admit(tenant: tenant, lane: lane, tokens: tokens, now: now, day: day, secondsLeftToday: left) }
    }

    func reconcile(_ grant: QuotaBook.Grant, usedTokens: Int) {
        let (day, _) = Self.day(wallClock())
        book.withLock { $0.reconcile(grant, usedTokens: usedTokens, day: day) }
    }

    /// The UTC day number and the seconds left in it.
    static func day(_ date: Date) -> (Int, Double) {
        let t = date.timeIntervalSince1970
        let day = Int((t / 86_400).rounded(.down))
        return (day, Double(day + 1) * 86_400 - t)
    }

    /// OpenAI's rate-limit headers for a decision.
    static func headers(_ status: QuotaBook.Status, retryAfter: Duration? = nil) -> HTTPFields {
        var fields = HTTPFields()
        func set(_ name: String, _ value: String?) {
            if let value, let field = HTTPField.Name(name) { fields[field] = value }
        }
        set("x-ratelimit-limit-requests", status.limitRequests.map(String.init))
        set("x-ratelimit-remaining-requests", status.remainingRequests.map(String.init))
        set("x-ratelimit-reset-requests", status.resetRequests.map(goDuration))
        set("x-ratelimit-limit-tokens", status.limitTokens.map(String.init))
        set("x-ratelimit-remaining-tokens", status.remainingTokens.map(String.init))
        set("x-ratelimit-reset-tokens", status.resetTokens.map(goDuration))
        if let retryAfter { set("retry-after", String(max(1, Int(retryAfter.seconds.rounded(.up))))) }
        return fields
    }

    /// `6m0s`, `1.5s`, `20ms`: the form OpenAI's reset headers use.
    static func goDuration(_ d: Duration) -> String {
        let s = d.seconds
        if s < 1 { return "\(Int((s * 1000).rounded()))ms" }
        if s < 60 { return String(format: "%gs", (s * 1000).rounded() / 1000) }
        let minutes = Int(s / 60)
        let rest = Int((s - Double(minutes) * 60).rounded())
        if minutes < 60 { return "\(minutes)m\(rest)s" }
        return "\(minutes / 60)h\(minutes % 60)m\(rest)s"
    }
}
