import Foundation
import HeapModule
import SwitchyardCore
import SwitchyardScheduling

/// The discrete-event simulation: arrivals, the pool's decisions and timer, the replicas'
/// service, in virtual time. Same setup and seed → the same result, bit for bit.
package struct Simulator {
    let setup: SimulationSetup
    var pool: PoolStateMachine
    let origin: ContinuousClock.Instant
    let laneIndex: [String: Int]
    let laneConfigs: [LaneConfig]
    var result: SimulationResult
    var events = Heap<Event>()
    var seq: UInt64 = 0
    var now: Int64 = 0
    var serviceRNG: SplitMix64
    /// The profile's numbers (read on every event; the profile itself carries strings).
    let service: ServiceModel
    /// Serial prefill: when each replica's prefill stream is free again (ns).
    var prefillFreeAt: [Int64] = []
    var slab: [Request] = []
    var free: [Int] = []
    var queued: [UInt64: Int] = [:]
    var preemptible: [ObjectIdentifier: Int] = [:]
    /// The requests on each replica: decoding ones share its step time (TPOT at its count).
    var active: [[Int]] = []
    var timerAt: Int64?
    var busy = 0.0
    var busyInWindow = 0.0
    /// The end of arrivals (ns): the utilization window.
    var windowEnd: Int64 = 0
    var lastCompletion: Int64 = 0
    var lastArrival: Int64 = 0
    var eventCount = 0
    /// Misses each lane may have and still meet its target (from its expected requests).
    var allowedMisses: [Double] = []

    struct Event: Comparable {
        // In this order the event takes 32 bytes (the heap moves fewer).
        var t: Int64
        var seq: UInt64
        var ref: Int
        var generation: UInt32
        var kind: Kind

        enum Kind: UInt8 { case arrival, completion, timer, sample }
        static func < (a: Event, b: Event) -> Bool { a.t != b.t ? a.t < b.t : a.seq < b.seq }
        static func == (a: Event, b: Event) -> Bool { a.t == b.t && a.seq == b.seq }
    }

    struct Request {
        var lane: Int
        var arrival: Int64
        var prompt: Int
        var output: Int
        var ticket: PoolStateMachine.Ticket
        var lease: PoolStateMachine.Lease?
        var started: Int64 = 0
        var ttft = 0.0
        /// Average time per output token, set when it finishes.
        var tpot = 0.0
        var generation: UInt32 = 0
        var replica = 0
        /// Decoding (past its first token): output tokens left, their time scale (the spread),
        /// and when the progress was last brought up to date.
        var decoding = false
        var tokensLeft = 0.0
        var tokenScale = 1.0
        var decodeStart: Int64 = 0
        var lastUpdate: Int64 = 0
    }

    /// Runs open-loop arrivals per lane for `setup.duration`.
    package static func run(_ setup: SimulationSetup, loads: [LaneLoad]) throws -> SimulationResult {
        var sim = try Simulator(setup, lanes: loads.map { ($0.lane, $0.slo, $0.attainment) })
        sim.allowedMisses = loads.map { l in
            let share = l.dailyShare
            return l.slo.isEmpty ? .infinity : (1 - l.attainment) * l.rate * share * setup.duration.seconds
        }
        try sim.runLoads(loads)
        return sim.finish()
    }

    /// Replays a recorded trace (requests at their recorded offsets).
    package static func run(_ setup: SimulationSetup, trace: [TraceRequest], slos: [String: (PlanSLO, Double)] = [:]) throws -> SimulationResult {
        var names: [String] = []
        for r in trace where !names.contains(r.lane) { names.append(r.lane) }
        var sim = try Simulator(setup, lanes: names.map { ($0, slos[$0]?.0 ?? PlanSLO(), slos[$0]?.1 ?? 0.99) })
        sim.runTrace(trace.sorted { $0.at < $1.at })
        return sim.finish()
    }

    init(_ setup: SimulationSetup, lanes: [(String, PlanSLO, Double)]) throws {
        guard setup.replicas >= 1 else { throw PlanError("replicas must be at least 1, got \(setup.replicas)") }
        let known = Dictionary(setup.lanes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var configs: [LaneConfig] = []
        for (name, _, _) in lanes {
            guard let lane = known[name] else {
                throw PlanError("lane '\(name)' is not configured; lanes: \(setup.lanes.map(\.name).joined(separator: ", "))")
            }
            configs.append(lane)
        }
        self.setup = setup
        laneConfigs = configs
        laneIndex = Dictionary(uniqueKeysWithValues: lanes.enumerated().map { ($1.0, $0) })
        origin = ContinuousClock.now
        var model = setup.model
        let slots = setup.profile.slotCount
        model.backends = (0..<setup.replicas).map { BackendConfig(url: "http://replica-\($0).sim/v1", maxInflight: slots) }
        var health = HealthCheckConfig()
        health.enabled = false
        pool = PoolStateMachine(
            config: model, health: health, outlier: OutlierConfig(), lanes: setup.lanes, origin: origin, seed: SplitMix64.mix(setup.seed))
        serviceRNG = SplitMix64(seed: SplitMix64.mix(setup.seed ^ 0x5EED_5EED))
        active = Array(repeating: [], count: setup.replicas)
        prefillFreeAt = Array(repeating: 0, count: setup.replicas)
        service = setup.profile.model
        result = SimulationResult(
            lanes: lanes.map { SimulationResult.Lane(lane: $0.0, slo: $0.1, target: $0.2) }, replicas: setup.replicas,
            slotsPerReplica: slots, span: 0, busySlotSeconds: 0, sampleTimes: [], events: 0)
    }

    static func ns(_ seconds: Double) -> Int64 { Int64((seconds * 1e9).rounded()) }
    var nowDuration: Duration { .nanoseconds(now) }

    mutating func push(_ t: Int64, _ kind: Event.Kind, _ ref: Int, generation: UInt32 = 0) {
        seq += 1
        events.insert(Event(t: t, seq: seq, ref: ref, generation: generation, kind: kind))
    }

    mutating func runLoads(_ loads: [LaneLoad]) throws {
        let end = Self.ns(setup.duration.seconds)
        windowEnd = end
        var rngs = loads.indices.map { SplitMix64(seed: SplitMix64.mix(setup.seed &+ UInt64($0) &* 0x9E37_79B9)) }
        var next = Array(repeating: Int64(0), count: loads.count)
        func draw(_ i: Int, after t: Int64) -> Int64? {
            let load = loads[i]
            guard load.rate > 0 else { return nil }
            var at = Double(t) / 1e9
            let peak = load.daily?.max() ?? 1
            while true {
                at += Schedule.gap(rate: load.rate, process: load.arrival, rng: &rngs[i])
                guard let daily = load.daily, peak > 0 else { break }
                // Thinning: keep an arrival at the peak rate with the hour's share.
                let hour = Int(at / 3600) % 24
                if Schedule.uniform(&rngs[i]) * peak <= daily[hour] { break }
            }
            let ns = Self.ns(at)
            return ns < end ? ns : nil
        }
        for i in loads.indices {
            // A constant process starts at 0; the others after a first gap.
            if let t = loads[i].arrival == .constant ? 0 : draw(i, after: 0) {
                next[i] = t
                push(t, .arrival, i)
            }
        }
        scheduleSamples(until: end)
        while !result.stoppedEarly, let e = events.popMin() {
            eventCount += 1
            now = e.t
            if e.kind == .arrival {
                lastArrival = now
                let load = loads[e.ref]
                let prompt = load.prompt.sample(&rngs[e.ref])
                let output = load.output.sample(&rngs[e.ref])
                let tenant = load.tenants <= 1 ? "t0" : "t\(rngs[e.ref].next() % UInt64(load.tenants))"
                arrive(lane: e.ref, prompt: prompt, output: output, tenant: tenant)
                if let t = draw(e.ref, after: e.t) { push(t, .arrival, e.ref) }
            } else {
                handle(e)
            }
        }
    }

    mutating func runTrace(_ trace: [TraceRequest]) {
        var i = 0
        let end = Self.ns(trace.last?.at ?? 0)
        windowEnd = end
        scheduleSamples(until: end)
        if !trace.isEmpty { push(Self.ns(trace[0].at), .arrival, 0) }
        while let e = events.popMin() {
            eventCount += 1
            now = e.t
            if e.kind == .arrival {
                lastArrival = now
                let r = trace[i]
                arrive(lane: laneIndex[r.lane]!, prompt: r.prompt, output: r.output, tenant: r.tenant)
                i += 1
                if i < trace.count { push(Self.ns(trace[i].at), .arrival, i) }
            } else {
                handle(e)
            }
        }
    }

    mutating func scheduleSamples(until end: Int64) {
        guard setup.samples > 0, end > 0 else { return }
        for s in 0..<setup.samples { push(end * Int64(s) / Int64(setup.samples), .sample, s) }
    }

    mutating func handle(_ e: Event) {
        switch e.kind {
        case .arrival: break
        case .completion:
            guard slab[e.ref].generation == e.generation, slab[e.ref].lease != nil else { return }
            if slab[e.ref].decoding { complete(e.ref) } else { firstToken(e.ref) }
        case .timer:
            guard timerAt == e.t else { return }
            timerAt = nil
            tickPool()
            settle()
        case .sample:
            result.sampleTimes.append(Double(now) / 1e9)
            for i in result.lanes.indices { result.lanes[i].queueDepth.append(pool.queued(lane: result.lanes[i].lane)) }
            if setup.stopOnceMissed, !allowedMisses.isEmpty { stopIfMissed() }
        }
    }

    /// Certain misses: shed, completed late, or still queued past the lane's TTFT or E2E SLO.
    mutating func stopIfMissed() {
        var late = Array(repeating: 0, count: result.lanes.count)
        for ref in queued.values {
            let r = slab[ref]
            let waited = Double(now - r.arrival) / 1e9
            let slo = result.lanes[r.lane].slo
            if let limit = [slo.ttft, slo.e2e].compactMap({ $0 }).min(), waited > limit { late[r.lane] += 1 }
        }
        for (i, lane) in result.lanes.enumerated() {
            let misses = lane.shedTotal + (lane.completed - lane.met) + late[i]
            if Double(misses) > allowedMisses[i] { result.stoppedEarly = true }
        }
    }

    mutating func arrive(lane: Int, prompt: Int, output: Int, tenant: String) {
        result.lanes[lane].offered += 1
        let config = laneConfigs[lane]
        let startWithin = config.startWithin(poolQueueTimeout: setup.model.queueTimeout)
        let at = origin + nowDuration
        let ticket = PoolStateMachine.Ticket(
            lane: config.name, tenant: tenant, inputTokens: prompt, maxOutputTokens: output, startBy: at + startWithin,
            giveUpAt: at + setup.totalTimeout)
        var request = Request(lane: lane, arrival: now, prompt: prompt, output: output, ticket: ticket)
        let ref: Int
        if let reused = free.popLast() {
            request.generation = slab[reused].generation &+ 1
            slab[reused] = request
            ref = reused
        } else {
            slab.append(request)
            ref = slab.count - 1
        }
        submit(ref)
    }

    /// Hands the request (new or preempted) to the pool.
    mutating func submit(_ ref: Int) {
        switch pool.arrive(slab[ref].ticket, now: nowDuration) {
        case .done(.success(let lease)): start(ref, lease)
        case .done(.failure(let error)): refuse(ref, error)
        case .queued(let id): queued[id] = ref
        }
        settle()
    }

    /// A request starts on its replica: its prefill takes TTFT at the replica's count then (after
    /// the prompts ahead of it when prefill is serial); its decode is processor-shared, each token
    /// taking TPOT at however many requests the replica runs at the time, so a request slows down
    /// as others join and speeds up as they leave.
    mutating func start(_ ref: Int, _ lease: PoolStateMachine.Lease) {
        let i = lease.index
        advance(replica: i)
        active[i].append(ref)
        let k = active[i].count
        var ttft = service.ttft(prompt: slab[ref].prompt, inflight: k) * service.ttftSpread.sample(&serviceRNG)
        if service.serialPrefill {
            let begin = max(now, prefillFreeAt[i])
            prefillFreeAt[i] = begin + Self.ns(ttft)
            ttft = Double(prefillFreeAt[i] - now) / 1e9
        }
        slab[ref].lease = lease
        slab[ref].replica = i
        slab[ref].started = now
        slab[ref].ttft = ttft
        slab[ref].decoding = false
        slab[ref].tokensLeft = Double(max(0, slab[ref].output - 1))
        slab[ref].tokenScale = service.tpotSpread.sample(&serviceRNG)
        if let signal = lease.preemption { preemptible[ObjectIdentifier(signal)] = ref }
        push(now + Self.ns(ttft), .completion, ref, generation: slab[ref].generation)
        reschedule(replica: i)
    }

    /// Brings the decoding requests of a replica up to now, at the count they ran at. With serial
    /// prefill they made no progress while the replica prefilled: whether it did holds from their
    /// last update until now (prefill starts and ends are events that call this).
    mutating func advance(replica i: Int) {
        let step = service.tpot(inflight: active[i].count)
        let stalled = service.serialPrefill && prefillFreeAt[i] >= now
        for ref in active[i] where slab[ref].decoding {
            let elapsed = stalled ? 0 : Double(now - slab[ref].lastUpdate) / 1e9
            if step > 0 { slab[ref].tokensLeft = max(0, slab[ref].tokensLeft - elapsed / (step * slab[ref].tokenScale)) }
            slab[ref].lastUpdate = now
        }
    }

    /// New finish times for a replica's decoding requests at its count now.
    mutating func reschedule(replica i: Int) {
        let step = service.tpot(inflight: active[i].count)
        let resume = decodeResumes(replica: i)
        for ref in active[i] where slab[ref].decoding {
            slab[ref].generation &+= 1
            push(resume + Self.ns(slab[ref].tokensLeft * step * slab[ref].tokenScale), .completion, ref, generation: slab[ref].generation)
        }
    }

    /// When a replica's decoding goes on: now, or with serial prefill once the prompts it is
    /// prefilling are done (llama.cpp runs a prompt's batch before the next decode step).
    func decodeResumes(replica i: Int) -> Int64 { service.serialPrefill ? max(now, prefillFreeAt[i]) : now }

    /// Its first token: the decode starts (or it is done: one output token).
    mutating func firstToken(_ ref: Int) {
        if slab[ref].tokensLeft == 0 { return complete(ref) }
        let i = slab[ref].replica
        advance(replica: i)
        slab[ref].decoding = true
        slab[ref].decodeStart = now
        slab[ref].lastUpdate = now
        let step = service.tpot(inflight: active[i].count)
        slab[ref].generation &+= 1
        push(
            decodeResumes(replica: i) + Self.ns(slab[ref].tokensLeft * step * slab[ref].tokenScale), .completion, ref,
            generation: slab[ref].generation)
    }

    /// Leaves its replica (finished or preempted); the others decode at the new count.
    mutating func leave(_ ref: Int) {
        let i = slab[ref].replica
        advance(replica: i)
        if let at = active[i].firstIndex(of: ref) { active[i].remove(at: at) }
        reschedule(replica: i)
    }

    mutating func complete(_ ref: Int) {
        leave(ref)
        if slab[ref].output > 1 { slab[ref].tpot = Double(now - slab[ref].decodeStart) / 1e9 / Double(slab[ref].output - 1) }
        // Its fields one by one: a copy of the request would retain its ticket.
        guard let lease = slab[ref].lease else { return }
        slab[ref].lease = nil
        if let signal = lease.preemption {
            signal.commit()
            preemptible[ObjectIdentifier(signal)] = nil
        }
        let (prompt, output, started, serverTTFT, tpot) = (slab[ref].prompt, slab[ref].output, slab[ref].started, slab[ref].ttft, slab[ref].tpot)
        let wait = Double(started - slab[ref].arrival) / 1e9
        let ttft = wait + serverTTFT
        let e2e = Double(now - slab[ref].arrival) / 1e9
        // In place: a copy of the lane would copy its histograms on every completion.
        Self.record(into: &result.lanes[slab[ref].lane], wait: wait, ttft: ttft, e2e: e2e, output: output, tpot: tpot)
        held(since: started)
        lastCompletion = max(lastCompletion, now)
        pool.observe(lease, ttft: .seconds(serverTTFT), tpot: .seconds(tpot), promptTokens: prompt)
        _ = pool.release(lease, outcome: .success, usage: .init(promptTokens: prompt, completionTokens: output), now: nowDuration)
        slab[ref].generation &+= 1
        free.append(ref)
        settle()
    }

    static func record(into lane: inout SimulationResult.Lane, wait: Double, ttft: Double, e2e: Double, output: Int, tpot: Double) {
        lane.completed += 1
        lane.outputTokens += output
        lane.queueWaitSum += wait
        lane.ttft.add(ttft)
        lane.e2e.add(e2e)
        if output > 1 { lane.tpot.add(tpot) }
        let slo = lane.slo
        if (slo.ttft.map { ttft <= $0 } ?? true) && (slo.tpot.map { output <= 1 || tpot <= $0 } ?? true) && (slo.e2e.map { e2e <= $0 } ?? true) {
            lane.met += 1
        }
    }

    /// A request held its slot from `started` until now.
    mutating func held(since started: Int64) {
        busy += Double(now - started) / 1e9
        busyInWindow += Double(max(0, min(now, windowEnd) - started)) / 1e9
    }

    mutating func refuse(_ ref: Int, _ error: PoolStateMachine.AcquireError) {
        let reason: String
        switch error {
        case .rejected(_, let why): reason = why
        case .queueTimeout: reason = "queue_timeout"
        case .noReplica: reason = "no_replica"
        case .cancelled: reason = "cancelled"
        case .shuttingDown: reason = "shutting_down"
        }
        result.lanes[slab[ref].lane].shed[reason, default: 0] += 1
        slab[ref].generation &+= 1
        free.append(ref)
    }

    /// Carries out the pool's effects until there are none: leases to start, refusals,
    /// preemptions (the victim stops and goes back first in its queue), the timer.
    mutating func settle() {
        while true {
            let effects = pool.takeEffects()
            if effects.decided.isEmpty && effects.preempt.isEmpty && !effects.wake { return }
            for (id, outcome) in effects.decided {
                guard let ref = queued.removeValue(forKey: id) else { continue }
                switch outcome {
                case .success(let lease): start(ref, lease)
                case .failure(let error): refuse(ref, error)
                }
            }
            for (_, signal) in effects.preempt {
                let key = ObjectIdentifier(signal)
                guard signal.fire(), let victim = preemptible.removeValue(forKey: key), let lease = slab[victim].lease else {
                    continue
                }
                held(since: slab[victim].started)
                leave(victim)
                slab[victim].lease = nil
                slab[victim].generation &+= 1
                result.lanes[slab[victim].lane].preempted += 1
                _ = pool.release(lease, outcome: .neutral, preempted: true, now: nowDuration)
                slab[victim].ticket.requeue = true
                slab[victim].ticket.preemptions += 1
                switch pool.arrive(slab[victim].ticket, now: nowDuration) {
                case .done(.success(let lease)): start(victim, lease)
                case .done(.failure(let error)): refuse(victim, error)
                case .queued(let id): queued[id] = victim
                }
            }
            if effects.wake { tickPool() }
        }
    }

    /// The pool's timer: its work now, then the next time it has work.
    mutating func tickPool() {
        let report = pool.tick(now: nowDuration)
        if let next = report.next {
            let t = max(now, next.nanoseconds)
            if timerAt.map({ t < $0 }) ?? true {
                timerAt = t
                push(t, .timer, 0)
            }
        }
    }

    mutating func finish() -> SimulationResult {
        // From zero to the last arrival or completion (a stray timer after both does not count).
        result.span = Double(max(lastCompletion, lastArrival)) / 1e9
        result.busySlotSeconds = busy
        result.busyInWindow = busyInWindow
        result.window = Double(result.stoppedEarly ? min(now, windowEnd) : windowEnd) / 1e9
        result.events = eventCount
        return result
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
