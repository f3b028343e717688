import AsyncHTTPClient
import NIOCore
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// The shutdown sequence Kubernetes needs: readiness 503 at once, the listener still accepting
/// for `drain_delay`, then no new connections, then in-flight work within `shutdown_grace`, and
/// what still runs at its end is ended visibly (an SSE error event, a 503), never cut off.
@Suite(.serialized, .tags(.timing)) struct ShutdownTests {
    static func port(_ base: String) -> Int { Int(base.split(separator: ":").last!)! }

    /// One request on a new connection; nil when the connection is refused.
    static func fresh(_ base: String, _ request: String) async -> String? {
        try? await DeclaredBodyLimitTests.responseHead(port: port(base), request)
    }

    @Test(arguments: [true, false]) func streamsStillRunningWhenTheGraceEndsGetAnErrorEvent(fastPath: Bool) async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/endless/v1"])]) {
                $0.server.shutdownGrace = .seconds(1)
                $0.server.drainDelay = .milliseconds(300)
                $0.server.fastPath = fastPath
            }
            try await GatewayHarness.with(config) { gateway, base in
                var request = HTTPClientRequest(url: "\(base)/v1/chat/completions")
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: TestClient.chat(stream: true)))
                let response = try await TestClient.http.execute(request, timeout: .seconds(30))
                #expect(response.status == .ok)
                let stopped = ContinuousClock.now
                Task { await gateway.shutdown() }
                let body = String(buffer: try await response.body.collect(upTo: 1 << 22))
                let took = ContinuousClock.now - stopped
                let events = TestClient.events(body)
                #expect(events.count > 10, "the stream ran on through the drain delay and the grace")
                #expect(!events.contains("[DONE]"))
                let last = try JSONParser.parse(events.last ?? "")
                #expect(last["error"]?["code"] == .string("server_shutdown"), "\(events.last ?? "-")")
                #expect(took >= .milliseconds(1200) && took < .seconds(4), "ended at the grace's end: \(took)")
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains(#"code="503""#), "counted as the shutdown it was, not as 499")
                #expect(!metrics.contains(#"code="499""#))
            }
        }
    }

    @Test func aWholeAnswerStillRunningWhenTheGraceEndsGets503() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])]) {
                $0.server.shutdownGrace = .milliseconds(500)
            }
            try await GatewayHarness.with(config) { gateway, base in
                // Held by the upstream until released (never, here).
                let held = Task { try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(extra: #","hold":true"#)) }
                #expect(await Poll.until(.seconds(5)) { upstream.lastRequestBody != nil })
                await gateway.shutdown()
                let reply = try await held.value
                #expect(reply.status == 503)
                #expect(reply.json?["error"]?["code"] == .string("server_shutdown"))
                upstream.release()
            }
        }
    }

    @Test func readinessIs503DuringTheDrainDelayWhileNewConnectionsAreStillServed() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])]) {
                $0.server.drainDelay = .seconds(2)
            }
            try await GatewayHarness.with(config) { gateway, base in
                let before = await Self.fresh(base, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                #expect(before?.hasPrefix("HTTP/1.1 200") == true)
                let stopped = ContinuousClock.now
                Task { await gateway.shutdown() }
                #expect(await Poll.until(.seconds(1)) { gateway.isDraining })
                // Within the delay: a new connection is accepted; readiness says 503, work is served.
                let ready = await Self.fresh(base, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                #expect(ready?.hasPrefix("HTTP/1.1 503") == true, "\(ready ?? "refused")")
                let body = TestClient.chat()
                let served = await Self.fresh(
                    base,
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                )
                #expect(served?.hasPrefix("HTTP/1.1 200") == true, "\(served ?? "refused")")
                #expect(ContinuousClock.now - stopped < .seconds(2), "the checks ran inside the delay")
                // After it, connections are refused.
                var refused = false
                let deadline = ContinuousClock.now + .seconds(5)
                while !refused, ContinuousClock.now < deadline {
                    refused = await Self.fresh(base, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == nil
                    if !refused { try await Task.sleep(for: .milliseconds(50)) }
                }
                #expect(refused, "the listener closes once the delay is over")
                #expect(ContinuousClock.now - stopped >= .seconds(2))
            }
        }
    }
}
