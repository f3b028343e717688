import Foundation
import SwitchyardCore

/// Sizes a pool: the fewest replicas whose simulation meets every lane's attainment target at the
/// peak, then what they cost and deliver.
package struct Planner: Sendable {
    package var base: SimulationSetup
    package var demand: Demand

    package init(base: SimulationSetup, demand: Demand) {
        self.base = base
        self.demand = demand
    }

    /// One replica count's simulation, in a sweep.
    package struct Point: Sendable {
        package var replicas: Int
        package var result: SimulationResult
    }

    package struct Plan: Sendable {
        package var profile: ReplicaProfile
        package var demand: Demand
        /// Nil: no count up to the limit met every target.
        package var replicas: Int?
        package var points: [Point]
        /// The chosen count's simulation at the peak.
        package var peak: SimulationResult?
        /// How much the peak rate may grow (1.3 = 30% more) before a lane misses its target.
        package var headroom: Double?
        package var seed: UInt64
        /// Why no count can meet the targets (a lane misses even when nothing waits).
        package var unreachable: String?
    }

    /// The peak loads: each lane at its peak rate all the time.
    var peakLoads: [LaneLoad] {
        demand.loads.map {
            var l = $0
            l.daily = nil
            return l
        }
    }

    func simulate(replicas: Int, scale: Double = 1) throws -> SimulationResult {
        var setup = base
        setup.replicas = replicas
        setup.duration = demand.duration
        setup.stopOnceMissed = true
        return try Simulator.run(
            setup,
            loads: peakLoads.map {
                var l = $0
                l.rate *= scale
                return l
            })
    }

    /// A first guess from the offered work: requests per second × a request's time on a full
    /// replica ÷ slots.
    func estimate() -> Int {
        let p = base.profile
        let slots = p.slotCount
        var work = 0.0
        for l in demand.loads {
            let prompt = Double(l.prompt.mean), output = Double(l.output.mean)
            work += l.rate * (p.ttft(prompt: Int(prompt), inflight: slots) + max(0, output - 1) * p.tpot(inflight: slots))
        }
        return max(1, Int((work / Double(slots)).rounded(.up)))
    }

    /// Finds the fewest replicas (up to `limit`) that meet every target; `sweep` also draws the
    /// counts in that range.
    package func plan(limit: Int = 10_000, sweep: ClosedRange<Int>? = nil) throws -> Plan {
        var points: [Int: SimulationResult] = [:]
        func run(_ n: Int) throws -> SimulationResult {
            if let r = points[n] { return r }
            let r = try simulate(replicas: n)
            points[n] = r
            return r
        }
        var chosen: Int?
        var unreachable: String?
        if let sweep {
            for n in sweep {
                let meets = try run(n).meetsEveryTarget
                if meets, chosen == nil { chosen = n }
            }
        } else {
            // Up from half the estimate until it meets, then bisect down.
            var low = max(1, estimate() / 2), high = low
            while try !run(high).meetsEveryTarget {
                let r = try run(high)
                // Nothing waited and a lane still missed: more replicas cannot help.
                if let lane = r.lanes.first(where: { !$0.meetsTarget && $0.shedTotal == 0 }), r.lanes.allSatisfy({ $0.meanQueueWait < 1e-3 }),
                    lane.completed > 0
                {
                    unreachable = String(
                        format:
                            "lane %@ meets its SLO in %.2f%% of requests with %d replicas and no queueing, below its target of %.2f%%: the replica itself is too slow for the SLO",
                        lane.lane, lane.attainment * 100, high, lane.target * 100)
                    break
                }
                low = high + 1
                guard high < limit else { break }
                high = min(limit, high * 2)
            }
            if unreachable == nil, try run(high).meetsEveryTarget {
                while low < high {
                    let mid = (low + high) / 2
                    if try run(mid).meetsEveryTarget { high = mid } else { low = mid + 1 }
                }
                chosen = high
            }
        }
        var headroom: Double?
        if let chosen {
            // Bisect the rate multiplier at which the chosen count stops meeting its targets.
            var ok = 1.0, bad = 2.0
            while try simulate(replicas: chosen, scale: bad).meetsEveryTarget, bad < 64 {
                ok = bad
                bad *= 2
            }
            for _ in 0..<5 {
                let mid = (ok + bad) / 2
                if try simulate(replicas: chosen, scale: mid).meetsEveryTarget { ok = mid } else { bad = mid }
            }
            headroom = ok
        }
        return Plan(
            profile: base.profile, demand: demand, replicas: chosen,
            points: points.keys.sorted().map { Point(replicas: $0, result: points[$0]!) }, peak: chosen.flatMap { points[$0] },
            headroom: headroom, seed: base.seed, unreachable: unreachable)
    }
}

extension TokenDistribution {
    /// The distribution's mean.
    package var mean: Double {
        switch self {
        case .fixed(let n): Double(n)
        case .uniform(let lo, let hi): Double(lo + hi) / 2
        case .normal(let mean, _): mean
        }
    }
}

/// What a plan costs and delivers: per GPU-hour (or replica-hour for CPU replicas).
package struct PlanEconomics: Sendable {
    package var unit: String
    package var units: Int
    /// Price of one unit-hour; nil when the demand gives none.
    package var price: Double?
    /// Average requests and output tokens per second over the day (the peak without `daily`).
    package var averageRate: Double
    package var averageTokenRate: Double
    /// At the peak: requests that met their SLO, and output tokens, per unit-hour.
    package var goodputPerUnitHour: Double
    package var tokensPerUnitHour: Double
    package var utilizationAtPeak: Double
    /// Average load ÷ the peak's (how much of the day's capacity is used).
    package var dayUtilization: Double

    package var costPerHour: Double? { price.map { $0 * Double(units) } }
    package var costPerMillionTokens: Double? { costPerHour.map { $0 / max(1e-9, averageTokenRate * 3600) * 1e6 } }
    package var costPerThousandRequests: Double? { costPerHour.map { $0 / max(1e-9, averageRate * 3600) * 1000 } }

    package init(plan: Planner.Plan) {
        let profile = plan.profile
        let gpu = profile.gpusPerReplica > 0
        unit = gpu ? "GPU" : "replica"
        let replicas = plan.replicas ?? 0
        units = replicas * (gpu ? profile.gpusPerReplica : 1)
        price = gpu ? plan.demand.pricePerGPUHour : plan.demand.pricePerReplicaHour
        var rate = 0.0, tokens = 0.0, peakRate = 0.0
        for l in plan.demand.loads {
            let share = l.dailyShare
            rate += l.rate * share
            tokens += l.rate * share * l.output.mean
            peakRate += l.rate
        }
        averageRate = rate
        averageTokenRate = tokens
        dayUtilization = (plan.peak?.utilization ?? 0) * rate / max(1e-9, peakRate)
        utilizationAtPeak = plan.peak?.utilization ?? 0
        if let peak = plan.peak, units > 0, peak.span > 0 {
            let met = peak.lanes.reduce(0) { $0 + $1.met }
            goodputPerUnitHour = Double(met) / peak.span * 3600 / Double(units)
            tokensPerUnitHour = Double(peak.outputTokens) / peak.span * 3600 / Double(units)
        } else {
            goodputPerUnitHour = 0
            tokensPerUnitHour = 0
        }
    }
}
