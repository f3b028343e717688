import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// Tenants' quotas on the gateway: over its request rate a tenant gets 429 with OpenAI's
/// rate-limit headers while another tenant is served; the headers count down on admitted
/// requests; a lane limit and a token limit refuse in their own words.
@Suite struct QuotaTests {
    static let (keyA, keyB) = (TenantKeys.generate(), TenantKeys.generate())

    static func config(port: Int) throws -> GatewayConfig {
        var config = try ConfigLoader.load(
            yaml: """
                tenants:
                  - name: team-a
                    api_key_sha256: \(Digest.sha256Hex(keyA))
                    limits: { requests_per_minute: 3, tokens_per_minute: 100000, lanes: { batch: { tokens_per_minute: 50 } } }
                  - { name: team-b, api_key_sha256: \(Digest.sha256Hex(keyB)) }
                models: [{ name: m, backends: [{ url: "http://127.0.0.1:\(port)/ok/v1", model: upstream-model }] }]
                """)
        let harness = GatewayHarness.config(models: config.models)
        config.server = harness.server
        config.health = harness.health
        config.upstream = harness.upstream
        return config
    }

    @Test func aTenantOverItsRateGets429WithHeadersWhileAnotherIsServed() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            try await GatewayHarness.with(try Self.config(port: port)) { gateway, base in
                let url = "\(base)/v1/chat/completions"
                var remaining: [String] = []
                for _ in 0..<3 {
                    let ok = try await TestClient.post(url, TestClient.chat(), headers: ["authorization": "Bearer \(Self.keyA)"])
                    #expect(ok.status == 200, "\(ok.body)")
                    #expect(ok.headers["x-ratelimit-limit-requests"] == "3")
                    remaining.append(ok.headers["x-ratelimit-remaining-requests"] ?? "?")
                    #expect(ok.headers["x-ratelimit-limit-tokens"] == "100000" && ok.headers["x-ratelimit-reset-tokens"] != nil)
                }
                #expect(remaining == ["2", "1", "0"])
                let over = try await TestClient.post(url, TestClient.chat(), headers: ["authorization": "Bearer \(Self.keyA)"])
                #expect(over.status == 429, "\(over.body)")
                #expect(over.body.contains(#""code":"rate_limit_exceeded""#) && over.body.contains("3 requests per minute"), "\(over.body)")
                // One request per 20 s comes back: at most 20 s to wait, less as the bucket refills
                // (a loaded CI host took 1.8 s over the first three requests).
                let retryAfter = over.headers["retry-after"].flatMap { Int($0) }
                #expect(retryAfter.map { (15...20).contains($0) } == true && over.headers["x-ratelimit-remaining-requests"] == "0", "\(over.headers)")
                #expect(over.headers["x-ratelimit-reset-requests"] != nil)
                // Another tenant is not affected, and has no rate-limit headers.
                for _ in 0..<5 {
                    let b = try await TestClient.post(url, TestClient.chat(), headers: ["authorization": "Bearer \(Self.keyB)"])
                    #expect(b.status == 200 && b.headers["x-ratelimit-limit-requests"] == nil)
                }
                let text = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(text.contains(#"switchyard_quota_refused_total{tenant="team-a",limit="requests"} 1"#), "\(text)")
                // Admitted on the event-loop fast path (quotas do not push requests to the router).
                let served = text.split(separator: "\n").first { $0.hasPrefix(#"switchyard_fast_path_total{outcome="served"}"#) }
                #expect((served.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0) >= 8, "\(served ?? "none")")
            }
        }
    }

    @Test func aLaneTokenLimitRefusesARequestLargerThanItCouldEverAllow() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            try await GatewayHarness.with(try Self.config(port: port)) { _, base in
                let reply = try await TestClient.post(
                    "\(base)/v1/chat/completions", TestClient.chat(extra: #","max_tokens":100"#),
                    headers: ["authorization": "Bearer \(Self.keyA)", "x-switchyard-lane": "batch"])
                #expect(reply.status == 429 && reply.body.contains("Request too large for tenant team-a in lane batch"), "\(reply.body)")
                #expect(reply.headers["retry-after"] == nil, "waiting cannot help")
            }
        }
    }

    @Test func aTenantAtItsStreamLimitIsRefusedUntilAStreamEnds() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            var config = try Self.config(port: port)
            config.tenants[1].maxConcurrentStreams = 1
            try await GatewayHarness.with(config) { gateway, base in
                let url = "\(base)/v1/chat/completions"
                let auth = ["authorization": "Bearer \(Self.keyB)"]
                async let held = TestClient.post(url, TestClient.chat(stream: true, extra: #","hold":true"#), headers: auth)
                #expect(await Poll.until { gateway.proxy.streams.count("team-b") == 1 })
                let second = try await TestClient.post(url, TestClient.chat(stream: true), headers: auth)
                #expect(second.status == 429 && second.body.contains("too_many_streams"), "\(second.body)")
                #expect(
                    try await TestClient.post(url, TestClient.chat(), headers: auth).status == 200, "a request that is not a stream is not counted")
                upstream.release()
                #expect(try await held.status == 200)
                #expect(await Poll.until { gateway.proxy.streams.count("team-b") == 0 }, "given back when the stream ended")
                #expect(try await TestClient.post(url, TestClient.chat(stream: true), headers: auth).status == 200)
                #expect(ClientLimitsTests.refused(gateway, "streams_per_tenant") == 1, "counted once though both paths looked")
            }
        }
    }

    @Test func resetTimesReadLikeOpenAIs() {
        #expect(Quotas.goDuration(.milliseconds(20)) == "20ms")
        #expect(Quotas.goDuration(.milliseconds(1500)) == "1.5s")
        #expect(Quotas.goDuration(.seconds(20)) == "20s")
        #expect(Quotas.goDuration(.seconds(360)) == "6m0s")
        #expect(Quotas.goDuration(.seconds(3725)) == "1h2m5s")
    }

    @Test func limitsAreReadFromTheConfigWithTheirFieldsNamed() throws {
        #expect(throws: ConfigError.self) {
            try ConfigLoader.load(
                yaml: "tenants: [{ name: a, api_key_sha256: \(String(repeating: "a", count: 64)), limits: { lanes: { nope: {} } } }]")
        }
        do {
            _ = try ConfigLoader.load(
                yaml: "tenants: [{ name: a, api_key_sha256: \(String(repeating: "a", count: 64)), limits: { requests_per_minute: 0 } }]")
        } catch {
            #expect(error.issues.first?.path == "tenants[0].limits.requests_per_minute")
        }
    }
}
