import NIOCore
import NIOPosix
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

@Suite(.tags(.timing)) struct RequestValidationTests {
    @Test func requestIDsAreTheClientsWhenSafeElseGenerated() {
        #expect(Gateway.requestID(from: "client-id_1.2:3") == "client-id_1.2:3")
        var seen = Set<String>()
        for header in [nil, "", "has space", "new\nline", String(repeating: "a", count: 129)] as [String?] {
            let id = Gateway.requestID(from: header)
            #expect(id.utf8.count == 32 && id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }, "\(id)")
            seen.insert(id)
        }
        for _ in 0..<1000 { seen.insert(Gateway.requestID(from: nil)) }
        #expect(seen.count == 1005, "generated ids do not repeat")
    }

    @Test func badInputGetsOpenAIErrors() async throws {
        let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:9/v1"])]) { $0.server.maxBodyBytes = 2048 }
        try await GatewayHarness.with(config) { _, base in
            let url = "\(base)/v1/chat/completions"
            let malformed = try await TestClient.post(url, #"{"model": "m", "messages": [}"#)
            #expect(malformed.status == 400)
            #expect(malformed.json?["error"]?["message"]?.stringValue?.contains("line 1, column 29") == true)
            #expect(malformed.json?["error"]?["type"] == .string("invalid_request_error"))

            let missing = try await TestClient.post(url, #"{"model":"m"}"#)
            #expect(missing.status == 400)
            #expect(missing.json?["error"]?["param"] == .string("messages"))

            let wrongType = try await TestClient.post(url, #"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#)
            #expect(wrongType.json?["error"]?["param"] == .string("stream"))

            let big = try await TestClient.post(
                url, #"{"model":"m","messages":[{"role":"user","content":""# + String(repeating: "x", count: 4096) + #""}]}"#)
            #expect(big.status == 413)
            #expect(big.json?["error"]?["code"] == .string("request_too_large"))

            let form = try await TestClient.post(url, "a=b", contentType: "application/x-www-form-urlencoded")
            #expect(form.status == 415)

            let unknown = try await TestClient.post(url, TestClient.chat(model: "nope"))
            #expect(unknown.status == 404)
            #expect(unknown.json?["error"]?["code"] == .string("model_not_found"))

            let garbage = try await TestClient.post(url, "\u{0}\u{1}\u{2}\u{ff}")
            #expect(garbage.status == 400)

            let noRoute = try await TestClient.get("\(base)/v1/nothing")
            #expect(noRoute.status == 404)
            #expect(noRoute.json?["error"]?["code"] == .string("unknown_url"))

            let models = try await TestClient.get("\(base)/v1/models")
            #expect(models.json?["data"]?.arrayValue?.first?["id"] == .string("m"))
            #expect(try await TestClient.get("\(base)/healthz").status == 200)
        }
    }

    @Test func readinessFollowsActiveHealthChecks() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [
                GatewayHarness.model("up", ["http://127.0.0.1:\(port)/ok/v1"]),
                GatewayHarness.model("down", ["http://127.0.0.1:1/v1"]),
            ]) {
                $0.health.enabled = true
                $0.health.interval = .milliseconds(100)
                $0.health.timeout = .milliseconds(500)
            }
            try await GatewayHarness.with(config) { gateway, base in
                let deadline = ContinuousClock.now + .seconds(5)
                while gateway.pools["up"]?.isReady != true, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(gateway.pools["up"]?.isReady == true)
                let ready = try await TestClient.get("\(base)/readyz")
                #expect(ready.status == 503, "one model has no healthy backend")
                #expect(ready.json?["models"]?["down"]?["ready"] == .bool(false))
                let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(model: "down"))
                #expect(reply.status == 503)
                #expect(reply.json?["error"]?["code"] == .string("no_healthy_backend"))
            }
        }
    }
}

@Suite(.tags(.timing)) struct TenantAuthTests {
    @Test func apiKeysMapToTenantsAndWrongKeysGet401() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])]) {
                $0.tenants = [
                    TenantConfig(name: "team-a", apiKeySHA256: Digest.sha256Hex("sk-team-a"), weight: 2),
                    TenantConfig(name: "team-b", apiKeySHA256: Digest.sha256Hex("sk-team-b")),
                ]
            }
            try await GatewayHarness.with(config) { gateway, base in
                let url = "\(base)/v1/chat/completions"
                let missing = try await TestClient.post(url, TestClient.chat())
                #expect(missing.status == 401)
                #expect(missing.json?["error"]?["code"] == .string("invalid_api_key"))
                let wrong = try await TestClient.post(url, TestClient.chat(), headers: ["authorization": "Bearer sk-nope"])
                #expect(wrong.status == 401)
                #expect(wrong.json?["error"]?["message"] == .string("Incorrect API key provided."))
                #expect(try await TestClient.get("\(base)/v1/models").status == 401)
                let ok = try await TestClient.post(url, TestClient.chat(), headers: ["authorization": "Bearer sk-team-a"])
                #expect(ok.status == 200)
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"switchyard_tenant_tokens_total{tenant="team-a",kind="output"} 1"#))
                #expect(metrics.contains(#"switchyard_tenant_tokens_total{tenant="team-a",kind="input"} 5"#))
                #expect(metrics.contains(#"switchyard_requests_total{model="-",lane="-",code="401"} 2"#))
            }
        }
    }
}

/// A body declared over the limit is refused before it arrives, on both paths.
@Suite(.tags(.timing)) struct DeclaredBodyLimitTests {
    /// Sends `text` and returns the response head once it is complete (the connection stays open).
    static func responseHead(port: Int, _ text: String) async throws -> String {
        do {
            return try await RawHTTP.exchange(port: port, text, timeout: .seconds(5)) { $0.contains("\r\n\r\n") }
        } catch is RawHTTP.Timeout {
            return "no answer within 5 s"
        }
    }

    @Test(arguments: [true, false]) func aDeclaredBodyOverTheLimitGets413AtOnce(fastPath: Bool) async throws {
        let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:9/v1"])]) {
            $0.server.maxBodyBytes = 2048
            $0.server.fastPath = fastPath
        }
        try await GatewayHarness.with(config) { _, base in
            let port = Int(base.split(separator: ":").last!)!
            // Ten megabytes declared, none sent: the answer must not wait for them.
            let head = try await Self.responseHead(
                port: port,
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 413"), "\(head)")
        }
    }
}
