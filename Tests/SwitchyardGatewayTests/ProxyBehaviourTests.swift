import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

@Suite(.serialized, .tags(.timing)) struct ProxyBehaviourTests {
    @Test func rewritesModelAndPassesUnknownFieldsThrough() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])])
            try await GatewayHarness.with(config) { _, base in
                let extra =
                    #","temperature":0.70,"tools":[{"type":"function","function":{"name":"f"}}],"logprobs":true,"n":2,"top_k":40,"response_format":{"type":"json_object"}"#
                let reply = try await TestClient.post(
                    "\(base)/v1/chat/completions", TestClient.chat(extra: extra), headers: ["x-request-id": "abc-123"])
                #expect(reply.status == 200)
                #expect(reply.headers["x-request-id"] == "abc-123")
                let json = try #require(reply.json)
                #expect(json["model"] == .string("m"), "public model name restored")
                let sent = try #require(json["echo"])
                #expect(sent["model"] == .string("upstream-model"))
                #expect(sent["temperature"] == .number("0.70"), "number text kept exactly")
                #expect(sent["top_k"] == .number("40"))
                #expect(sent["n"] == .number("2"))
                #expect(sent["logprobs"] == .bool(true))
                #expect(sent["tools"]?.arrayValue?.count == 1)
                #expect(sent["response_format"]?["type"] == .string("json_object"))
            }
        }
    }

    @Test func streamRestoresModelAndHidesUsageUnlessAsked() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])])
            try await GatewayHarness.with(config) { gateway, base in
                let plain = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(stream: true))
                #expect(plain.headers["content-type"] == "text/event-stream")
                let events = TestClient.events(plain.body)
                #expect(events.last == "[DONE]")
                #expect(events.count == 5, "role + 3 tokens + [DONE], usage chunk hidden: \(events)")
                #expect(events.dropLast().allSatisfy { $0.contains(#""model":"m""#) })
                #expect(upstream.lastRequestBody?["stream_options"]?["include_usage"] == .bool(true), "usage requested upstream")

                let withUsage = try await TestClient.post(
                    "\(base)/v1/chat/completions",
                    TestClient.chat(stream: true, extra: #","stream_options":{"include_usage":true}"#))
                let usageEvents = TestClient.events(withUsage.body)
                #expect(usageEvents.count == 6)
                #expect(usageEvents[4].contains(#""completion_tokens":3"#))
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"switchyard_output_tokens_total{model="m"} 6"#))
                #expect(metrics.contains("switchyard_ttft_seconds_count{model=\"m\",lane=\"streaming\"} 2"))
            }
        }
    }

    @Test func connectionResetBeforeResponseIsRetriedOnAnotherReplica() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            // The failing replica weighs 100, so it is always tried first.
            let config = GatewayHarness.config(models: [
                GatewayHarness.model("m", ["http://127.0.0.1:\(port)/reset-before/v1", "http://127.0.0.1:\(port)/ok/v1"], weights: [100, 1])
            ])
            try await GatewayHarness.with(config) { gateway, base in
                for stream in [false, true] {
                    let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(stream: stream))
                    #expect(reply.status == 200)
                    #expect(reply.headers["x-switchyard-attempts"] == "2")
                    #expect(reply.headers["x-switchyard-backend"] == "http://127.0.0.1:\(port)/ok/v1")
                }
                // Both replicas share one server, so the second request may be written on the
                // keep-alive connection the first one's answer left: a reset on a pooled
                // connection is taken for a stale one and resent once on a fresh connection.
                let stale = String(decoding: gateway.metrics.render(), as: UTF8.self).contains(
                    #"switchyard_retries_total{reason="stale_connection"} 1"#)
                #expect(upstream.count("reset-before") == (stale ? 3 : 2))
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"switchyard_retries_total{reason="reset"} 2"#))
            }
        }
    }

    @Test func overloadedBackendIsAvoidedAndItsRetryAfterRelayed() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [
                GatewayHarness.model("m", ["http://127.0.0.1:\(port)/status503/v1", "http://127.0.0.1:\(port)/ok/v1"], weights: [100, 1]),
                GatewayHarness.model("only429", ["http://127.0.0.1:\(port)/status429/v1"]),
            ]) { $0.retry.maxRetryAfter = .zero }
            try await GatewayHarness.with(config) { _, base in
                let ok = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                #expect(ok.status == 200)
                #expect(ok.headers["x-switchyard-attempts"] == "2")
                // The 503 replica is cooling down for its Retry-After: the next request goes straight to the other.
                let next = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                #expect(next.headers["x-switchyard-attempts"] == "1")
                #expect(upstream.count("status503") == 1)

                let limited = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(model: "only429"))
                #expect(limited.status == 429)
                #expect(limited.headers["retry-after"] == "1")
                #expect(limited.json?["error"]?["code"] == .string("rate_limit_exceeded"))
            }
        }
    }

    @Test func fallbackModelServesWhenThePoolFails() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [
                GatewayHarness.model("m", ["http://127.0.0.1:\(port)/reset-before/v1"], fallback: ["backup"]),
                GatewayHarness.model("backup", ["http://127.0.0.1:\(port)/ok/v1"], upstreamModel: "backup-upstream"),
            ])
            try await GatewayHarness.with(config) { _, base in
                let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                #expect(reply.status == 200)
                #expect(reply.json?["model"] == .string("m"), "the client sees the model it asked for")
                #expect(reply.json?["echo"]?["model"] == .string("backup-upstream"))
            }
        }
    }

    @Test func neverRetriesAfterTheFirstByte() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [
                GatewayHarness.model("m", ["http://127.0.0.1:\(port)/reset-mid/v1", "http://127.0.0.1:\(port)/ok/v1"], weights: [100, 1])
            ])
            try await GatewayHarness.with(config) { _, base in
                let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(stream: true))
                #expect(reply.status == 200)
                let events = TestClient.events(reply.body)
                #expect(events.count == 4, "role, a, b, then the error event: \(events)")
                let last = try JSONParser.parse(try #require(events.last))
                #expect(last["error"]?["code"] == .string("upstream_reset"))
                #expect(upstream.count("ok") == 0, "no retry once bytes reached the client")
            }
        }
    }

    @Test func malformedStreamAndInBandErrorsEndTheStreamVisibly() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [
                GatewayHarness.model("bad", ["http://127.0.0.1:\(port)/malformed/v1"]),
                GatewayHarness.model("inband", ["http://127.0.0.1:\(port)/inband-error/v1"]),
            ])
            try await GatewayHarness.with(config) { gateway, base in
                let bad = TestClient.events(
                    try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(stream: true, model: "bad")).body)
                #expect(bad.count == 3)
                #expect(try JSONParser.parse(bad[2])["error"]?["message"]?.stringValue?.contains("malformed") == true)
                let inband = TestClient.events(
                    try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(stream: true, model: "inband")).body)
                #expect(inband.count == 3)
                #expect(try JSONParser.parse(inband[2])["error"]?["message"] == .string("engine fell over"))
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"kind="malformed""#))
                #expect(metrics.contains(#"kind="in_band_error""#))
            }
        }
    }

    @Test func idleAndFirstByteTimeouts() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [
                GatewayHarness.model("trickle", ["http://127.0.0.1:\(port)/trickle/v1"]),
                GatewayHarness.model("slow", ["http://127.0.0.1:\(port)/slow-head/v1"]),
            ]) {
                $0.upstream.timeouts.idle = .seconds(1)
                $0.upstream.timeouts.firstByte = .seconds(1)
            }
            try await GatewayHarness.with(config) { _, base in
                let trickle = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(stream: true, model: "trickle"))
                let events = TestClient.events(trickle.body)
                try #require(events.count == 3, "role, a, timeout error: \(events)")
                #expect(try JSONParser.parse(events[2])["error"]?["code"] == .string("timeout"))

                let slow = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(model: "slow"))
                #expect(slow.status == 504)
                #expect(slow.json?["error"]?["code"] == .string("timeout"))
                #expect(upstream.count("slow-head") == 1, "a timeout after sending is not retried")
            }
        }
    }

    @Test func clientDisconnectCancelsTheUpstreamStream() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/endless/v1"])])
            try await GatewayHarness.with(config) { _, base in
                var request = HTTPClientRequest(url: "\(base)/v1/chat/completions")
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: TestClient.chat(stream: true)))
                // A dedicated client, shut down mid-stream: its connection closes.
                let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
                let response = try await client.execute(request, timeout: .seconds(30))
                var received = 0
                for try await chunk in response.body {
                    received += chunk.readableBytes
                    if received > 500 { break }
                }
                try await client.shutdown()
                let deadline = ContinuousClock.now + .seconds(5)
                while upstream.streamsEndedByClient == 0, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(upstream.streamsEndedByClient == 1, "the gateway closed the upstream stream")
            }
        }
    }

    /// The sum of the Prometheus samples whose line starts with `prefix`.
    static func sum(_ metrics: String, _ prefix: String) -> Double {
        metrics.split(separator: "\n").filter { $0.hasPrefix(prefix) }.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            .reduce(0, +)
    }

    @Test func retryBudgetStopsRetryStorms() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let model = GatewayHarness.model("m", ["a", "b", "c"].map { "http://127.0.0.1:\(port)/reset-before-\($0)/v1" })
            let config = GatewayHarness.config(models: [model]) {
                $0.retry.budgetRatio = 0
                $0.retry.minRetriesPerWindow = 2
                $0.outlier.consecutiveFailures = 100
            }
            try await GatewayHarness.with(config) { gateway, base in
                for _ in 0..<5 {
                    let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                    #expect(reply.status == 502)
                }
                // 5 first attempts + 2 budgeted retries, not 5 × 3.
                #expect(["a", "b", "c"].map { upstream.count("reset-before-\($0)") }.reduce(0, +) == 7)
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                // Counted apart: the 2 retries made (the first request's, on b and c), and the
                // 4 refused (requests 2 to 5 each asked once, then failed).
                #expect(Self.sum(metrics, "switchyard_retries_total{") == 2)
                #expect(Self.sum(metrics, #"switchyard_retries_refused_total{reason="budget_exhausted"}"#) == 4)
                #expect(!metrics.contains(#"switchyard_retries_total{reason="budget_exhausted"}"#))
            }
        }
    }

    @Test func gracefulShutdownLetsStreamsFinish() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])])
            try await GatewayHarness.with(config) { gateway, base in
                #expect(gateway.isReady)
                var request = HTTPClientRequest(url: "\(base)/v1/chat/completions")
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: TestClient.chat(stream: true, extra: #","max_tokens":200"#)))
                let response = try await TestClient.http.execute(request, timeout: .seconds(30))
                await gateway.shutdown()
                let deadline = ContinuousClock.now + .seconds(5)
                while !gateway.isDraining, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
                #expect(gateway.isDraining)
                #expect(!gateway.isReady)
                let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
                #expect(TestClient.events(body).last == "[DONE]", "the in-flight stream completed")
            }
        }
    }
}

