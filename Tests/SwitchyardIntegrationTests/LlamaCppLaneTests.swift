import AsyncHTTPClient
import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardGateway

/// Lanes and tenants in front of the real llama.cpp server (4 slots): queue order is observed on
/// the gateway's own queues, so the checks do not depend on how fast the CPU generates.
@Suite(.serialized, .tags(.timing)) struct LlamaCppLaneTests {
    func config(_ url: String, tweak: (inout GatewayConfig) -> Void = { _ in }) -> GatewayConfig {
        var model = ModelConfig(name: "smollm2", backends: [BackendConfig(url: url, maxInflight: 4)])
        model.memoryHeadroom = MemoryHeadroomConfig()
        model.adaptiveConcurrency.enabled = true
        model.adaptiveConcurrency.interval = .milliseconds(500)
        // A slow machine must not turn the queue order under test into queue timeouts.
        model.queueTimeout = .seconds(120)
        return GatewayHarness.config(models: [model]) {
            GatewayHarness.batchMayFillTheEngine(&$0)
            tweak(&$0)
        }
    }

    static func chat(_ text: String, maxTokens: Int) -> String {
        #"{"model":"smollm2","messages":[{"role":"user","content":"\#(text)"}],"max_tokens":\#(maxTokens)}"#
    }

    static func send(_ base: String, _ body: String, headers: [String: String]) -> Task<TestClient.Reply, any Error> {
        Task { try await TestClient.post("\(base)/v1/chat/completions", body, headers: headers, client: TestClient.wide, timeout: .seconds(120)) }
    }

    @Test func realtimeIsServedAheadOfABatchFlood() async throws {
        let url = try await LlamaServer.shared.url()
        try await GatewayHarness.with(config(url)) { gateway, base in
            let pool = try #require(gateway.pools["smollm2"])
            var batch: [Task<TestClient.Reply, any Error>] = []
            for i in 0..<12 {
                batch.append(
                    Self.send(base, Self.chat("Write a long story about robot number \(i).", maxTokens: 48), headers: ["x-switchyard-lane": "batch"]))
            }
            #expect(await Poll.until(.seconds(30)) { pool.queued(lane: "batch") >= 6 }, "4 slots busy, the rest queued")
            let realtime = Self.send(base, Self.chat("Say hi.", maxTokens: 8), headers: [:])
            #expect(await Poll.until(.seconds(30)) { pool.queued(lane: "realtime") == 1 })
            #expect(await Poll.until(.seconds(60)) { pool.queued(lane: "realtime") == 0 })
            let batchStillQueued = pool.queued(lane: "batch")
            #expect(batchStillQueued > 0, "the realtime request left the queue while batch work queued before it still waited")
            #expect(try await realtime.value.status == 200)
            for task in batch { #expect(try await task.value.status == 200) }

            // The engine's own signals were read from llama.cpp's /metrics.
            let ready = try await TestClient.get("\(base)/readyz")
            let backend = try #require(ready.json?["models"]?["smollm2"]?["backends"]?.arrayValue?.first)
            #expect(backend["engine"]?["running"] != nil, "scraped llamacpp:requests_processing: \(ready.body)")
            #expect((backend["window"]?.intValue ?? 0) >= 1)
            let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
            #expect(metrics.contains(#"switchyard_backend_window{backend="\#(url)"}"#))
            // 12, or one more if a slow machine let the realtime request wait long enough to preempt.
            let waits = metrics.split(separator: "\n").first { $0.hasPrefix(#"switchyard_queue_wait_seconds_count{lane="batch"}"#) }
            #expect((waits?.split(separator: " ").last.flatMap { Int($0) } ?? 0) >= 12)
        }
    }

    /// No configuration but the upstream URL, as `serve --upstream smollm2=URL` gives: the slot
    /// count comes from llama.cpp's `/props`, and the lanes order the excess.
    @Test func withOnlyAnUpstreamTheSlotsAreDiscoveredAndRealtimeOvertakesBatch() async throws {
        let url = try await LlamaServer.shared.url()
        let config = GatewayHarness.config(
            models: [try ConfigLoader.parseUpstreamFlag("smollm2=\(url)")], tweak: GatewayHarness.batchMayFillTheEngine)
        #expect(config.models[0].backends[0].maxInflight == nil)
        try await GatewayHarness.with(config) { gateway, base in
            let pool = try #require(gateway.pools["smollm2"])
            #expect(await Poll.until(.seconds(10)) { pool.capacity(0)?.source == .props })
            #expect(pool.capacity(0)?.limit == 4, "llama_server.py runs --parallel 4")
            var batch: [Task<TestClient.Reply, any Error>] = []
            for i in 0..<10 {
                batch.append(
                    Self.send(
                        base, Self.chat("Write a long story about lighthouse number \(i).", maxTokens: 48), headers: ["x-switchyard-lane": "batch"]))
            }
            #expect(
                await Poll.until(.seconds(30)) { pool.queued(lane: "batch") >= 4 && pool.snapshot().first?.inflight == 4 },
                "4 slots busy, the rest wait in the batch lane")
            let realtime = Self.send(base, Self.chat("Say hi.", maxTokens: 8), headers: [:])
            #expect(await Poll.until(.seconds(30)) { pool.queued(lane: "realtime") == 1 })
            #expect(await Poll.until(.seconds(60)) { pool.queued(lane: "realtime") == 0 })
            #expect(pool.queued(lane: "batch") > 0, "the realtime request left the queue while batch work queued before it still waited")
            #expect(try await realtime.value.status == 200)
            for task in batch { #expect(try await task.value.status == 200) }
            #expect(pool.snapshot().allSatisfy { $0.inflight <= 4 })
        }
    }

    @Test func batchIsPreemptedForARealtimeDeadlineAndNothingIsLost() async throws {
        let url = try await LlamaServer.shared.url()
        let config = config(url) { c in
            c.lanes[c.lanes.firstIndex { $0.name == "realtime" }!].slo.ttft = .milliseconds(800)
        }
        try await GatewayHarness.with(config) { gateway, base in
            let pool = try #require(gateway.pools["smollm2"])
            var batch: [Task<TestClient.Reply, any Error>] = []
            for i in 0..<5 {
                // Long generations: no slot frees by itself within the realtime deadline.
                batch.append(
                    Self.send(
                        base, Self.chat("Write a very long essay about the history of bridge number \(i).", maxTokens: 160),
                        headers: ["x-switchyard-lane": "batch"]))
            }
            #expect(await Poll.until(.seconds(30)) { pool.queued(lane: "batch") == 1 && pool.snapshot().first?.inflight == 4 })
            let realtime = try await TestClient.post(
                "\(base)/v1/chat/completions", Self.chat("Say hi.", maxTokens: 4), client: TestClient.wide, timeout: .seconds(60))
            #expect(realtime.status == 200)
            var preempted = 0
            for task in batch {
                let reply = try await task.value
                #expect(reply.status == 200, "a preempted request is retried, never lost")
                preempted += Int(reply.headers["x-switchyard-preemptions"] ?? "0") ?? 0
            }
            #expect(preempted == 1)
            let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
            #expect(metrics.contains(#"switchyard_preemptions_total{lane="batch"} 1"#))
        }
    }

    @Test func aTenantFloodingRealtimeCannotStarveAnother() async throws {
        let url = try await LlamaServer.shared.url()
        let config = config(url) { c in
            c.tenants = [
                TenantConfig(name: "flood", apiKeySHA256: Digest.sha256Hex("flood-key")),
                TenantConfig(name: "calm", apiKeySHA256: Digest.sha256Hex("calm-key")),
            ]
        }
        try await GatewayHarness.with(config) { gateway, base in
            let pool = try #require(gateway.pools["smollm2"])
            let floodDone = Counter()
            var flood: [Task<TestClient.Reply, any Error>] = []
            for i in 0..<16 {
                flood.append(
                    Task {
                        defer { floodDone.add() }
                        return try await TestClient.post(
                            "\(base)/v1/chat/completions", Self.chat("Tell me about city number \(i).", maxTokens: 32),
                            headers: ["authorization": "Bearer flood-key"], client: TestClient.wide, timeout: .seconds(120))
                    })
            }
            #expect(await Poll.until(.seconds(30)) { pool.queued(lane: "realtime") >= 8 })
            for _ in 0..<2 {
                let calm = try await TestClient.post(
                    "\(base)/v1/chat/completions", Self.chat("Say hi.", maxTokens: 8),
                    headers: ["authorization": "Bearer calm-key"], client: TestClient.wide, timeout: .seconds(120))
                #expect(calm.status == 200)
            }
            let doneWhenCalmFinished = floodDone.value
            #expect(doneWhenCalmFinished < 16, "the calm tenant finished while the flood still ran (flood done: \(doneWhenCalmFinished))")
            for task in flood { #expect(try await task.value.status == 200) }
            let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
            #expect(metrics.contains(#"switchyard_tenant_tokens_total{tenant="calm",kind="output"}"#))
        }
    }
}

final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
