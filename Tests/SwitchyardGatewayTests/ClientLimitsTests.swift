import Foundation
import NIOCore
import NIOPosix
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// Limits against slow or hostile clients, on raw sockets: a slow-loris client is cut at the
/// header read timeout while others are served; oversized or too many headers get 431, an
/// oversized body 413; idle keep-alive connections close; one address cannot hold more than its
/// share of connections. Each refusal is counted by reason and answered in OpenAI's shape.
@Suite(.tags(.timing)) struct ClientLimitsTests {
    static func config(port: Int, _ edit: (inout ClientLimits) -> Void = { _ in }) -> GatewayConfig {
        GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])]) {
            $0.server.maxBodyBytes = 4096
            edit(&$0.server.limits)
        }
    }

    static func port(_ base: String) -> Int { Int(base.split(separator: ":").last!)! }

    static func refused(_ gateway: Gateway, _ reason: String) -> Int {
        let text = String(decoding: gateway.metrics.render(), as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix("switchyard_refused_total{reason=\"\(reason)\"}") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "").map { Int($0) } } ?? 0
    }

    @Test func aSlowLorisClientIsCutAtTheHeaderTimeoutWhileOthersAreServed() async throws {
        let upstream = TestUpstream()
        try await upstream.run { up in
            let config = Self.config(port: up) { $0.headerReadTimeout = .milliseconds(400) }
            try await GatewayHarness.with(config) { gateway, base in
                let started = ContinuousClock.now
                // Headers that never end.
                async let slow = RawHTTP.exchange(
                    port: Self.port(base), "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n", timeout: .seconds(10))
                for _ in 0..<3 {
                    #expect(try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat()).status == 200)
                }
                let answer = try await slow
                let waited = ContinuousClock.now - started
                #expect(answer.hasPrefix("HTTP/1.1 408"), "\(answer)")
                #expect(answer.contains(#""code":"request_timeout""#) && answer.contains("header_read_timeout"), "\(answer)")
                #expect(waited >= .milliseconds(400) && waited < .seconds(5))
                #expect(Self.refused(gateway, "read_timeout") == 1)
            }
        }
    }

    @Test func oversizedHeadersManyHeadersAndBodiesAreRefusedInOpenAIShape() async throws {
        let upstream = TestUpstream()
        try await upstream.run { up in
            let config = Self.config(port: up) { $0.maxHeaderBytes = 8192 }
            try await GatewayHarness.with(config) { gateway, base in
                let port = Self.port(base)
                let big = try await RawHTTP.exchange(
                    port: port, "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 20000))\r\n\r\n")
                #expect(big.hasPrefix("HTTP/1.1 431"), "\(big.prefix(200))")
                #expect(big.contains(#""type":"invalid_request_error""#) && big.contains("max_header_bytes"), "\(big)")
                let many = (0..<150).map { "X-H\($0): v\r\n" }.joined()
                let manyAnswer = try await RawHTTP.exchange(port: port, "GET /v1/models HTTP/1.1\r\nHost: x\r\n\(many)\r\n")
                #expect(manyAnswer.hasPrefix("HTTP/1.1 431") && manyAnswer.contains("header fields"), "\(manyAnswer.prefix(300))")
                let body = String(repeating: "x", count: 5000)
                let large = try await TestClient.post("\(base)/v1/chat/completions", body)
                #expect(large.status == 413 && large.body.contains(#""error""#), "\(large.body)")
                let garbage = try await RawHTTP.exchange(port: port, "NOT HTTP AT ALL\r\n\r\n")
                #expect(garbage.hasPrefix("HTTP/1.1 400"), "\(garbage)")
                #expect(Self.refused(gateway, "header_too_large") == 2)
                #expect(Self.refused(gateway, "body_too_large") == 1)
                #expect(Self.refused(gateway, "bad_request") == 1)
                // The gateway serves on.
                #expect(try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat()).status == 200)
            }
        }
    }

    @Test func idleConnectionsCloseAndOneAddressHoldsAtMostItsShare() async throws {
        let upstream = TestUpstream()
        try await upstream.run { up in
            let config = Self.config(port: up) {
                $0.idleTimeout = .milliseconds(300)
                $0.maxConnectionsPerClient = 2
            }
            try await GatewayHarness.with(config) { gateway, base in
                let port = Self.port(base)
                // A keep-alive connection that sends nothing is closed (the server's close ends the read).
                let started = ContinuousClock.now
                let idle = try await RawHTTP.exchange(port: port, "", timeout: .seconds(5))
                #expect(idle.isEmpty && ContinuousClock.now - started < .seconds(4))

                // Two held connections; a third from the same address is refused.
                let held = try await (Self.hold(port), Self.hold(port))
                let third = try await RawHTTP.exchange(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout: .seconds(5))
                #expect(third.hasPrefix("HTTP/1.1 429") && third.contains("max_connections_per_client"), "\(third)")
                #expect(Self.refused(gateway, "connections_per_client") == 1)
                try await held.0.close()
                try await held.1.close()
                #expect(await Poll.until { gateway.clientConnections.count("127.0.0.1") == 0 }, "both closes were seen")
                let again = try await RawHTTP.exchange(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                #expect(again.hasPrefix("HTTP/1.1 200"), "room again once they closed: \(again)")
            }
        }
    }

    /// A connection that has sent a request head and keeps its body coming slowly enough to stay
    /// within the limits (it is held open until closed).
    static func hold(_ port: Int) async throws -> any Channel {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).get()
        return channel
    }
}
