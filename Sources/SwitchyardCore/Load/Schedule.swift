import Foundation

/// How open-loop arrivals are spaced.
package enum ArrivalProcess: Sendable, Equatable {
    /// Evenly spaced, 1/rate apart.
    case constant
    /// Exponential inter-arrival times (memoryless arrivals).
    case poisson
    /// Gamma inter-arrival times with shape `burstiness` and mean 1/rate: below 1 burstier than
    /// Poisson (coefficient of variation 1/√burstiness), 1 is Poisson, above 1 more regular.
    case gamma(burstiness: Double)
}

/// The open-loop send schedule, computed up front from a seed so a run can be repeated exactly
/// and a request that goes out late is measured from when it should have gone (no coordinated
/// omission).
package enum Schedule {
    /// Offsets from the start of the run, at most `count` of them and none past `duration`.
    package static func make(rate: Double, process: ArrivalProcess, seed: UInt64, count: Int? = nil, duration: Duration? = nil) -> [Duration] {
        precondition(rate > 0, "rate must be positive")
        precondition(count != nil || duration != nil, "a schedule needs a count or a duration")
        var rng = SplitMix64(seed: seed)
        let limit = duration.map { $0.seconds } ?? .infinity
        var times: [Duration] = []
        var t = 0.0
        while count.map({ times.count < $0 }) ?? true {
            if !times.isEmpty || process != .constant {
                t += gap(rate: rate, process: process, rng: &rng)
            }
            if t >= limit { break }
            times.append(.seconds(t))
        }
        return times
    }

    package static func gap(rate: Double, process: ArrivalProcess, rng: inout SplitMix64) -> Double {
        switch process {
        case .constant: return 1 / rate
        case .poisson: return -log(uniform(&rng)) / rate
        case .gamma(let shape): return gamma(shape: shape, rng: &rng) / (shape * rate)
        }
    }

    /// Uniform in (0, 1].
    package static func uniform(_ rng: inout SplitMix64) -> Double {
        (Double(rng.next() >> 11) + 1) / 9007199254740992.0
    }

    package static func normal(_ rng: inout SplitMix64) -> Double {
        sqrt(-2 * log(uniform(&rng))) * cos(2 * Double.pi * uniform(&rng))
    }

    /// Marsaglia–Tsang sampling of Gamma(shape, 1); shapes below 1 use the boost u^(1/shape).
    package static func gamma(shape: Double, rng: inout SplitMix64) -> Double {
        if shape < 1 {
            return gamma(shape: shape + 1, rng: &rng) * pow(uniform(&rng), 1 / shape)
        }
        let d = shape - 1.0 / 3
        let c = 1 / sqrt(9 * d)
        while true {
            var x: Double
            var v: Double
            repeat {
                x = normal(&rng)
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = uniform(&rng)
            if log(u) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
        }
    }
}
