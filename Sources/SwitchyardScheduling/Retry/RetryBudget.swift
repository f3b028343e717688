/// Caps retries at a fraction of recent requests, so a failing backend cannot turn every request
/// into several (a retry storm). Counts live in one-tenth-of-window buckets; time is injected.
///
/// ```swift
/// var budget = RetryBudget(ratio: 0.2, window: .seconds(10), minPerWindow: 3)
/// budget.recordRequest(now: t)
/// if budget.tryAcquireRetry(now: t) { /* retry */ }
/// ```
package struct RetryBudget: Sendable {
    package let ratio: Double
    package let window: Duration
    package let minPerWindow: Int
    static let bucketCount = 10

    private var requests: [Int]
    private var retries: [Int]
    private var bucketStart: [Int64]

    package init(ratio: Double, window: Duration, minPerWindow: Int) {
        self.ratio = ratio
        self.window = window
        self.minPerWindow = minPerWindow
        requests = Array(repeating: 0, count: Self.bucketCount)
        retries = Array(repeating: 0, count: Self.bucketCount)
        bucketStart = Array(repeating: .min, count: Self.bucketCount)
    }

    private var bucketWidthNanos: Int64 {
        max(1, Self.nanos(window) / Int64(Self.bucketCount))
    }

    static func nanos(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }

    private mutating func bucket(now: Duration) -> Int {
        let epoch = Self.nanos(now) / bucketWidthNanos
        let index = Int(epoch % Int64(Self.bucketCount))
        if bucketStart[index] != epoch {
            bucketStart[index] = epoch
            requests[index] = 0
            retries[index] = 0
        }
        return index
    }

    private func live(now: Duration) -> (requests: Int, retries: Int) {
        let epoch = Self.nanos(now) / bucketWidthNanos
        var req = 0
        var ret = 0
        for i in 0..<Self.bucketCount where bucketStart[i] > epoch - Int64(Self.bucketCount) && bucketStart[i] <= epoch {
            req += requests[i]
            ret += retries[i]
        }
        return (req, ret)
    }

    /// Counts an original (non-retry) request.
    package mutating func recordRequest(now: Duration) {
        requests[bucket(now: now)] += 1
    }

    /// Whether one more retry fits the budget; if so it is counted.
    package mutating func tryAcquireRetry(now: Duration) -> Bool {
        let (req, ret) = live(now: now)
        let allowed = max(Double(minPerWindow), ratio * Double(req))
        guard Double(ret + 1) <= allowed else { return false }
        retries[bucket(now: now)] += 1
        return true
    }
}
