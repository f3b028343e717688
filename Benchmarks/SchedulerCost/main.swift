// Scheduler cost: enqueue+dispatch decisions per second on one core with 1,000 tenants.
// Built only with SWITCHYARD_BENCHMARKS=1 (see bench/scheduler-cost.sh).
import SwitchyardScheduling

let tenants = 1000
let decisions = 2_000_000
var scheduler = LaneScheduler(lanes: [
    .init(name: "realtime", band: 0, maxQueueSize: 1_000_000),
    .init(name: "streaming", band: 1, maxQueueSize: 1_000_000),
    .init(name: "batch", band: 2, minShare: 0.1, maxQueueSize: 1_000_000, timeoutAction: .delay),
])
let names = (0..<tenants).map { "tenant-\($0)" }
let lanes = ["realtime", "streaming", "batch"]
// Keep ~4 requests per tenant backlogged, then alternate one enqueue and one dispatch.
var id: UInt64 = 0
for t in 0..<tenants {
    for k in 0..<4 {
        id += 1
        _ = scheduler.enqueue(.init(id: id, lane: lanes[(t + k) % 3], tenant: names[t], inputTokens: 100 + t % 50, maxOutputTokens: 64), now: .zero)
    }
}
let clock = ContinuousClock()
let start = clock.now
var dispatched = 0
for i in 0..<(decisions / 2) {
    id += 1
    _ = scheduler.enqueue(.init(id: id, lane: lanes[i % 3], tenant: names[i % tenants], inputTokens: 128, maxOutputTokens: 64), now: .zero)
    if scheduler.dispatch(now: .zero) != nil { dispatched += 1 }
}
let elapsed = clock.now - start
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
print("tenants: \(tenants), decisions (enqueue+dispatch): \(decisions), dispatched: \(dispatched)")
print("elapsed: \(String(format: "%.3f", seconds)) s -> \(Int(Double(decisions) / seconds)) decisions/s (target >= 1,000,000)")
