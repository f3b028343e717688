import Foundation
import SwitchyardCore
import Yams

/// `switchyard accept SPEC.yaml`: lanes run at the same time, each with its load, SLOs and
/// attainment target, through phases that may inject a fault.
///
/// ```yaml
/// target: { url: http://127.0.0.1:8080/v1, model: smollm2, metrics_url: http://127.0.0.1:8080/metrics,
///           admin_url: http://127.0.0.1:8080, admin_token: "…" }
/// seed: 1
/// recovery_within: 30s
/// lanes:
///   - name: realtime
///     load: { rate: 2, arrival: poisson }         # or { concurrency: 4 }
///     stream: true
///     input_tokens: uniform:16:64
///     output_tokens: 32
///     slo: { ttft: { p99: 2s }, tpot: { p95: 200ms }, e2e: { p99: 10s } }
///     attainment: 0.9
/// phases:
///   - { name: warmup, duration: 5s }
///   - { name: steady, duration: 30s }
///   - { name: fault, duration: 20s, fault: { kill_backend: smollm2-0 } }
///   - { name: recovery, duration: 30s }
/// ```
package struct AcceptSpec: Sendable {
    package struct Target: Sendable {
        package var url: String
        package var model: String
        package var metricsURL: String?
        package var adminURL: String?
        package var adminToken: String?
    }

    package struct SLOBound: Sendable, Equatable {
        /// ttft, tpot, e2e, itl or stall.
        package var metric: String
        package var percentile: Percentile
        package var bound: Duration
    }

    package struct Lane: Sendable {
        package var name: String
        /// Sent as x-switchyard-lane (defaults to the lane's name; `header: none` sends none).
        package var header: String?
        package var load: BenchOptions.Load
        package var stream = true
        /// Ask for exactly `output_tokens` (llama.cpp and vLLM `ignore_eos`).
        package var ignoreEOS = false
        package var api: BenchOptions.API = .chat
        package var inputTokens: TokenDistribution = .fixed(64)
        package var outputTokens: TokenDistribution = .fixed(32)
        package var apiKey: String?
        package var slos: [SLOBound] = []
        /// Share of requests that must succeed and meet every SLO bound (as per-request limits).
        package var attainment: Double?

        /// The SLO bounds as per-request limits for goodput and attainment.
        package var requestSLO: RequestSLO {
            var slo = RequestSLO()
            for b in slos {
                switch b.metric {
                case "ttft": slo.ttft = min(slo.ttft ?? .infinity, b.bound.seconds)
                case "tpot": slo.tpot = min(slo.tpot ?? .infinity, b.bound.seconds)
                case "e2e": slo.e2e = min(slo.e2e ?? .infinity, b.bound.seconds)
                case "stall": slo.maxStall = min(slo.maxStall ?? .infinity, b.bound.seconds)
                default: break
                }
            }
            return slo
        }
    }

    /// Where a chaos fault's proxy sits.
    package enum ChaosPlacement: Sendable, Equatable {
        /// Between the load client and the gateway: what clients see of a bad network to the gateway.
        case client
        /// Between the gateway and these backends (admin ids such as `smollm2-0`, or managed
        /// replica names; empty: every backend of `target.model`): the gateway's retries,
        /// fallbacks and ejections are what is tested.
        case backends([String])
    }

    package enum Fault: Sendable, Equatable {
        /// SIGKILL the managed replica of that name (its pid from the gateway's /admin/backends).
        case killBackend(String)
        /// SIGSTOP it for the phase, SIGCONT at its end (a hung server).
        case stopBackend(String)
        /// Inject these faults for the phase through the chaos proxy placed `at`.
        case chaos(ChaosFaults, at: ChaosPlacement)
        /// An upgrade under load: the gateway's rolling restart of its managed replicas
        /// (`POST /admin/rollout`) at the phase's start.
        case rollout
        /// A configuration change under load: this file applied (`POST /admin/config`).
        case reload(String)

        package var label: String {
            switch self {
            case .killBackend(let name): "kill \(name)"
            case .stopBackend(let name): "stop \(name)"
            case .rollout: "rollout"
            case .reload(let file): "reload \(file)"
            case .chaos(let f, .client): "chaos client-side: \(f.summary)"
            case .chaos(let f, .backends(let names)): "chaos at \(names.isEmpty ? "every backend" : names.joined(separator: ", ")): \(f.summary)"
            }
        }
    }

    package struct Phase: Sendable {
        package var name: String
        package var duration: Duration
        package var fault: Fault?
        /// Whether SLO verdicts count this phase (default: not warmup, no fault, not recovery*).
        package var judged: Bool

        var chaosPlacement: ChaosPlacement? {
            if case .chaos(_, let at) = fault { at } else { nil }
        }
    }

    package var target: Target
    package var seed: UInt64 = 1
    package var recoveryWithin: Duration?
    package var lanes: [Lane] = []
    package var phases: [Phase] = []
    /// SHA-256 of the spec text (for the manifest).
    package var sha256 = ""

    package var totalDuration: Duration { phases.reduce(.zero) { $0 + $1.duration } }
    /// Whether a phase puts chaos between the load client and the gateway.
    package var usesClientChaos: Bool { phases.contains { $0.fault == nil ? false : $0.chaosPlacement == .client } }
    /// The backends some phase puts chaos in front of: nil when none does, empty for every
    /// backend of the target model.
    package var chaosBackends: [String]? {
        var names: [String]? = nil
        for phase in phases {
            guard case .backends(let list) = phase.chaosPlacement else { continue }
            if list.isEmpty || names == [] { return [] }
            names = (names ?? []) + list.filter { !(names ?? []).contains($0) }
        }
        return names
    }

    package static func load(yaml text: String) throws(ConfigError) -> AcceptSpec {
        let root = try YAMLReader.compose(text)
        var r = YAMLReader()
        var spec = AcceptSpec(target: Target(url: "", model: ""))
        spec.sha256 = Digest.sha256Hex(text)
        guard let root, let top = r.mapping(root, "", allowed: ["target", "seed", "recovery_within", "lanes", "phases"]) else {
            throw ConfigError(issues: r.issues.isEmpty ? [ConfigIssue(path: "", message: "empty spec")] : r.issues)
        }
        if let n = top["target"], let m = r.mapping(n, "target", allowed: ["url", "model", "metrics_url", "admin_url", "admin_token"]) {
            if let v = m["url"] {
                spec.target.url = r.httpURL(v, "target.url") ?? ""
            } else {
                r.fail("target.url", "required (the OpenAI base URL)", n)
            }
            if let v = m["model"] { spec.target.model = r.string(v, "target.model") ?? "" } else { r.fail("target.model", "required", n) }
            if let v = m["metrics_url"] { spec.target.metricsURL = r.httpURL(v, "target.metrics_url") }
            if let v = m["admin_url"] { spec.target.adminURL = r.httpURL(v, "target.admin_url") }
            if let v = m["admin_token"] { spec.target.adminToken = r.string(v, "target.admin_token") }
        } else if top["target"] == nil {
            r.fail("target", "required: { url, model }", root)
        }
        if let n = top["seed"], let v = r.int(n, "seed", min: 0) { spec.seed = UInt64(v) }
        if let n = top["recovery_within"], let v = r.duration(n, "recovery_within") { spec.recoveryWithin = v }
        if let n = top["lanes"], let list = r.sequence(n, "lanes") {
            for (i, item) in list.enumerated() { if let lane = decodeLane(item, "lanes[\(i)]", &r) { spec.lanes.append(lane) } }
            if list.isEmpty { r.fail("lanes", "at least one lane", n) }
        } else if top["lanes"] == nil {
            r.fail("lanes", "required: at least one lane", root)
        }
        // Where each decoded phase came from (a phase that failed to decode is left out).
        var sources: [(index: Int, node: Node)] = []
        if let n = top["phases"], let list = r.sequence(n, "phases") {
            for (i, item) in list.enumerated() {
                if let phase = decodePhase(item, "phases[\(i)]", &r) {
                    spec.phases.append(phase)
                    sources.append((i, item))
                }
            }
        } else if top["phases"] == nil {
            r.fail("phases", "required: at least one phase with a duration", root)
        }
        let names = spec.lanes.map(\.name)
        if Set(names).count != names.count { r.fail("lanes", "lane names must be unique", top["lanes"]) }
        let hasAdmin = spec.target.adminURL != nil && spec.target.adminToken != nil
        for (phase, source) in zip(spec.phases, sources) where !hasAdmin {
            let needs: String
            switch phase.fault {
            case .killBackend, .stopBackend:
                needs = "killing or stopping a backend needs target.admin_url and target.admin_token (the gateway's /admin/backends gives its pid)"
            case .rollout, .reload: needs = "a rollout or reload needs target.admin_url and target.admin_token (the gateway's admin API)"
            case .chaos(_, .backends):
                needs =
                    "chaos at: backend (the default) re-points backends through the gateway's admin API: give target.admin_url and target.admin_token, or set at: client"
            default: continue
            }
            r.fail("phases[\(source.index)].fault", needs, source.node)
        }
        if !r.issues.isEmpty { throw ConfigError(issues: r.issues) }
        return spec
    }

    static func decodeLane(_ node: Node, _ path: String, _ r: inout YAMLReader) -> Lane? {
        guard
            let m = r.mapping(
                node, path,
                allowed: [
                    "name", "header", "load", "stream", "ignore_eos", "api", "input_tokens", "output_tokens", "api_key", "slo", "attainment",
                ])
        else { return nil }
        guard let nameNode = m["name"], let name = r.string(nameNode, "\(path).name") else {
            if m["name"] == nil { r.fail("\(path).name", "required", node) }
            return nil
        }
        var lane = Lane(name: name, header: name, load: .concurrency(1))
        if let v = m["header"], let x = r.string(v, "\(path).header") { lane.header = x == "none" ? nil : x }
        if let n = m["load"], let lm = r.mapping(n, "\(path).load", allowed: ["rate", "arrival", "burstiness", "concurrency"]) {
            if let v = lm["rate"], let rate = r.double(v, "\(path).load.rate", min: 0, max: 100_000, exclusiveMin: true) {
                var process: ArrivalProcess = .poisson
                if let a = lm["arrival"], let s = r.string(a, "\(path).load.arrival") {
                    switch s {
                    case "constant": process = .constant
                    case "poisson": process = .poisson
                    case "gamma":
                        var shape = 1.0
                        if let b = lm["burstiness"], let x = r.double(b, "\(path).load.burstiness", min: 0, exclusiveMin: true) { shape = x }
                        process = .gamma(burstiness: shape)
                    default: r.fail("\(path).load.arrival", "must be one of constant, poisson, gamma, got '\(s)'", a)
                    }
                }
                lane.load = .rate(rate, process)
            } else if let v = lm["concurrency"], let c = r.int(v, "\(path).load.concurrency", min: 1, max: 10_000) {
                lane.load = .concurrency(c)
            } else if lm["rate"] == nil {
                r.fail("\(path).load", "give rate (open loop) or concurrency (closed loop)", n)
            }
        } else if m["load"] == nil {
            r.fail("\(path).load", "required: { rate: R } or { concurrency: C }", node)
        }
        if let v = m["stream"], let x = r.bool(v, "\(path).stream") { lane.stream = x }
        if let v = m["ignore_eos"], let x = r.bool(v, "\(path).ignore_eos") { lane.ignoreEOS = x }
        if let v = m["api"], let x = r.oneOf(v, "\(path).api", BenchOptions.API.self) { lane.api = x }
        for (key, keyPath) in [("input_tokens", \Lane.inputTokens), ("output_tokens", \Lane.outputTokens)] {
            guard let v = m[key] else { continue }
            let text = v.string ?? v.int.map(String.init) ?? ""
            if let d = TokenDistribution.parse(text) {
                lane[keyPath: keyPath] = d
            } else {
                r.fail("\(path).\(key)", "expected N, fixed:N, uniform:LO:HI or normal:MEAN:SD, got '\(text)'", v)
            }
        }
        if let v = m["api_key"], let x = r.string(v, "\(path).api_key") { lane.apiKey = x }
        if let n = m["slo"], let sm = r.mapping(n, "\(path).slo", allowed: ["ttft", "tpot", "e2e", "itl", "stall"]) {
            for metric in ["ttft", "tpot", "e2e", "itl", "stall"] {
                guard let pn = sm[metric], let pm = r.mapping(pn, "\(path).slo.\(metric)", allowed: Percentile.allCases.map(\.rawValue)) else {
                    continue
                }
                for (key, value) in pm.sorted(by: { $0.key < $1.key }) {
                    guard let p = Percentile(rawValue: key), let bound = r.duration(value, "\(path).slo.\(metric).\(key)") else { continue }
                    lane.slos.append(SLOBound(metric: metric, percentile: p, bound: bound))
                }
            }
        }
        if let v = m["attainment"], let x = r.double(v, "\(path).attainment", min: 0, max: 1, exclusiveMin: true) { lane.attainment = x }
        return lane
    }

    static func decodePhase(_ node: Node, _ path: String, _ r: inout YAMLReader) -> Phase? {
        guard let m = r.mapping(node, path, allowed: ["name", "duration", "fault", "judge"]) else { return nil }
        let name = m["name"].flatMap { r.string($0, "\(path).name") } ?? "phase\(path)"
        guard let dn = m["duration"], let duration = r.duration(dn, "\(path).duration") else {
            if m["duration"] == nil { r.fail("\(path).duration", "required", node) }
            return nil
        }
        var fault: Fault?
        if let fn = m["fault"],
            let fm = r.mapping(fn, "\(path).fault", allowed: ["kill_backend", "stop_backend", "chaos", "at", "backends", "rollout", "reload"])
        {
            if let v = fm["kill_backend"], let x = r.string(v, "\(path).fault.kill_backend") { fault = .killBackend(x) }
            if let v = fm["rollout"], let x = r.bool(v, "\(path).fault.rollout") {
                if x { fault = .rollout } else { r.fail("\(path).fault.rollout", "true, or leave the fault out", v) }
            }
            if let v = fm["reload"], let x = r.string(v, "\(path).fault.reload") {
                if FileManager.default.isReadableFile(atPath: x) {
                    fault = .reload(x)
                } else {
                    r.fail("\(path).fault.reload", "cannot read '\(x)'", v)
                }
            }
            if let v = fm["stop_backend"], let x = r.string(v, "\(path).fault.stop_backend") { fault = .stopBackend(x) }
            if let cn = fm["chaos"],
                let cm = r.mapping(
                    cn, "\(path).fault.chaos", allowed: ["latency", "reset_rate", "status_503_rate", "stall_rate", "stall_after_chunks", "stall_for"])
            {
                var f = ChaosFaults()
                if let v = cm["latency"], let x = r.duration(v, "\(path).fault.chaos.latency", allowZero: true) { f.latency = x }
                if let v = cm["reset_rate"], let x = r.double(v, "\(path).fault.chaos.reset_rate", min: 0, max: 1) { f.resetRate = x }
                if let v = cm["status_503_rate"], let x = r.double(v, "\(path).fault.chaos.status_503_rate", min: 0, max: 1) { f.status503Rate = x }
                if let v = cm["stall_rate"], let x = r.double(v, "\(path).fault.chaos.stall_rate", min: 0, max: 1) { f.stallRate = x }
                if let v = cm["stall_after_chunks"], let x = r.int(v, "\(path).fault.chaos.stall_after_chunks", min: 0) { f.stallAfterChunks = x }
                if let v = cm["stall_for"], let x = r.duration(v, "\(path).fault.chaos.stall_for") { f.stallFor = x }
                fault = .chaos(f, at: decodePlacement(fm, "\(path).fault", &r))
            } else if fm["at"] != nil || fm["backends"] != nil {
                r.fail("\(path).fault", "at and backends place a chaos fault; this fault has no chaos", fn)
            }
            if fm.keys.filter({ ["kill_backend", "stop_backend", "chaos", "rollout", "reload"].contains($0) }).count != 1 {
                r.fail("\(path).fault", "give exactly one of kill_backend, stop_backend, chaos, rollout, reload", fn)
            }
        }
        var judged = fault == nil && name != "warmup" && !name.hasPrefix("recovery")
        if let v = m["judge"], let x = r.bool(v, "\(path).judge") { judged = x }
        return Phase(name: name, duration: duration, fault: fault, judged: judged)
    }

    /// `at: backend` (the default) with optional `backends: ID` or `[ID, …]`, or `at: client`.
    static func decodePlacement(_ fm: [String: Node], _ path: String, _ r: inout YAMLReader) -> ChaosPlacement {
        var names: [String] = []
        if let v = fm["backends"] {
            if let one = v.string {
                names = [one]
            } else if let list = r.sequence(v, "\(path).backends") {
                names = list.enumerated().compactMap { i, item in r.string(item, "\(path).backends[\(i)]") }
            }
        }
        guard let v = fm["at"], let at = r.string(v, "\(path).at") else { return .backends(names) }
        switch at {
        case "backend": return .backends(names)
        case "client":
            if !names.isEmpty {
                r.fail("\(path).backends", "names backends for at: backend; at: client sits in front of the gateway", fm["backends"])
            }
            return .client
        default:
            r.fail(
                "\(path).at",
                "must be backend (between the gateway and its backends) or client (between the load client and the gateway), got '\(at)'", v)
            return .backends(names)
        }
    }
}
