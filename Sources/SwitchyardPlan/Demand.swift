import Foundation
import SwitchyardCore
import Yams

/// What a plan is for: load per lane, SLOs, attainment targets, prices. `demand.yaml`:
///
///     price_per_gpu_hour: 2.50        # or price_per_replica_hour for CPU replicas
///     duration: 10m                   # simulated time per evaluation
///     lanes:
///       realtime:
///         rate: 20                    # requests per second at the peak
///         daily: [0.2, 0.2, …]        # optional: 24 shares of the peak, one per hour
///         arrival: poisson            # constant, poisson, bursty or gamma:SHAPE
///         prompt_tokens: uniform:64:512
///         output_tokens: 128
///         tenants: 10
///         slo: { ttft: 500ms, tpot: 50ms, e2e: 10s }
///         attainment: 0.99
package struct Demand: Sendable {
    package var loads: [LaneLoad] = []
    package var pricePerGPUHour: Double?
    package var pricePerReplicaHour: Double?
    package var duration: Duration = .seconds(600)

    package init() {}

    static let laneFields = ["rate", "daily", "arrival", "prompt_tokens", "output_tokens", "tenants", "slo", "attainment"]

    package static func load(yaml text: String) throws(ConfigError) -> Demand {
        let root = try YAMLReader.compose(text)
        var r = YAMLReader()
        var demand = Demand()
        guard let root, let top = r.mapping(root, "", allowed: ["lanes", "price_per_gpu_hour", "price_per_replica_hour", "duration"]) else {
            throw ConfigError(issues: r.issues.isEmpty ? [ConfigIssue(path: "", message: "empty demand: give lanes")] : r.issues)
        }
        if let n = top["price_per_gpu_hour"] { demand.pricePerGPUHour = r.double(n, "price_per_gpu_hour", min: 0) }
        if let n = top["price_per_replica_hour"] { demand.pricePerReplicaHour = r.double(n, "price_per_replica_hour", min: 0) }
        if let n = top["duration"], let d = r.duration(n, "duration") { demand.duration = d }
        if let lanesNode = top["lanes"] {
            if case .mapping(let lanes) = lanesNode {
                for (key, value) in lanes {
                    guard let name = key.string else { continue }
                    if let load = decodeLane(name, value, reader: &r) { demand.loads.append(load) }
                }
            } else {
                r.fail("lanes", "expected a mapping of lane name → load", lanesNode)
            }
        } else {
            r.fail("lanes", "missing: give at least one lane with its rate", root)
        }
        if top["lanes"] != nil, demand.loads.isEmpty, r.issues.isEmpty { r.fail("lanes", "no lane given", top["lanes"]) }
        if !r.issues.isEmpty { throw ConfigError(issues: r.issues) }
        return demand
    }

    static func decodeLane(_ name: String, _ node: Node, reader r: inout YAMLReader) -> LaneLoad? {
        let path = "lanes.\(name)"
        guard let m = r.mapping(node, path, allowed: laneFields) else { return nil }
        var rate: Double?
        if let rateNode = m["rate"] {
            rate = r.double(rateNode, "\(path).rate", min: 0, exclusiveMin: true)
        } else {
            r.fail("\(path).rate", "missing: requests per second at the peak", node)
        }
        // Every other field is still read, so one run names every mistake.
        var load = LaneLoad(lane: name, rate: rate ?? 1)
        if let n = m["daily"], let seq = r.sequence(n, "\(path).daily") {
            let values = seq.enumerated().compactMap { i, v in r.double(v, "\(path).daily[\(i)]", min: 0) }
            if seq.count != 24 {
                r.fail("\(path).daily", "expected 24 shares of the peak rate (one per hour), got \(seq.count)", n)
            } else if values.count == 24 {
                if values.max() ?? 0 <= 0 { r.fail("\(path).daily", "every hour is 0: no load", n) }
                load.daily = values
            }
        }
        if let n = m["arrival"], let text = r.string(n, "\(path).arrival") {
            if let process = parseArrival(text) {
                load.arrival = process
            } else {
                r.fail("\(path).arrival", "expected constant, poisson, bursty or gamma:SHAPE (SHAPE > 0), got '\(text)'", n)
            }
        }
        for (field, keyPath) in [("prompt_tokens", \LaneLoad.prompt), ("output_tokens", \LaneLoad.output)] {
            guard let n = m[field] else { continue }
            let text = n.scalar?.string ?? ""
            if let d = TokenDistribution.parse(text) {
                load[keyPath: keyPath] = d
            } else {
                r.fail("\(path).\(field)", "expected N, fixed:N, uniform:LO:HI or normal:MEAN:SD, got '\(text)'", n)
            }
        }
        if let n = m["tenants"], let t = r.int(n, "\(path).tenants", min: 1, max: 1_000_000) { load.tenants = t }
        if let n = m["attainment"], let a = r.double(n, "\(path).attainment", min: 0, max: 1, exclusiveMin: true) { load.attainment = a }
        if let n = m["slo"], let slo = r.mapping(n, "\(path).slo", allowed: ["ttft", "tpot", "e2e"]) {
            load.slo.ttft = slo["ttft"].flatMap { r.duration($0, "\(path).slo.ttft") }?.seconds
            load.slo.tpot = slo["tpot"].flatMap { r.duration($0, "\(path).slo.tpot") }?.seconds
            load.slo.e2e = slo["e2e"].flatMap { r.duration($0, "\(path).slo.e2e") }?.seconds
        }
        return rate == nil ? nil : load
    }

    /// `constant`, `poisson`, `bursty` (gamma with shape 0.25: arrivals in clumps) or `gamma:SHAPE`.
    package static func parseArrival(_ text: String) -> ArrivalProcess? {
        switch text {
        case "constant": return .constant
        case "poisson": return .poisson
        case "bursty": return .gamma(burstiness: 0.25)
        default:
            guard text.hasPrefix("gamma:"), let shape = Double(text.dropFirst(6)), shape > 0 else { return nil }
            return .gamma(burstiness: shape)
        }
    }
}
