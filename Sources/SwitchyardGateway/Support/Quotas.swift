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

    // MARK: - Shared limits (see ``SharedQuotaSync``)

    func recordUsage() { book.withLock { $0.recordsUsage = true } }
    func drainUsage() -> [QuotaBook.Usage] { book.withLock { $0.drainUsage() } }
    func restoreUsage(_ usage: [QuotaBook.Usage]) { book.withLock { $0.restoreUsage(usage) } }

    /// Other replicas' usage; `buckets: false` counts it only against daily budgets.
    func chargeForeign(_ usage: [QuotaBook.Usage], buckets: Bool = true) {
        let (day, _) = Self.day(wallClock())
        let now = ContinuousClock.now - origin
        book.withLock { book in
            for u in usage { book.chargeForeign(u, now: now, day: day, buckets: buckets) }
        }
    }

    /// Requests left now in `tenant`'s tenant-wide bucket (tests and diagnostics).
    func requestsLeft(tenant: String) -> Double? {
        let now = ContinuousClock.now - origin
        return book.withLock { $0.requestsLeft(tenant: tenant, now: now) }
    }

    /// Today's UTC day number.
    var today: Int { Self.day(wallClock()).0 }

    /// The quotas' decision for a request; nil when `tenant` has no limits (one lock either way).
    func admit(tenant: String, lane: String, tokens: Int) -> QuotaBook.Decision? {
        let (day, left) = Self.day(wallClock())
        let now = ContinuousClock.now - origin
        return book.withLock { book in
            guard book.plan.hasLimits(tenant) else { return nil }
            return book.admit(tenant: tenant, lane: lane, tokens: tokens, now: now, day: day, secondsLeftToday: left)
        }
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

    /// OpenAI's rate-limit headers for a decision, as (name, value) pairs.
    static func pairs(_ status: QuotaBook.Status, retryAfter: Duration? = nil) -> [(String, String)] {
        var out: [(String, String)] = []
        out.reserveCapacity(7)
        if let v = status.limitRequests { out.append(("x-ratelimit-limit-requests", String(v))) }
        if let v = status.remainingRequests { out.append(("x-ratelimit-remaining-requests", String(v))) }
        if let v = status.resetRequests { out.append(("x-ratelimit-reset-requests", goDuration(v))) }
        if let v = status.limitTokens { out.append(("x-ratelimit-limit-tokens", String(v))) }
        if let v = status.remainingTokens { out.append(("x-ratelimit-remaining-tokens", String(v))) }
        if let v = status.resetTokens { out.append(("x-ratelimit-reset-tokens", goDuration(v))) }
        if let retryAfter { out.append(("retry-after", String(max(1, Int(retryAfter.seconds.rounded(.up)))))) }
        return out
    }

    static let names: [String: HTTPField.Name] = Dictionary(
        uniqueKeysWithValues: [
            "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", "retry-after",
        ].map { ($0, HTTPField.Name($0)!) })

    /// The same as HTTP fields (the router path).
    static func headers(_ status: QuotaBook.Status, retryAfter: Duration? = nil) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in pairs(status, retryAfter: retryAfter) { fields.append(HTTPField(name: names[name]!, value: value)) }
        return fields
    }

    /// `6m0s`, `1.5s`, `20ms`: the form OpenAI's reset headers use.
    static func goDuration(_ d: Duration) -> String {
        let ms = Int((d.seconds * 1000).rounded())
        if ms < 1000 { return "\(ms)ms" }
        if ms < 60_000 {
            let fraction = ms % 1000
            if fraction == 0 { return "\(ms / 1000)s" }
            var digits = String(fraction)
            digits = String(repeating: "0", count: 3 - digits.count) + digits
            while digits.hasSuffix("0") { digits.removeLast() }
            return "\(ms / 1000).\(digits)s"
        }
        let seconds = (ms + 500) / 1000
        let minutes = seconds / 60
        if minutes < 60 { return "\(minutes)m\(seconds % 60)s" }
        return "\(minutes / 60)h\(minutes % 60)m\(seconds % 60)s"
    }
}