@Suite(.serialized, .tags(.timing)) struct RoutingAndEjectionTests {
    @Test func prefixAffinityKeepsAPromptOnOneReplica() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            var model = GatewayHarness.model("m", ["a", "b", "c", "d"].map { "http://127.0.0.1:\(port)/ok-\($0)/v1" })
            model.routing.policy = .prefixAffinity
            let config = GatewayHarness.config(models: [model])
            try await GatewayHarness.with(config) { _, base in
                var homes: [String: Set<String>] = [:]
                for prompt in ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"] {
                    for _ in 0..<4 {
                        let body =
                            #"{"model":"m","messages":[{"role":"system","content":"shared system prompt \#(prompt)"},{"role":"user","content":"q"}]}"#
                        let reply = try await TestClient.post("\(base)/v1/chat/completions", body)
                        #expect(reply.status == 200)
                        homes[prompt, default: []].insert(reply.headers["x-switchyard-backend"] ?? "?")
                    }
                }
                #expect(homes.values.allSatisfy { $0.count == 1 }, "each prefix stays on one replica: \(homes)")
                #expect(Set(homes.values.flatMap { $0 }).count > 1, "different prefixes spread")
            }
        }
    }

    @Test func failingReplicaIsEjectedThenProbed() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [
                GatewayHarness.model("m", ["http://127.0.0.1:\(port)/reset-before/v1", "http://127.0.0.1:\(port)/ok/v1"], weights: [100, 1])
            ]) {
                $0.outlier.consecutiveFailures = 2
                $0.outlier.baseEjection = .milliseconds(300)
                $0.retry.minRetriesPerWindow = 100
            }
            try await GatewayHarness.with(config) { gateway, base in
                for _ in 0..<6 {
                    #expect(try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat()).status == 200)
                }
                // Two failures eject it; the next four requests skip it.
                let failedAttempts = upstream.count("reset-before")
                #expect(failedAttempts >= 2 && failedAttempts <= 4, "\(failedAttempts)")
                let ejected = try #require(gateway.pools["m"]?.snapshot().first)
                #expect(ejected.ejected)
                #expect(
                    String(decoding: gateway.metrics.render(), as: UTF8.self).contains(
                        #"switchyard_backend_healthy{backend="http://127.0.0.1:\#(port)/reset-before/v1"} 0.0"#))
                // After the ejection one probe request is let through (and fails again).
                let deadline = ContinuousClock.now + .seconds(5)
                while gateway.pools["m"]?.snapshot().first?.ejected == true, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat()).status == 200)
                #expect(upstream.count("reset-before") > failedAttempts, "a probe was sent after the ejection")
                #expect(gateway.pools["m"]?.snapshot().first?.ejected == true, "the failed probe ejected it again")
            }
        }
    }
}

