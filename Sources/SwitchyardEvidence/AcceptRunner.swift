import AsyncHTTPClient
import Foundation
import NIOCore
import SwitchyardCore
import Synchronization

/// Runs an ``AcceptSpec``: every lane's load at once, the phases on a timer with their faults,
/// the gateway's queue depth sampled from its /metrics, then the verdicts.
package final class AcceptRunner: Sendable {
    package let spec: AcceptSpec
    let log: @Sendable (String) -> Void

    package struct Result: Sendable {
        package var records: [RequestRecord]
        package var phases: [LaneVerdict.PhaseSpan]
        package var markers: [TimelineMarker]
        package var sampled: [SampledSeries]
        package var verdicts: [LaneVerdict]
        /// What the chaos proxy did, when used.
        package var chaosCounts: [String: Int]
    }

    /// What the phase and sampling tasks gather during the run.
    final class Collected: Sendable {
        let markers = Mutex<[TimelineMarker]>([])
        let samples = Mutex<[String: [(t: Double, value: Double)]]>([:])
        /// The gateway's retry, fallback, ejection and error counters at each sample.
        let activity = Mutex<[(t: Double, totals: LaneVerdict.GatewayActivity)]>([])
        /// Fault phases whose fault was not applied, or failed, by phase name.
        let faultProblems = Mutex<[String: LaneVerdict.FaultProblem]>([:])
        /// Rollouts and reloads not answered yet.
        let pendingCalls = Mutex<[String]>([])

        func problem(_ phase: String, _ problem: LaneVerdict.FaultProblem, at t: Double, label: String) {
            faultProblems.withLock { $0[phase] = problem }
            markers.withLock { $0.append(TimelineMarker(at: t, label: label)) }
        }
    }

    /// What the gateway did during each fault phase: counter increases from the last sample
    /// before it to the first after it. Empty without samples.
    static func gatewayActivity(
        _ samples: [(t: Double, totals: LaneVerdict.GatewayActivity)], phases: [LaneVerdict.PhaseSpan]
    ) -> [String: LaneVerdict.GatewayActivity] {
        var out: [String: LaneVerdict.GatewayActivity] = [:]
        for phase in phases where phase.fault != nil {
            guard let before = samples.last(where: { $0.t <= phase.start }) ?? samples.first,
                let after = samples.first(where: { $0.t >= phase.end }) ?? samples.last, after.t > before.t
            else { continue }
            out[phase.name] = after.totals - before.totals
        }
        return out
    }

    package struct RunError: Error, CustomStringConvertible {
        package let description: String
    }

    package init(spec: AcceptSpec, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.spec = spec
        self.log = log
    }

    package func run() async throws(RunError) -> Result {
        let http = HTTPClient.shared
        // Client-side chaos needs the traffic to go through the proxy for the whole run.
        var chaos: ChaosProxy?
        var baseURL = spec.target.url
        let proxyTask: Task<Void, any Error>?
        if spec.usesClientChaos {
            guard let url = HTTPURL(spec.target.url) else { throw RunError(description: "target.url is not a URL") }
            let proxy: ChaosProxy
            do {
                proxy = try ChaosProxy(upstream: url.origin, seed: spec.seed)
            } catch {
                throw RunError(description: "\(error)")
            }
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            proxyTask = Task { try await proxy.run(port: 0) { continuation.yield($0) } }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw RunError(description: "the chaos proxy did not start") }
            baseURL = "http://127.0.0.1:\(port)" + url.path
            chaos = proxy
            log("chaos proxy on 127.0.0.1:\(port) → \(url.origin)")
        } else {
            proxyTask = nil
        }
        defer { proxyTask?.cancel() }
        // Backend-side chaos: proxies in front of the backends, in place before the load starts.
        var backendChaos: BackendChaos?
        if let names = spec.chaosBackends, let admin = adminClient(http) {
            do {
                backendChaos = try await BackendChaos.install(model: spec.target.model, names: names, admin: admin, seed: spec.seed, log: log)
            } catch {
                throw RunError(description: "could not put the chaos proxy in front of the backends: \(error)")
            }
        }
        let result: Result
        do {
            result = try await run(baseURL: baseURL, http: http, chaos: chaos, backendChaos: backendChaos)
        } catch {
            await backendChaos?.remove()
            throw error
        }
        await backendChaos?.remove()
        return result
    }

    func adminClient(_ http: HTTPClient) -> AdminClient? {
        guard let url = spec.target.adminURL, let token = spec.target.adminToken else { return nil }
        return AdminClient(url: url, token: token, http: http)
    }

    /// The load, the phases and the sampling, with the chaos proxies in place.
    func run(baseURL: String, http: HTTPClient, chaos: ChaosProxy?, backendChaos: BackendChaos?) async throws(RunError) -> Result {
        let origin = ContinuousClock.now
        let total = spec.totalDuration
        let spans = LaneVerdict.spans(spec.phases)
        let collected = Collected()
        let runners = spec.lanes.enumerated().map { i, lane -> LoadRunner in
            var options = BenchOptions(baseURL: baseURL, model: spec.target.model, load: lane.load)
            options.api = lane.api
            options.duration = total
            options.seed = spec.seed &+ UInt64(i) &* 7919
            options.workload.inputTokens = lane.inputTokens
            options.workload.ignoreEOS = lane.ignoreEOS
            options.workload.outputTokens = lane.outputTokens
            options.stream = lane.stream
            options.lane = lane.header
            options.apiKey = lane.apiKey
            options.label = lane.name
            return LoadRunner(options: options, threads: 1, origin: origin)
        }
        var records: [RequestRecord]
        do {
            records = try await withThrowingTaskGroup(of: [RequestRecord].self) { group in
                for runner in runners { group.addTask { try await runner.run() } }
                group.addTask { [self] in
                    await runPhases(origin: origin, spans: spans, chaos: chaos, backendChaos: backendChaos, http: http, collected: collected)
                    return []
                }
                if let metricsURL = spec.target.metricsURL {
                    group.addTask { [self] in
                        await sample(metricsURL, origin: origin, until: origin + total, http: http, collected: collected)
                        return []
                    }
                }
                var all: [RequestRecord] = []
                for try await part in group { all += part }
                return all
            }
        } catch {
            throw RunError(description: "\(error)")
        }
        // Each request's phase, by when it was scheduled; `warmup` only in the warmup phase.
        records = records.map { r in
            var r = r
            let t = r.tSched.seconds
            r.phase = spans.first { t >= $0.start && t < $0.end }?.name ?? spans.last?.name
            r.warmup = r.phase == "warmup"
            return r
        }
        let gateway = Self.gatewayActivity(collected.activity.withLock { $0 }, phases: spans)
        let faultProblems = collected.faultProblems.withLock { $0 }
        let verdicts = spec.lanes.map { lane -> LaneVerdict in
            var offered: Double?
            if case .rate(let r, _) = lane.load { offered = r }
            return LaneVerdict.judge(
                lane: lane, records: records.filter { $0.lane == lane.name }, phases: spans,
                recoveryWithin: spec.recoveryWithin?.seconds, offeredRate: offered, gateway: gateway, faultProblems: faultProblems)
        }
        let sampled = collected.samples.withLock { s in s.keys.sorted().map { SampledSeries(name: "queue \($0)", points: s[$0]!) } }
        return Result(
            records: records.sorted { ($0.lane, $0.id) < ($1.lane, $1.id) }, phases: spans, markers: collected.markers.withLock { $0 },
            sampled: sampled, verdicts: verdicts,
            chaosCounts: (chaos?.injected ?? [:]).merging(backendChaos?.injected ?? [:]) { a, _ in a })
    }

    /// Applies each phase's fault at its start and lifts it at its end; returns once every
    /// rollout or reload it started has answered (their outcome is part of the verdict).
    func runPhases(
        origin: ContinuousClock.Instant, spans: [LaneVerdict.PhaseSpan], chaos: ChaosProxy?, backendChaos: BackendChaos?,
        http: HTTPClient, collected: Collected
    ) async {
        var calls: [Task<Void, Never>] = []
        func now() -> Double { (ContinuousClock.now - origin).seconds }
        for span in spans {
            try? await Task.sleep(until: origin + .seconds(span.start), clock: .continuous)
            log(String(format: "%6.1fs phase %@%@", span.start, span.name, span.fault.map { " — fault: \($0.label)" } ?? ""))
            guard let fault = span.fault else { continue }
            // The fault's span, shaded on the time charts.
            collected.markers.withLock {
                $0.append(TimelineMarker(at: (ContinuousClock.now - origin).seconds, end: span.end, label: fault.label))
            }
            var stoppedPID: Int32?
            switch fault {
            case .chaos(let faults, .client):
                chaos?.set(faults)
            case .chaos(let faults, .backends(let names)):
                backendChaos?.set(faults, on: names)
            case .killBackend(let name), .stopBackend(let name):
                do {
                    let launcher = try await backendPID(name, http: http)
                    // The pid is Switchyard's launcher; the model server is its child. A crash
                    // of the server is the fault (the launcher reports it, the supervisor restarts).
                    let pid = Self.children(of: launcher).first ?? launcher
                    let isKill: Bool = { if case .killBackend = fault { return true } else { return false } }()
                    kill(pid, isKill ? SIGKILL : SIGSTOP)
                    if !isKill { stoppedPID = pid }
                    log("  \(isKill ? "killed" : "stopped") \(name) (pid \(pid))")
                } catch {
                    log("  could not inject '\(fault.label)': \(error)")
                    collected.problem(span.name, .notInjected("\(error)"), at: now(), label: "fault not injected")
                }
            case .rollout, .reload:
                // Beside the load (a rollout takes as long as its replicas need); the phase is
                // judged like a fault's: failures, attainment during it, time back to steady state.
                guard let admin = adminClient(http) else {
                    log("  could not start '\(fault.label)': target.admin_url and target.admin_token are needed")
                    collected.problem(
                        span.name, .notInjected("target.admin_url and target.admin_token are needed"), at: now(), label: "not started")
                    break
                }
                let log = self.log
                let phase = span.name
                collected.pendingCalls.withLock { $0.append(fault.label) }
                calls.append(
                    Task {
                        defer { collected.pendingCalls.withLock { $0.removeAll { $0 == fault.label } } }
                        let started = ContinuousClock.now
                        do {
                            let answer: JSONValue
                            if case .reload(let file) = fault {
                                answer = try await admin.call(.POST, "/admin/config", text: try String(contentsOfFile: file, encoding: .utf8))
                            } else {
                                answer = try await admin.call(.POST, "/admin/rollout", timeout: .seconds(900))
                            }
                            let steps = answer["steps"]?.arrayValue.map { " (\($0.count) replica(s) restarted)" } ?? ""
                            log(String(format: "  %@ done in %.1f s%@", fault.label, (ContinuousClock.now - started).seconds, steps))
                        } catch {
                            log("  \(fault.label) failed: \(error)")
                            collected.problem(phase, .failed("\(error)"), at: (ContinuousClock.now - origin).seconds, label: "\(fault.label) failed")
                        }
                    })
            }
            try? await Task.sleep(until: origin + .seconds(span.end), clock: .continuous)
            switch fault {
            case .chaos(_, .client): chaos?.set(ChaosFaults())
            case .chaos(_, .backends): backendChaos?.set(ChaosFaults(), on: [])
            default: break
            }
            if let pid = stoppedPID { kill(pid, SIGCONT) }
        }
        try? await Task.sleep(until: origin + .seconds(spans.last?.end ?? 0), clock: .continuous)
        for label in collected.pendingCalls.withLock({ $0 }) { log("waiting for the \(label) to answer (its outcome is part of the verdict)") }
        for call in calls { await call.value }
    }

    /// Child processes of `pid`, from /proc (Linux).
    static func children(of pid: Int32) -> [Int32] {
        if let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) {
            let pids = text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if !pids.isEmpty { return pids }
        }
        // Kernels without the children file: scan every process's parent.
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let candidate = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? candidate : nil
        }
    }

    /// The pid of the managed replica `name` from the gateway's admin API.
    func backendPID(_ name: String, http: HTTPClient) async throws -> Int32 {
        guard let admin = adminClient(http) else { throw RunError(description: "target.admin_url and target.admin_token are needed") }
        let json = try await admin.call(.GET, "/admin/backends", timeout: .seconds(5))
        for model in json["models"]?.arrayValue ?? [] {
            for backend in model["backends"]?.arrayValue ?? [] where backend["name"]?.stringValue == name {
                guard let pid = backend["pid"]?.intValue else { throw RunError(description: "\(name) has no running process") }
                return Int32(pid)
            }
        }
        throw RunError(description: "no managed backend named '\(name)' in /admin/backends")
    }

    /// `switchyard_queue_depth` of the target model, per lane, every second.
    func sample(
        _ url: String, origin: ContinuousClock.Instant, until end: ContinuousClock.Instant, http: HTTPClient,
        collected: Collected
    ) async {
        let prefix = "switchyard_queue_depth{model=\"\(spec.target.model)\",lane=\""
        while ContinuousClock.now < end {
            if let response = try? await http.execute(HTTPClientRequest(url: url), timeout: .seconds(2)),
                let body = try? await response.body.collect(upTo: 8 << 20)
            {
                let t = (ContinuousClock.now - origin).seconds
                let text = String(buffer: body)
                collected.activity.withLock { $0.append((t, LaneVerdict.GatewayActivity.totals(text))) }
                for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
                    let rest = line.dropFirst(prefix.count)
                    guard let quote = rest.firstIndex(of: "\""), let value = Double(rest.split(separator: " ").last ?? "") else { continue }
                    collected.samples.withLock { $0[String(rest[..<quote]), default: []].append((t, value)) }
                }
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
