import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

@Suite(.serialized, .tags(.timing)) struct CoalescingTests {
    static func config(port: Int, delay: Duration, behaviour: String = "ok") -> GatewayConfig {
        var model = GatewayHarness.model("e", ["http://127.0.0.1:\(port)/\(behaviour)/v1"])
        model.batching.maxBatchSize = 4
        model.batching.maxQueueDelay = delay
        return GatewayHarness.config(models: [model])
    }

    static func embed(_ base: String, _ input: String) async throws -> TestClient.Reply {
        try await TestClient.post("\(base)/v1/embeddings", #"{"model":"e","input":"\#(input)"}"#)
    }

    @Test func singleInputsAreMergedAndSplitBackInOrder() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            // A long delay: only a full batch can go before it.
            try await GatewayHarness.with(Self.config(port: port, delay: .seconds(1))) { gateway, base in
                let inputs = ["a", "bb", "ccc", "dddd"]
                let replies = try await withThrowingTaskGroup(of: (String, TestClient.Reply).self) { group in
                    for input in inputs { group.addTask { (input, try await Self.embed(base, input)) } }
                    return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
                }
                #expect(upstream.embeddingBatches.withLock { $0 } == [4], "one upstream request, sent when full")
                for input in inputs {
                    let reply = try #require(replies[input])
                    #expect(reply.status == 200)
                    #expect(reply.headers["x-switchyard-coalesced"] == "4")
                    let json = try #require(reply.json)
                    let data = try #require(json["data"]?.arrayValue)
                    #expect(data.count == 1)
                    #expect(data[0]["index"]?.intValue == 0)
                    #expect(data[0]["embedding"]?.arrayValue?.first?.intValue == input.count, "each caller gets its own vector")
                    #expect(json["model"] == .string("e"))
                    #expect(json["usage"]?["prompt_tokens"] != nil)
                }
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"switchyard_coalesced_batch_size_count{model="e"} 1"#))
                #expect(
                    metrics.contains(#"switchyard_requests_total{model="e",lane="realtime",code="200"} 4"#),
                    "members are counted, not the merged request")
            }
        }
    }

    @Test func aBackendWhoseBatchesChangeAnswersIsNeverSentMergedRequests() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            try await GatewayHarness.with(Self.config(port: port, delay: .seconds(1), behaviour: "variant")) { gateway, base in
                let inputs = ["a", "bb", "ccc", "dddd"]
                let started = ContinuousClock.now
                let replies = try await withThrowingTaskGroup(of: TestClient.Reply.self) { group in
                    for input in inputs { group.addTask { try await Self.embed(base, input) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(replies.allSatisfy { $0.status == 200 && $0.headers["x-switchyard-coalesced"] == nil })
                #expect(upstream.embeddingBatches.withLock { $0 } == [1, 1, 1, 1], "sent one by one, as the client asked")
                #expect(ContinuousClock.now - started < .seconds(1), "nobody waited for a batch")
                let ready = try await TestClient.get("\(base)/readyz")
                let coalescing = ready.json?["models"]?["e"]?["backends"]?.arrayValue?.first?["coalescing"]?.stringValue ?? "-"
                #expect(coalescing.hasPrefix("off: cosine"), "\(coalescing)")
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"switchyard_coalescing_allowed{backend="http://127.0.0.1:\#(port)/variant/v1"} 0"#), "\(metrics)")
            }
        }
    }

    @Test func theBatchingCheckComparesEveryVector() {
        #expect(BatchingCheck.compare(single: [[1, 0], [0, 1]], batch: [[1, 0], [0, 1]]) == .invariant)
        #expect(BatchingCheck.compare(single: [[1, 0], [0, 1]], batch: [[1, 0.00001], [0, 1]]) == .invariant, "rounding noise")
        guard case .variant(let why) = BatchingCheck.compare(single: [[1, 0], [0, 1]], batch: [[1, 0], [0.6, 0.8]]) else {
            Issue.record("a vector that moved must count")
            return
        }
        #expect(why.contains("0.8000"))
        #expect(BatchingCheck.compare(single: [[1, 0]], batch: [[1, 0], [1, 0]]) != .invariant)
        #expect(BatchingCheck.compare(single: [[1, 0]], batch: [[1]]) != .invariant)
    }

    @Test func aLoneInputGoesAfterTheDelayAndListsAreNotMerged() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            try await GatewayHarness.with(Self.config(port: port, delay: .milliseconds(20))) { _, base in
                let lone = try await Self.embed(base, "xyz")
                #expect(lone.status == 200)
                #expect(lone.json?["data"]?.arrayValue?.first?["embedding"]?.arrayValue?.first?.intValue == 3)
                let list = try await TestClient.post("\(base)/v1/embeddings", #"{"model":"e","input":["a","b"]}"#)
                #expect(list.status == 200)
                #expect(list.headers["x-switchyard-coalesced"] == nil)
                #expect(upstream.embeddingBatches.withLock { $0 } == [1, 2])
            }
        }
    }
}
