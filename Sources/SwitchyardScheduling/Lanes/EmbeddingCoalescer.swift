/// Triton-style dynamic batching for single-input embedding requests: hold them at most
/// `maxDelay` to merge up to `maxBatchSize` inputs into one upstream request; a full batch goes at
/// once. Pure: the caller sends what `add` and `flushDue` return and arms a timer for `nextFlush`.
package struct EmbeddingCoalescer<Item: Sendable>: Sendable {
    package let maxBatchSize: Int
    package let maxDelay: Duration
    private var pending: [Item] = []
    private var oldest: Duration?

    package init(maxBatchSize: Int, maxDelay: Duration) {
        self.maxBatchSize = Swift.max(1, maxBatchSize)
        self.maxDelay = maxDelay
    }

    /// When the current batch must be sent even if not full.
    package var nextFlush: Duration? { oldest.map { $0 + maxDelay } }
    package var pendingCount: Int { pending.count }

    /// Adds an input; returns a batch (in arrival order) when it is full.
    package mutating func add(_ item: Item, now: Duration) -> [Item]? {
        if pending.isEmpty { oldest = now }
        pending.append(item)
        return pending.count >= maxBatchSize ? take() : nil
    }

    /// Returns the batch when its oldest input has waited `maxDelay`.
    package mutating func flushDue(now: Duration) -> [Item]? {
        guard let due = nextFlush, now >= due, !pending.isEmpty else { return nil }
        return take()
    }

    private mutating func take() -> [Item] {
        defer {
            pending = []
            oldest = nil
        }
        return pending
    }
}
