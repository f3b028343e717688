import SwitchyardCore
import Testing

@testable import SwitchyardScheduling

/// The load index chooses as the balancer's scan would: the least loaded replica that may take
/// the request, uniformly among equals, whatever happened to the pool before.
@Suite struct LoadIndexTests {
    typealias M = PoolStateMachine
    static let origin = ContinuousClock.now

    /// The replicas the scan would choose from: the best score among those with room.
    static func best(_ m: M, excluding: Set<Int>, tokens: Int, now: Duration) -> Set<Int> {
        let open = m.dispatchable(excluding: excluding, tokens: tokens, now: now).filter(\.hasRoom)
        guard let top = open.map({ Double($0.inflight + 1) / $0.weight }).min() else { return [] }
        return Set(open.filter { Double($0.inflight + 1) / $0.weight <= top * (1 + 1e-9) }.map(\.id))
    }

    static func backends(_ n: Int, weightOf: (Int) -> Double = { _ in 1 }) -> [BackendConfig] {
        (0..<n).map { i in
            var b = BackendConfig(url: "http://127.0.0.1:\(9000 + i)/v1", maxInflight: [1, 2, 3, 4, 0][i % 5])
            b.weight = weightOf(i)
            return b
        }
    }

    @Test func randomStepsNeverChooseAReplicaTheScanWouldNot() {
        var health = HealthCheckConfig()
        health.enabled = false
        var config = ModelConfig(name: "m", backends: Self.backends(12))
        config.batching.maxBatchTokens = 400
        var m = M(config: config, health: health, outlier: OutlierConfig(), lanes: LaneConfig.defaults, origin: Self.origin, seed: 7)
        var rng = SplitMix64(seed: 42)
        var leases: [M.Lease] = []
        var now = Duration.zero
        var indexed = 0
        for step in 0..<2000 {
            now += .milliseconds(Int64(rng.next() % 50))
            let tokens = Int(rng.next() % 150) + 1
            var excluding: Set<Int> = []
            if rng.next() % 4 == 0 { excluding.insert(Int(rng.next() % UInt64(m.replicas.count))) }
            let expected = Self.best(m, excluding: excluding, tokens: tokens, now: now)
            let chosen = m.choose(excluding: excluding, tokens: tokens, affinityKey: nil, now: now)
            if m.loadIndex.uniform { indexed += 1 }
            #expect(
                chosen.map { expected.contains($0.index) } ?? expected.isEmpty, "step \(step): chose \(String(describing: chosen)) of \(expected)")

            switch rng.next() % 10 {
            case 0..<4:
                var ticket = M.Ticket(
                    lane: "realtime", tenant: "t", inputTokens: tokens / 2, maxOutputTokens: tokens - tokens / 2, startBy: nil,
                    giveUpAt: Self.origin + now + .seconds(60))
                ticket.excluding = excluding
                let before = Self.best(m, excluding: excluding, tokens: tokens, now: now)
                if case .done(.success(let lease)) = m.arrive(ticket, now: now) {
                    #expect(before.contains(lease.index), "step \(step): leased \(lease.index) of \(before)")
                    leases.append(lease)
                }
            case 4..<7 where !leases.isEmpty:
                let lease = leases.remove(at: Int(rng.next() % UInt64(leases.count)))
                _ = m.release(lease, outcome: rng.next() % 5 == 0 ? .failure : .success, now: now)
            case 7:
                m.coolDown(Int(rng.next() % UInt64(m.replicas.count)), for: .milliseconds(200), now: now)
            case 8:
                let (index, _) = m.register(BackendConfig(url: "http://127.0.0.1:\(10_000 + step)/v1", maxInflight: 2), ttl: .seconds(5), now: now)
                if rng.next() % 2 == 0 { m.deregister(index) }
            default:
                // Reloads: a backend left out (drained), or weights that differ (the scan decides).
                var next = config
                let uneven = rng.next() % 3 == 0
                next.backends = Self.backends(12, weightOf: { uneven && $0 == 3 ? 2 : 1 }).filter { _ in rng.next() % 8 != 0 }
                _ = m.reconfigure(model: next, lanes: LaneConfig.defaults, tenantWeights: [:], now: now)
            }
            _ = m.takeEffects()
        }
        #expect(indexed > 700, "the index decided only \(indexed) times")
    }

    @Test func equallyLoadedReplicasShareTheWorkEvenly() {
        var health = HealthCheckConfig()
        health.enabled = false
        let config = ModelConfig(name: "m", backends: (0..<20).map { BackendConfig(url: "http://127.0.0.1:\(9000 + $0)/v1", maxInflight: 4) })
        var m = M(config: config, health: health, outlier: OutlierConfig(), lanes: LaneConfig.defaults, origin: Self.origin, seed: 1)
        var counts = Array(repeating: 0, count: 20)
        for _ in 0..<20_000 {
            guard let (i, _) = m.choose(excluding: [], tokens: 1, affinityKey: nil, now: .zero) else {
                Issue.record("no choice")
                return
            }
            counts[i] += 1
        }
        // 1,000 expected each; a binomial's standard deviation here is about 31.
        #expect(counts.allSatisfy { (850...1150).contains($0) }, "\(counts)")
    }
}
