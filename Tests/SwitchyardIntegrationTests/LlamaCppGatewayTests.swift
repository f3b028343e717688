import AsyncHTTPClient
import Dispatch
import Foundation
import NIOCore
import SwitchyardCore
import SwitchyardGateway
import SwitchyardTestSupport
import Testing

/// The gateway in front of a real llama.cpp server (SmolLM2-135M on CPU).
@Suite(.serialized, .tags(.timing)) struct LlamaCppGatewayTests {
    func config(_ url: String) -> GatewayConfig {
        var model = ModelConfig(name: "smollm2", backends: [BackendConfig(url: url, maxInflight: 4)])
        model.timeouts = TimeoutConfig()
        return GatewayHarness.config(models: [model]) {
            $0.health.enabled = true
            $0.health.interval = .milliseconds(200)
        }
    }

    func waitReady(_ gateway: Gateway) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !gateway.isReady, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try #require(gateway.isReady)
    }

    @Test func chatCompletionsStreamingEmbeddingsAndUsage() async throws {
        let url = try await LlamaServer.shared.url()
        try await GatewayHarness.with(config(url)) { gateway, base in
            try await waitReady(gateway)
            let chat = try await TestClient.post(
                "\(base)/v1/chat/completions",
                #"{"model":"smollm2","messages":[{"role":"user","content":"Say hi"}],"max_tokens":8,"temperature":0}"#)
            #expect(chat.status == 200)
            let json = try #require(chat.json)
            #expect(json["model"] == .string("smollm2"))
            #expect(json["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue?.isEmpty == false)
            let chatTokens = try #require(json["usage"]?["completion_tokens"]?.intValue)

            let stream = try await TestClient.post(
                "\(base)/v1/chat/completions",
                #"{"model":"smollm2","messages":[{"role":"user","content":"Count"}],"max_tokens":6,"stream":true}"#)
            let events = TestClient.events(stream.body)
            #expect(events.last == "[DONE]")
            #expect(!events.contains { $0.contains(#""usage""#) }, "usage chunk hidden when not asked for")
            #expect(events.dropLast().allSatisfy { $0.contains(#""model":"smollm2""#) })

            let completion = try await TestClient.post("\(base)/v1/completions", #"{"model":"smollm2","prompt":"Paris is","max_tokens":5}"#)
            #expect(completion.status == 200)
            #expect(completion.json?["choices"]?.arrayValue?.first?["text"]?.stringValue != nil)
            let completionTokens = try #require(completion.json?["usage"]?["completion_tokens"]?.intValue)

            let completionStream = try await TestClient.post(
                "\(base)/v1/completions",
                #"{"model":"smollm2","prompt":"Once","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}"#)
            let completionEvents = TestClient.events(completionStream.body)
            let usageEvent = try #require(completionEvents.first { $0.contains(#""usage""#) && $0.contains("completion_tokens") })
            let streamedTokens = try #require(try JSONParser.parse(usageEvent)["usage"]?["completion_tokens"]?.intValue)

            let embeddings = try await TestClient.post("\(base)/v1/embeddings", #"{"model":"smollm2","input":["a","b"]}"#)
            #expect(embeddings.status == 200)
            #expect(embeddings.json?["data"]?.arrayValue?.count == 2)

            let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
            let line = try #require(metrics.split(separator: "\n").first { $0.hasPrefix("switchyard_output_tokens_total{model=\"smollm2\"}") })
            let counted = Int(line.split(separator: " ").last!)!
            // The plain chat stream's tokens are counted too (usage requested upstream): at least 1.
            #expect(counted > chatTokens + completionTokens + streamedTokens)
            #expect(metrics.contains(#"switchyard_ttft_seconds_count{model="smollm2",lane="streaming"} 2"#))
            #expect(metrics.contains(#"switchyard_requests_total{model="smollm2",lane="realtime",code="200"} 3"#))
        }
    }

    @Test func officialOpenAIPythonClient() async throws {
        let url = try await LlamaServer.shared.url()
        try await GatewayHarness.with(config(url)) { gateway, base in
            try await waitReady(gateway)
            let (status, text) = try await BenchCommandTests.runDetached(
                LlamaServer.python, [LlamaServer.repoRoot.appendingPathComponent("scripts/openai_compat_check.py").path, "\(base)/v1", "smollm2"])
            #expect(status == 0, "\(text)")
            #expect(text.contains("all checks passed"), "\(text)")
        }
    }

    /// Files and Batches with the official client: upload, create, poll to completed, output
    /// per input line, cancel, a malformed file refused with its lines, list pagination.
    @Test func officialOpenAIPythonClientRunsABatch() async throws {
        let url = try await LlamaServer.shared.url()
        try await GatewayHarness.withBatch(config(url)) { gateway, base, _ in
            try await waitReady(gateway)
            let (status, text) = try await BenchCommandTests.runDetached(
                LlamaServer.python, [LlamaServer.repoRoot.appendingPathComponent("scripts/openai_batch_check.py").path, "\(base)/v1", "smollm2"])
            #expect(status == 0, "\(text)")
            #expect(text.contains("all checks passed"), "\(text)")
        }
    }

    @Test func concurrentStreamsBeyondTheSlotCountQueueInsteadOfFailing() async throws {
        let url = try await LlamaServer.shared.url()
        try await GatewayHarness.with(config(url)) { gateway, base in
            try await waitReady(gateway)
            let statuses = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for i in 0..<12 {
                    group.addTask {
                        let reply = try await TestClient.post(
                            "\(base)/v1/chat/completions",
                            #"{"model":"smollm2","messages":[{"role":"user","content":"Hi \#(i)"}],"max_tokens":4,"stream":true}"#)
                        return (reply.status, TestClient.events(reply.body).last == "[DONE]")
                    }
                }
                var all: [(Int, Bool)] = []
                for try await result in group { all.append(result) }
                return all
            }
            #expect(statuses.count == 12)
            #expect(statuses.allSatisfy { $0.0 == 200 && $0.1 }, "\(statuses)")
            #expect(gateway.pools["smollm2"]?.snapshot().first?.inflight == 0)
        }
    }
}
