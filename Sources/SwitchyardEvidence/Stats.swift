/// n, min, mean, nearest-rank percentiles and max of a metric (reference/metrics.md).
package struct MetricSummary: Sendable, Equatable {
    package var n: Int
    package var min: Double
    package var mean: Double
    package var p50: Double
    package var p90: Double
    package var p95: Double
    package var p99: Double
    package var p999: Double
    package var max: Double

    /// Nil for no values.
    package init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        n = sorted.count
        min = sorted[0]
        max = sorted[sorted.count - 1]
        mean = sorted.reduce(0, +) / Double(sorted.count)
        p50 = Self.nearestRank(sorted, 0.50)
        p90 = Self.nearestRank(sorted, 0.90)
        p95 = Self.nearestRank(sorted, 0.95)
        p99 = Self.nearestRank(sorted, 0.99)
        p999 = Self.nearestRank(sorted, 0.999)
    }

    /// sorted[ceil(p·n) − 1].
    package static func nearestRank(_ sorted: [Double], _ p: Double) -> Double {
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[Swift.max(0, Swift.min(sorted.count - 1, rank - 1))]
    }

    package func value(_ percentile: Percentile) -> Double {
        switch percentile {
        case .p50: p50
        case .p90: p90
        case .p95: p95
        case .p99: p99
        case .p999: p999
        case .max: max
        case .mean: mean
        }
    }

    /// Smallest n for which the percentile is more than the maximum: a tail verdict on fewer
    /// samples only restates the worst request.
    package static func minimumSamples(for percentile: Percentile) -> Int {
        switch percentile {
        case .p50, .mean, .max: 1
        case .p90: 10
        case .p95: 20
        case .p99: 100
        case .p999: 1000
        }
    }
}

package enum Percentile: String, Sendable, CaseIterable, Codable {
    case p50, p90, p95, p99
    case p999 = "p99.9"
    case max, mean
}