@Suite(.tags(.timing)) struct RegistrationTests {
    static let token = "registration-test-token-0123"

    static func admin(_ base: String, _ method: HTTPMethod, _ path: String, _ body: String? = nil) async throws -> TestClient.Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await TestClient.http.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return TestClient.Reply(status: Int(response.status.code), headers: [:], body: String(buffer: bytes))
    }

    @Test func registeredBackendServesUntilItsHeartbeatStops() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [ModelConfig(name: "slurm", backends: [])]) { $0.admin.token = Self.token }
            try await GatewayHarness.with(config) { gateway, base in
                #expect(!gateway.isReady, "no backend yet")
                let url = "http://127.0.0.1:\(port)/ok/v1"
                let unauthorized = try await TestClient.post("\(base)/admin/backends", #"{"url":"\#(url)","model":"slurm","ttl":1}"#)
                #expect(unauthorized.status == 401)

                // A long ttl while it serves (capacity discovery runs inside the registration and may
                // take a while on a loaded machine), then a short one to watch it lapse.
                let first = try await Self.admin(
                    base, .POST, "/admin/backends", #"{"url":"\#(url)","model":"slurm","ttl":30,"upstream_model":"upstream-model"}"#)
                #expect(first.status == 201)
                #expect(first.json?["id"] == .string("slurm-0"))
                #expect(gateway.isReady)
                let served = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(model: "slurm"))
                #expect(served.status == 200, "\(served.body)")
                #expect(served.headers["x-switchyard-backend"] == url)

                // Heartbeats keep it; the same URL is not added twice.
                for _ in 0..<3 {
                    try await Task.sleep(for: .milliseconds(300))
                    let beat = try await Self.admin(base, .POST, "/admin/backends", #"{"url":"\#(url)","model":"slurm","ttl":30}"#)
                    #expect(beat.status == 200)
                    #expect(beat.json?["registered"] == .bool(false))
                }
                #expect(try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(model: "slurm")).status == 200)
                let last = try await Self.admin(base, .POST, "/admin/backends", #"{"url":"\#(url)","model":"slurm","ttl":0.6}"#)
                #expect(last.status == 200)

                // No heartbeat: gone after its ttl.
                let deadline = ContinuousClock.now + .seconds(5)
                while gateway.isReady, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                #expect(!gateway.isReady)
                let after = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(model: "slurm"))
                #expect(after.status == 503)
                let listing = try await Self.admin(base, .GET, "/admin/backends")
                #expect(listing.json?["models"]?.arrayValue?.first?["backends"]?.arrayValue?.isEmpty == true)

                let bad = try await Self.admin(base, .POST, "/admin/backends", #"{"url":"nope","model":"slurm","ttl":1}"#)
                #expect(bad.status == 400)
                #expect(bad.json?["error"]?["param"] == .string("url"))
            }
        }
    }
}

