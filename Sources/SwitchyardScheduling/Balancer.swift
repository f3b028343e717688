import Foundation
import SwitchyardCore

/// Chooses a replica for a request. Pure: the caller passes a snapshot of the replicas and a
/// random number generator, so tests can pin every decision.
///
/// - Least outstanding requests, weighted: the score is `(inflight + 1) / weight`; among replicas
///   with equal best score two are drawn at random and the first drawn wins (power of two choices
///   among equals, which spreads ties without herding).
/// - Prefix affinity with bounded load: rendezvous hashing of the prompt's leading part picks a
///   home replica; when its load exceeds `(1 + ε) ×` the pool's average load (this request
///   included), the least loaded replica is taken instead.
package enum Balancer {
    package struct Replica: Sendable, Equatable {
        package var id: Int
        package var weight: Double
        package var inflight: Int
        /// 0 = unlimited.
        package var maxInflight: Int

        package init(id: Int, weight: Double = 1, inflight: Int = 0, maxInflight: Int = 0) {
            self.id = id
            self.weight = weight
            self.inflight = inflight
            self.maxInflight = maxInflight
        }

        package var hasRoom: Bool { maxInflight == 0 || inflight < maxInflight }
        var score: Double { Double(inflight + 1) / weight }
    }

    package enum Choice: Sendable, Equatable {
        case replica(id: Int, affinity: Bool)
        /// Every eligible replica is at its in-flight limit.
        case full
        /// No eligible replica at all.
        case none
    }

    /// - Parameters:
    ///   - replicas: the eligible replicas (healthy, not ejected, not excluded by this request).
    ///   - affinityKey: hash of the request's prefix; nil routes by least load.
    package static func choose(
        _ replicas: [Replica],
        affinityKey: UInt64? = nil,
        balanceFactor: Double = 0.25,
        using rng: inout some RandomNumberGenerator
    ) -> Choice {
        guard !replicas.isEmpty else { return .none }
        guard affinityKey != nil else { return leastLoaded(replicas, using: &rng).map { .replica(id: $0.id, affinity: false) } ?? .full }
        let open = replicas.filter(\.hasRoom)
        guard !open.isEmpty else { return .full }

        if let key = affinityKey {
            let home = open.max { rendezvous(key, $0) < rendezvous(key, $1) }!
            let total = replicas.reduce(0) { $0 + $1.inflight } + 1
            let average = Double(total) / Double(replicas.count)
            let bound = (1 + balanceFactor) * average
            if Double(home.inflight + 1) <= bound.rounded(.up) {
                return .replica(id: home.id, affinity: true)
            }
        }
        return .replica(id: leastLoaded(open, using: &rng)!.id, affinity: false)
    }

    /// The least loaded replica with room (nil: none has room), in passes over the array without
    /// copying it: a pool of a thousand replicas chooses in microseconds.
    static func leastLoaded(_ replicas: [Replica], using rng: inout some RandomNumberGenerator) -> Replica? {
        var best = Double.infinity
        for r in replicas where r.hasRoom { best = min(best, r.score) }
        guard best < .infinity else { return nil }
        let bound = best * (1 + 1e-9)
        var ties = 0
        var only = 0
        for (i, r) in replicas.enumerated() where r.hasRoom && r.score <= bound {
            ties += 1
            only = i
        }
        if ties == 1 { return replicas[only] }
        let a = Int.random(in: 0..<ties, using: &rng)
        var b = Int.random(in: 0..<(ties - 1), using: &rng)
        if b >= a { b += 1 }
        // The a-th and b-th of the ties, in order.
        var first: Replica?, second: Replica?
        var rank = 0
        for r in replicas where r.hasRoom && r.score <= bound {
            if rank == a { first = r }
            if rank == b { second = r }
            rank += 1
        }
        // Equal scores: the lower in-flight count breaks the tie (heavier weight), else the first draw.
        return second!.inflight < first!.inflight ? second : first
    }

    /// Weighted rendezvous (highest random weight) score of `key` on `replica`.
    static func rendezvous(_ key: UInt64, _ replica: Replica) -> Double {
        let h = SplitMix64.mix(key ^ (UInt64(truncatingIfNeeded: replica.id) &* 0x9E37_79B9_7F4A_7C15) &+ 0x9E37_79B9_7F4A_7C15)
        let unit = (Double(h >> 11) + 0.5) / Double(1 << 53)
        return -replica.weight / log(unit)
    }

    /// FNV-1a 64 of the leading bytes of a prompt: the affinity key.
    package static func prefixHash(_ text: Substring.UTF8View) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        return hash
    }
}
