import SwitchyardCore
import Testing

@testable import SwitchyardScheduling

/// Engine info endpoints and the learned window, without I/O: time is a number passed in.
struct CapacityTests {
    // MARK: Info endpoints

    @Test func llamaCppPropsGiveSlotsAndContext() throws {
        let body = #"{"default_generation_settings":{"n_ctx":1024,"temperature":0.8},"total_slots":4,"model_path":"x.gguf"}"#
        #expect(try EngineCapacity.parse(Array(body.utf8), source: .props).get() == EngineCapacity(slots: 4, tokens: 4096, source: .props))
    }

    @Test func sglangServerInfoReadsTheSettledValueWhenTheArgumentIsAutomatic() throws {
        let auto = #"{"max_running_requests":null,"internal_states":[{"max_running_requests":48,"max_total_num_tokens":65536}]}"#
        #expect(
            try EngineCapacity.parse(Array(auto.utf8), source: .serverInfo).get() == EngineCapacity(slots: 48, tokens: 65536, source: .serverInfo))
        let set = #"{"max_running_requests":16,"max_total_num_tokens":8192}"#
        #expect(try EngineCapacity.parse(Array(set.utf8), source: .serverInfo).get() == EngineCapacity(slots: 16, tokens: 8192, source: .serverInfo))
        let unset = #"{"max_running_requests":null}"#
        #expect(throws: EngineCapacity.Unusable.self) { try EngineCapacity.parse(Array(unset.utf8), source: .serverInfo).get() }
    }

    @Test func tgiInfoGivesConcurrentRequestsAndBatchTokens() throws {
        let body = #"{"model_id":"m","max_concurrent_requests":128,"max_total_tokens":2048,"max_batch_total_tokens":16000}"#
        #expect(try EngineCapacity.parse(Array(body.utf8), source: .info).get() == EngineCapacity(slots: 128, tokens: 16000, source: .info))
    }

    @Test(arguments: [
        ("<html>", "not JSON"), ("[1]", "not a JSON object"), (#"{"total_slots":0}"#, "total_slots is 0"),
        (#"{"total_slots":-2}"#, "total_slots is -2"), (#"{"total_slots":"four"}"#, "not a whole number"), ("{}", "no total_slots"),
    ])
    func oddPropsAreUnusableWithAReason(body: String, reason: String) {
        guard case .failure(let unusable) = EngineCapacity.parse(Array(body.utf8), source: .props) else {
            Issue.record("\(body) was accepted")
            return
        }
        #expect(unusable.reason.contains(reason), "\(unusable.reason)")
    }

    // MARK: Learned window

    /// A closed loop against a simulated engine that runs `capacity` requests and queues the
    /// rest, with more demand than it can take: every `step` the gateway fills its window, the
    /// engine's metrics are scraped, and the scheduler ticks.
    static func simulate(
        capacity: Int, demand: Int, seconds: Int, step: Duration = .milliseconds(500),
        settings: LearnedWindow.Settings = .init()
    ) -> (window: LearnedWindow, trace: [Int]) {
        var window = LearnedWindow(settings: settings, now: .zero)
        var now = Duration.zero
        var trace: [Int] = []
        var peak = 0
        while now < .seconds(seconds) {
            let inflight = min(demand, window.window)
            peak = max(peak, inflight)
            window.observeEngine(running: Double(min(inflight, capacity)), waiting: Double(max(0, inflight - capacity)), inflight: inflight, now: now)
            now += step
            let wasFull = peak >= window.window
            if window.growthDue(now: now) { peak = 0 }
            window.tick(now: now, saturated: wasFull, latencyHolds: true)
            trace.append(window.window)
        }
        return (window, trace)
    }

    @Test func anEngineThatQueuesAboveThreeSettlesTheWindowAtThree() {
        let (window, trace) = Self.simulate(capacity: 3, demand: 20, seconds: 120)
        #expect(window.ceiling == 3)
        #expect(trace.prefix(4).last == 3, "from 4 to 3 after two scrapes that saw a request waiting: \(trace.prefix(8))")
        // Later it only ever tries one more, briefly, and the tries get rarer (30 s, then 60 s).
        let late = trace.dropFirst(4)
        #expect(late.allSatisfy { $0 == 3 || $0 == 4 }, "\(late)")
        #expect(Double(late.filter { $0 == 3 }.count) / Double(late.count) > 0.9)
        #expect(late.filter { $0 == 4 }.count <= 6, "two short probes in two minutes: \(late)")
    }

    @Test func slowStartFindsALargerCapacityAndHolds() {
        let (window, trace) = Self.simulate(capacity: 11, demand: 100, seconds: 20)
        #expect(trace.contains(16), "doubled 4 → 8 → 16 before the engine queued: \(trace)")
        #expect(window.window == 11 && window.ceiling == 11)
    }

    @Test func withoutDemandTheWindowDoesNotGrow() {
        let (window, _) = Self.simulate(capacity: 64, demand: 2, seconds: 30)
        #expect(window.window == 4, "never full, so no evidence to grow on")
    }

    @Test func oneWaitingScrapeIsNotEnough() {
        var window = LearnedWindow(now: .zero)
        #expect(window.observeEngine(running: 3, waiting: 1, inflight: 4, now: .milliseconds(500)) == nil)
        #expect(window.observeEngine(running: 4, waiting: 0, inflight: 4, now: .seconds(1)) == nil)
        #expect(window.observeEngine(running: 3, waiting: 1, inflight: 4, now: .milliseconds(1500)) == nil)
        #expect(window.window == 4)
        #expect(
            window.observeEngine(running: 3, waiting: 1, inflight: 4, now: .seconds(2))
                == .shrank(from: 4, to: 3, reason: "engine queued 1 with 3 running"))
    }

    @Test func latencyThatDoesNotHoldStopsGrowth() {
        var window = LearnedWindow(now: .zero)
        #expect(window.tick(now: .seconds(1), saturated: true, latencyHolds: false) == nil)
        #expect(window.tick(now: .seconds(2), saturated: true, latencyHolds: true) == .grew(from: 4, to: 8))
    }

    @Test func connectTimeoutsUnderLoadHalveTheWindowOncePerStep() {
        var window = LearnedWindow(settings: .init(initial: 256, max: 256), now: .zero)
        #expect(window.connectTimedOut(inflight: 200, now: .seconds(5)) == .shrank(from: 256, to: 100, reason: "connect timeout with 200 in flight"))
        #expect(window.connectTimedOut(inflight: 100, now: .seconds(5) + .milliseconds(10)) == nil, "the same storm")
        #expect(window.window == 100)
        #expect(window.connectTimedOut(inflight: 100, now: .seconds(7)) == .shrank(from: 100, to: 50, reason: "connect timeout with 100 in flight"))
        // Recovery: at the ceiling it waits before probing above it.
        #expect(window.tick(now: .seconds(8), saturated: true, latencyHolds: true) == nil)
        #expect(window.tick(now: .seconds(38), saturated: true, latencyHolds: true) == .grew(from: 50, to: 51))
    }
}
