import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// Lanes in front of a pool with one slot (`max_inflight: 1`), against the in-process upstream:
/// requests carry `"hold": true` to keep the slot until the test releases them.
@Suite(.serialized, .tags(.timing)) struct LaneTests {
    static func config(port: Int, tweak: (inout GatewayConfig) -> Void = { _ in }) -> GatewayConfig {
        var model = GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])
        model.backends[0].maxInflight = 1
        return GatewayHarness.config(models: [model], tweak: tweak)
    }

    static func body(_ tag: String, hold: Bool = false, stream: Bool = false) -> String {
        TestClient.chat(stream: stream, extra: #","tag":"\#(tag)","hold":\#(hold),"max_tokens":4"#)
    }

    /// Starts a request in the background; its reply comes from the returned task.
    static func send(
        _ base: String, _ tag: String, lane: String? = nil, hold: Bool = false, headers: [String: String] = [:]
    ) -> Task<TestClient.Reply, any Error> {
        var headers = headers
        if let lane { headers["x-switchyard-lane"] = lane }
        return Task { try await TestClient.post("\(base)/v1/chat/completions", body(tag, hold: hold), headers: headers) }
    }

    @Test func realtimeIsServedAheadOfQueuedBatchWork() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            try await GatewayHarness.with(Self.config(port: port)) { gateway, base in
                let pool = try #require(gateway.pools["m"])
                let first = Self.send(base, "b0", lane: "batch", hold: true)
                #expect(await Poll.until { upstream.arrivals == ["b0"] })
                var queued: [Task<TestClient.Reply, any Error>] = []
                for i in 1...3 {
                    queued.append(Self.send(base, "b\(i)", lane: "batch"))
                    #expect(await Poll.until { pool.queued(lane: "batch") == i })
                }
                let realtime = Self.send(base, "r")
                #expect(await Poll.until { pool.queued(lane: "realtime") == 1 })
                upstream.release()
                #expect(try await realtime.value.status == 200)
                #expect(try await realtime.value.headers["x-switchyard-lane"] == "realtime")
                for task in queued { #expect(try await task.value.status == 200) }
                #expect(try await first.value.status == 200)
                #expect(upstream.arrivals == ["b0", "r", "b1", "b2", "b3"], "realtime first, then batch in arrival order")
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"switchyard_queue_wait_seconds_count{lane="batch"} 4"#))
            }
        }
    }

    @Test func fullQueueAnswers429WithRetryAfter() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = Self.config(port: port) { c in
                let i = c.lanes.firstIndex { $0.name == "batch" }!
                c.lanes[i].queue.maxSize = 2
            }
            try await GatewayHarness.with(config) { gateway, base in
                let pool = try #require(gateway.pools["m"])
                let first = Self.send(base, "b0", lane: "batch", hold: true)
                #expect(await Poll.until { upstream.arrivals.count == 1 })
                let waiting = [Self.send(base, "b1", lane: "batch"), Self.send(base, "b2", lane: "batch")]
                #expect(await Poll.until { pool.queued(lane: "batch") == 2 })
                let refused = try await Self.send(base, "b3", lane: "batch").value
                #expect(refused.status == 429)
                #expect(refused.headers["retry-after"] == "1")
                #expect(refused.json?["error"]?["code"] == .string("queue_full"))
                // Other lanes keep their own queues.
                let other = Self.send(base, "r")
                #expect(await Poll.until { pool.queued(lane: "realtime") == 1 })
                upstream.release()
                #expect(try await other.value.status == 200)
                for task in waiting + [first] { #expect(try await task.value.status == 200) }
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"switchyard_shed_total{lane="batch",reason="queue_full"} 1"#))
            }
        }
    }

    @Test func timeoutActionRejectOrDelay() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = Self.config(port: port) { c in
                for i in c.lanes.indices { c.lanes[i].queue.timeout = .milliseconds(100) }
                c.lanes[c.lanes.firstIndex { $0.name == "realtime" }!].slo.ttft = .milliseconds(100)
                // No preemption here: only the timeout actions are under test.
                c.lanes[c.lanes.firstIndex { $0.name == "batch" }!].preemptible = false
            }
            try await GatewayHarness.with(config) { gateway, base in
                let pool = try #require(gateway.pools["m"])
                let first = Self.send(base, "hold", lane: "batch", hold: true)
                #expect(await Poll.until { upstream.arrivals.count == 1 })
                let delayed = Self.send(base, "delayed", lane: "batch")
                let rejected = try await Self.send(base, "rejected").value
                #expect(rejected.status == 503)
                #expect(rejected.json?["error"]?["code"] == .string("queue_timeout"))
                #expect(rejected.headers["retry-after"] != nil)
                // The batch request is past its timeout too, but waits on (delay), never dropped.
                #expect(pool.queued(lane: "batch") == 1)
                upstream.release()
                #expect(try await delayed.value.status == 200)
                #expect(try await first.value.status == 200)
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"switchyard_shed_total{lane="realtime",reason="queue_timeout"} 1"#))
                #expect(metrics.contains(#"switchyard_slo_total{lane="realtime",slo="ttft",result="missed"} 1"#))
            }
        }
    }

    @Test func clientTimeoutHeaderOnlyShortens() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            try await GatewayHarness.with(Self.config(port: port)) { gateway, base in
                let first = Self.send(base, "hold", hold: true)
                #expect(await Poll.until { upstream.arrivals.count == 1 })
                let start = ContinuousClock.now
                let short = try await Self.send(base, "short", headers: ["x-switchyard-timeout-ms": "150"]).value
                #expect(short.status == 503)
                #expect(ContinuousClock.now - start < .seconds(5), "gave up at the client's deadline, not the 30 s queue timeout")
                let bad = try await Self.send(base, "bad", headers: ["x-switchyard-timeout-ms": "soon"]).value
                #expect(bad.status == 400)
                #expect(bad.json?["error"]?["param"] == .string("x-switchyard-timeout-ms"))
                let unknown = try await Self.send(base, "unknown", lane: "bulk").value
                #expect(unknown.status == 400)
                #expect(unknown.json?["error"]?["param"] == .string("x-switchyard-lane"))
                #expect(unknown.json?["error"]?["message"]?.stringValue?.contains("realtime, streaming, batch") == true)
                upstream.release()
                #expect(try await first.value.status == 200)
            }
        }
    }

    @Test func batchIsPreemptedForARealtimeDeadlineAndRequeued() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = Self.config(port: port) { c in
                c.lanes[c.lanes.firstIndex { $0.name == "realtime" }!].slo.ttft = .milliseconds(300)
            }
            try await GatewayHarness.with(config) { gateway, base in
                let batch = Self.send(base, "batch", lane: "batch", hold: true)
                #expect(await Poll.until { upstream.arrivals == ["batch"] })
                let realtime = try await Self.send(base, "realtime").value
                #expect(realtime.status == 200, "the slot was taken back from the batch request in time")
                #expect(await Poll.until { upstream.arrivals == ["batch", "realtime", "batch"] }, "\(upstream.arrivals)")
                upstream.release()
                let done = try await batch.value
                #expect(done.status == 200, "preempted work is retried, never lost")
                #expect(done.headers["x-switchyard-preemptions"] == "1")
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"switchyard_preemptions_total{lane="batch"} 1"#))
                #expect(metrics.contains(#"switchyard_slo_total{lane="realtime",slo="ttft",result="met"} 1"#))
            }
        }
    }

    @Test func aFloodingTenantCannotStarveAnother() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = Self.config(port: port) { c in
                c.tenants = [
                    TenantConfig(name: "flood", apiKeySHA256: Digest.sha256Hex("key-flood")),
                    TenantConfig(name: "calm", apiKeySHA256: Digest.sha256Hex("key-calm")),
                ]
            }
            try await GatewayHarness.with(config) { gateway, base in
                let pool = try #require(gateway.pools["m"])
                let flood = ["authorization": "Bearer key-flood"]
                let first = Self.send(base, "f0", hold: true, headers: flood)
                #expect(await Poll.until { upstream.arrivals.count == 1 })
                var tasks: [Task<TestClient.Reply, any Error>] = []
                // The test client keeps at most 8 connections per host: 7 in the air.
                for i in 1...5 {
                    tasks.append(Self.send(base, "f\(i)", headers: flood))
                    #expect(await Poll.until { pool.queued(lane: "realtime") == i })
                }
                tasks.append(Self.send(base, "calm", headers: ["authorization": "Bearer key-calm"]))
                #expect(await Poll.until { pool.queued(lane: "realtime") == 6 })
                upstream.release()
                for task in tasks + [first] { #expect(try await task.value.status == 200) }
                let position = try #require(upstream.arrivals.firstIndex(of: "calm"))
                #expect(position <= 2, "the calm tenant is served next to the flood, not behind it: \(upstream.arrivals)")
            }
        }
    }
    @Test func noDispatchWithoutKVCacheHeadroom() async throws {
        let upstream = TestUpstream()
        upstream.kvCacheUsage.withLock { $0 = 0.95 }
        try await upstream.run { port in
            var model = GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])
            model.backends[0].maxInflight = 4
            var headroom = MemoryHeadroomConfig()
            headroom.kvCacheMax = 0.8
            headroom.scrapeInterval = .milliseconds(20)
            model.memoryHeadroom = headroom
            try await GatewayHarness.with(GatewayHarness.config(models: [model])) { gateway, base in
                let pool = try #require(gateway.pools["m"])
                #expect(await Poll.until { pool.snapshot().first?.engine?.kvCacheUsage == 0.95 }, "the engine's /metrics were read")
                let first = Self.send(base, "first", hold: true)
                #expect(await Poll.until { upstream.arrivals == ["first"] }, "an idle replica always takes one request")
                let second = Self.send(base, "second")
                #expect(await Poll.until { pool.queued(lane: "realtime") == 1 }, "a free slot, but no KV-cache room: it waits")
                upstream.kvCacheUsage.withLock { $0 = 0.3 }
                #expect(try await second.value.status == 200, "dispatched once the engine reports room")
                upstream.release()
                #expect(try await first.value.status == 200)
            }
        }
    }

    @Test func adaptiveWindowShrinksOnBackendOverload() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            var model = GatewayHarness.model("m", ["http://127.0.0.1:\(port)/status429/v1"])
            model.backends[0].maxInflight = 4
            model.adaptiveConcurrency.enabled = true
            model.adaptiveConcurrency.interval = .milliseconds(20)
            let config = GatewayHarness.config(models: [model]) { $0.retry.maxRetryAfter = .zero }
            try await GatewayHarness.with(config) { gateway, base in
                let pool = try #require(gateway.pools["m"])
                #expect(pool.snapshot().first?.window == 4, "starts at the slot count")
                let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                #expect(reply.status == 429)
                #expect(await Poll.until { (pool.snapshot().first?.window ?? 4) < 4 }, "×0.9 after a 429 from the backend")
                #expect(await Poll.until { String(decoding: gateway.metrics.render(), as: UTF8.self).contains("switchyard_backend_window{backend=") })
            }
        }
    }
}
