import Foundation

/// A token-count distribution: `fixed:N` (or just `N`), `uniform:LO:HI`, `normal:MEAN:SD`.
package enum TokenDistribution: Sendable, Equatable, CustomStringConvertible {
    case fixed(Int)
    case uniform(Int, Int)
    case normal(mean: Double, sd: Double)

    package static func parse(_ text: String) -> TokenDistribution? {
        let parts = text.split(separator: ":").map(String.init)
        switch parts.first {
        case "fixed" where parts.count == 2: return Int(parts[1]).flatMap { $0 > 0 ? .fixed($0) : nil }
        case "uniform" where parts.count == 3:
            guard let lo = Int(parts[1]), let hi = Int(parts[2]), lo > 0, hi >= lo else { return nil }
            return .uniform(lo, hi)
        case "normal" where parts.count == 3:
            guard let mean = Double(parts[1]), let sd = Double(parts[2]), mean > 0, sd >= 0 else { return nil }
            return .normal(mean: mean, sd: sd)
        default:
            return parts.count == 1 ? Int(parts[0]).flatMap { $0 > 0 ? .fixed($0) : nil } : nil
        }
    }

    package func sample(_ rng: inout SplitMix64) -> Int {
        switch self {
        case .fixed(let n): return n
        case .uniform(let lo, let hi): return lo + Int(rng.next() % UInt64(hi - lo + 1))
        case .normal(let mean, let sd): return max(1, Int((mean + sd * Schedule.normal(&rng)).rounded()))
        }
    }

    package var description: String {
        switch self {
        case .fixed(let n): "fixed:\(n)"
        case .uniform(let lo, let hi): "uniform:\(lo):\(hi)"
        case .normal(let mean, let sd): "normal:\(mean):\(sd)"
        }
    }
}
