import SwitchyardCore
import Testing

@testable import SwitchyardScheduling

@Suite struct BalancerTests {
    typealias R = Balancer.Replica

    @Test func leastOutstandingWins() {
        var rng = SplitMix64(seed: 1)
        let choice = Balancer.choose([R(id: 0, inflight: 3), R(id: 1, inflight: 1), R(id: 2, inflight: 2)], using: &rng)
        #expect(choice == .replica(id: 1, affinity: false))
    }

    @Test func weightsScaleLoad() {
        var rng = SplitMix64(seed: 1)
        // (4+1)/3 < (1+1)/1: the heavy replica takes more.
        let choice = Balancer.choose([R(id: 0, weight: 3, inflight: 4), R(id: 1, weight: 1, inflight: 1)], using: &rng)
        #expect(choice == .replica(id: 0, affinity: false))
    }

    @Test func tiesAreSpreadAcrossReplicas() {
        var rng = SplitMix64(seed: 7)
        var counts = [0, 0, 0, 0]
        for _ in 0..<4000 {
            if case .replica(let id, _) = Balancer.choose((0..<4).map { R(id: $0) }, using: &rng) { counts[id] += 1 }
        }
        #expect(counts.allSatisfy { $0 > 800 && $0 < 1200 }, "\(counts)")
    }

    @Test func fullAndNone() {
        var rng = SplitMix64(seed: 1)
        #expect(Balancer.choose([], using: &rng) == .none)
        #expect(Balancer.choose([R(id: 0, inflight: 4, maxInflight: 4)], using: &rng) == .full)
        #expect(Balancer.choose([R(id: 0, inflight: 4, maxInflight: 4), R(id: 1, inflight: 9)], using: &rng) == .replica(id: 1, affinity: false))
    }

    @Test func affinityIsStickyUnderBoundedLoad() {
        var rng = SplitMix64(seed: 1)
        let key = Balancer.prefixHash("You are a helpful assistant."[...].utf8)
        let replicas = (0..<4).map { R(id: $0, inflight: 1) }
        guard case .replica(let home, true) = Balancer.choose(replicas, affinityKey: key, using: &rng) else {
            Issue.record("expected an affinity choice")
            return
        }
        for _ in 0..<20 {
            #expect(Balancer.choose(replicas, affinityKey: key, using: &rng) == .replica(id: home, affinity: true))
        }
        // Overload the home replica: average (1+1+1+9+1)/4 ≈ 3.25; bound 1.25× ≈ 4.06 < 10.
        var loaded = replicas
        loaded[home].inflight = 9
        let spill = Balancer.choose(loaded, affinityKey: key, using: &rng)
        #expect(spill != .replica(id: home, affinity: true))
        if case .replica(let id, let affinity) = spill {
            #expect(!affinity && id != home)
        }
    }

    @Test func differentPrefixesSpreadAcrossReplicas() {
        var rng = SplitMix64(seed: 3)
        var homes = Set<Int>()
        for i in 0..<64 {
            let key = Balancer.prefixHash("system prompt \(i)"[...].utf8)
            if case .replica(let id, _) = Balancer.choose((0..<4).map { R(id: $0) }, affinityKey: key, using: &rng) { homes.insert(id) }
        }
        #expect(homes.count == 4)
    }
}
