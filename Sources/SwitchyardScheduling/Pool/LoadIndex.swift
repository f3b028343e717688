import SwitchyardCore

/// The replicas of a pool bucketed by requests in flight, so that the least loaded one is found
/// without reading every replica: a pool of a thousand replicas answers in a few steps. It only
/// orders; whether a replica may take the request (healthy, open, room, budget, not excluded) is
/// asked of the pool at choice time, so the index can never choose one the scan would not.
///
/// The choice itself is ``PoolStateMachine/leastLoaded(excluding:tokens:now:)``.
///
/// Valid when every replica has the same weight (the balancer's score `(inflight + 1) / weight`
/// then orders as the in-flight count does); the pool rebuilds it when replicas are added or
/// reconfigured, and drops removed ones as it meets them.
struct LoadIndex: Sendable {
    /// `buckets[k]`: the replicas with `k` requests in flight, in no order.
    private var buckets: [[Int]] = []
    /// Where each replica sits in its bucket; -1: not indexed.
    private var position: [Int] = []
    private var load: [Int] = []
    /// Replicas the index was built from (a pool that grew needs a rebuild).
    private(set) var count = 0
    /// Every indexed replica has this weight; false: the balancer's scan decides.
    private(set) var uniform = false
    private(set) var built = false

    /// Indexes `members` (replica index, in flight) out of `count` replicas.
    init(count: Int, members: [(index: Int, inflight: Int)], uniform: Bool) {
        self.count = count
        self.uniform = uniform
        built = true
        position = Array(repeating: -1, count: count)
        load = Array(repeating: 0, count: count)
        for m in members { insert(m.index, inflight: m.inflight) }
    }

    init() {}

    /// Forgets everything: the next choice rebuilds.
    mutating func invalidate() { built = false }

    func isCurrent(replicaCount: Int) -> Bool { built && count == replicaCount }

    private mutating func insert(_ i: Int, inflight: Int) {
        while buckets.count <= inflight { buckets.append([]) }
        position[i] = buckets[inflight].count
        load[i] = inflight
        buckets[inflight].append(i)
    }

    /// Takes replica `i` out of its bucket (it must be indexed).
    mutating func remove(_ i: Int) {
        let k = load[i]
        let at = position[i]
        let last = buckets[k].removeLast()
        if last != i {
            buckets[k][at] = last
            position[last] = at
        }
        position[i] = -1
    }

    /// Replica `i` now has `inflight` requests in flight.
    mutating func set(_ i: Int, inflight: Int) {
        guard built, i < count, position[i] >= 0, load[i] != inflight else { return }
        remove(i)
        insert(i, inflight: inflight)
    }

    /// Buckets from the least loaded up (some may be empty).
    var bucketCount: Int { buckets.count }
    func size(of k: Int) -> Int { buckets[k].count }
    func member(_ j: Int, of k: Int) -> Int { buckets[k][j] }
}