/// A reload that leaves a backend out: its stream in flight finishes, new requests go to the
/// backend that stays, and it leaves the pool.
@Suite struct ReloadDrainTests {
    static func yaml(_ urls: [String]) -> String {
        """
        server: { port: 0, shutdown_grace: 5s, drain_delay: 0s }
        health: { enabled: false }
        upstream: { discovery_timeout: 500ms }
        models:
          - name: m
            backends: [\(urls.map { "{ url: \"\($0)\", model: upstream-model }" }.joined(separator: ", "))]
        """
    }

    @Test func aBackendLeftOutIsDrainedNeverCutMidStream() async throws {
        let (held, other) = (TestUpstream(), TestUpstream())
        try await held.run { p1 in
            try await other.run { p2 in
                let (first, second) = ("http://127.0.0.1:\(p1)/ok/v1", "http://127.0.0.1:\(p2)/ok/v1")
                let config = try ConfigLoader.load(yaml: Self.yaml([first]))
                try await GatewayHarness.with(config) { gateway, base in
                    async let stream = TestClient.post(
                        "\(base)/v1/chat/completions", TestClient.chat(stream: true, extra: #","hold":true"#))
                    #expect(await Poll.until { held.count("ok") == 1 }, "the stream reached the first backend")
                    let outcome = gateway.reload(text: Self.yaml([second]), origin: "test")
                    #expect(outcome.result == .applied, "\(outcome.issues)")
                    #expect(outcome.changes.map(\.text).contains { $0.hasPrefix("backend \(first) removed") })
                    // Taken by the backend that stays; the first is draining.
                    let next = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                    #expect(next.status == 200 && other.count("ok") == 1)
                    #expect(gateway.pools["m"]!.snapshot().first { $0.backend.id == first }?.state == .draining)
                    held.release()
                    let reply = try await stream
                    #expect(reply.status == 200)
                    #expect(reply.body.contains("[DONE]"), "the stream ended normally: \(reply.body)")
                    #expect(!reply.body.contains("error"), "\(reply.body)")
                    #expect(gateway.pools["m"]!.snapshot().map(\.backend.id) == [second], "gone once idle")
                }
            }
        }
    }
}
