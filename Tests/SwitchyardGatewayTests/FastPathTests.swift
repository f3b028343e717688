import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import SwitchyardCore
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardGateway

/// The event-loop fast path must answer exactly as the router path does, and hand over to it
/// whenever it cannot finish a request itself.
@Suite(.serialized, .tags(.timing)) struct FastPathTests {
    static func metric(_ gateway: Gateway, _ line: String) -> Bool {
        String(decoding: gateway.metrics.render(), as: UTF8.self).contains(line)
    }

    /// A gateway serving model `m` from one test upstream `behaviour`: the upstream, the gateway,
    /// its base URL and port.
    static func withGateway(
        _ behaviour: String = "ok", tweak: @escaping @Sendable (inout GatewayConfig) -> Void = { _ in },
        _ body: @escaping @Sendable (TestUpstream, Gateway, String, Int) async throws -> Void
    ) async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/\(behaviour)/v1"])], tweak: tweak)
            try await GatewayHarness.with(config) { gateway, base in
                try await body(upstream, gateway, base, Int(base.split(separator: ":").last!)!)
            }
        }
    }

    @Test func answersLikeTheRouterPath() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            var replies: [Bool: (TestClient.Reply, TestClient.Reply)] = [:]
            for fast in [true, false] {
                let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])]) {
                    $0.server.fastPath = fast
                }
                replies[fast] = try await GatewayHarness.with(config) { gateway, base in
                    // Header names in any case.
                    let whole = try await TestClient.post(
                        "\(base)/v1/chat/completions", TestClient.chat(extra: #","logprobs":true"#),
                        headers: ["X-Request-ID": "same-id", "X-Switchyard-LANE": "realtime"])
                    let embedding = try await TestClient.post("\(base)/v1/embeddings", #"{"model":"m","input":"hello","encoding_format":"float"}"#)
                    #expect(embedding.status == 200)
                    #expect(embedding.json?["model"] == .string("m"))
                    let stream = try await TestClient.post(
                        "\(base)/v1/chat/completions",
                        TestClient.chat(stream: true, extra: #","stream_options":{"include_usage":true}"#),
                        headers: ["x-request-id": "same-id"])
                    #expect(Self.metric(gateway, #"switchyard_fast_path_total{outcome="served"} 3"#) == fast)
                    #expect(Self.metric(gateway, #"switchyard_requests_total{model="m",lane="realtime",code="200"} 2"#))
                    #expect(Self.metric(gateway, #"switchyard_output_tokens_total{model="m"} 4"#), "usage of both answers counted")
                    return (whole, stream)
                }
            }
            let (fastWhole, fastStream) = try #require(replies[true])
            let (routerWhole, routerStream) = try #require(replies[false])
            #expect(fastWhole.status == 200)
            #expect(fastWhole.body == routerWhole.body, "same bytes to the client")
            #expect(fastWhole.json?["model"] == .string("m"))
            #expect(fastStream.body == routerStream.body)
            #expect(TestClient.events(fastStream.body).last == "[DONE]")
            for header in ["content-type", "x-request-id", "x-switchyard-backend", "x-switchyard-attempts", "x-switchyard-lane"] {
                #expect(fastWhole.headers[header] == routerWhole.headers[header], "\(header)")
                #expect(fastStream.headers[header] == routerStream.headers[header], "\(header)")
            }
        }
    }

    @Test func headerNamesMatchInAnyCase() {
        #expect(FastPath.sameName("X-Request-ID", "x-request-id"))
        #expect(FastPath.sameName("content-type", "content-type"))
        #expect(!FastPath.sameName("x-request-ix", "x-request-id"))
        #expect(!FastPath.sameName("x-request-i", "x-request-id"))
        #expect(!FastPath.sameName("content\rtype", "content-type"), "only ASCII letters fold")
    }

    @Test func pipelinedRequestsAreAnsweredInOrderAndConnectionCloseIsHonoured() async throws {
        try await FastPathTests.withGateway { upstream, gateway, base, gatewayPort in
            func post(_ tag: String, close: Bool = false) -> String {
                let body = TestClient.chat(extra: #","tag":"\#(tag)""#)
                return "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n"
                    + (close ? "connection: close\r\n" : "") + "\r\n" + body
            }
            // fast, router (models list), router (bad JSON), fast: one write, answers in order.
            let text =
                post("first") + "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"
                + "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n{oops"
                + post("last", close: true)
            let received = try await RawHTTP.exchange(port: gatewayPort, text)
            let order = [#""tag":"first""#, #""object":"list""#, #""code":"invalid_json""#, #""tag":"last""#].map { marker in
                received.range(of: marker)?.lowerBound
            }
            #expect(order.allSatisfy { $0 != nil }, "every answer arrived: \(received)")
            let positions = order.compactMap { $0 }
            #expect(positions == positions.sorted(), "answers in request order")
            #expect(received.components(separatedBy: "HTTP/1.1 ").count - 1 == 4)
            #expect(Self.metric(gateway, #"switchyard_fast_path_total{outcome="served"} 2"#))
            #expect(Self.metric(gateway, #"switchyard_fast_path_total{outcome="declined"} 1"#), "the bad request went to the router")
        }
    }

    @Test func aFailedFastAttemptIsRetriedByTheRouter() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            // The heavy replica resets every connection: the fast path tries it first, then
            // hands the request to the router, which retries on the other one.
            let model = GatewayHarness.model(
                "m", ["http://127.0.0.1:\(port)/reset-before/v1", "http://127.0.0.1:\(port)/ok/v1"],
                weights: [1, 0.01])
            let config = GatewayHarness.config(models: [model])
            try await GatewayHarness.with(config) { gateway, base in
                let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(), headers: ["x-request-id": "retry-me"])
                #expect(reply.status == 200)
                #expect(reply.headers["x-switchyard-attempts"] == "2")
                #expect(reply.headers["x-switchyard-backend"] == "http://127.0.0.1:\(port)/ok/v1")
                #expect(reply.headers["x-request-id"] == "retry-me", "the router continued the same request")
                #expect(upstream.count("reset-before") == 1)
                #expect(Self.metric(gateway, #"switchyard_fast_path_total{outcome="handed_back"} 1"#))
                #expect(Self.metric(gateway, #"switchyard_retries_total{reason="reset"} 1"#), "the retry spent budget like any other")
                #expect(Self.metric(gateway, #"switchyard_requests_total{model="m",lane="realtime",code="200"} 1"#), "counted once")
            }
        }
    }

    @Test func gracefulShutdownWaitsForAFastPathAnswer() async throws {
        try await FastPathTests.withGateway { upstream, gateway, base, gatewayPort in
            async let held = TestClient.post("\(base)/v1/chat/completions", TestClient.chat(extra: #","hold":true"#))
            #expect(await Poll.until { upstream.count("ok") == 1 }, "the request reached the backend")
            await gateway.shutdown()
            #expect(await Poll.until { gateway.isDraining })
            upstream.release()
            let reply = try await held
            #expect(reply.status == 200, "the in-flight answer completed during the drain")
            #expect(Self.metric(gateway, #"switchyard_fast_path_total{outcome="served"} 1"#))
        }
    }

    @Test func aClientLeavingMidAnswerReleasesTheSlot() async throws {
        try await FastPathTests.withGateway { upstream, gateway, base, gatewayPort in
            let body = TestClient.chat(extra: #","hold":true"#)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: gatewayPort).get()
            try await channel.writeAndFlush(
                ByteBuffer(
                    string:
                        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
                ))
            #expect(await Poll.until { upstream.count("ok") == 1 })
            let pool = try #require(gateway.pools["m"])
            #expect(pool.inflight(0) == 1)
            try await channel.close()
            #expect(await Poll.until { pool.inflight(0) == 0 }, "the slot came back when the client left")
            #expect(await Poll.until { Self.metric(gateway, #"switchyard_requests_total{model="m",lane="realtime",code="499"} 1"#) })
            upstream.release()
        }
    }
}

@Suite(.serialized, .tags(.timing)) struct FastPathConnectionTests {
    @Test func aPooledConnectionTheBackendDroppedIsResentNotFailed() async throws {
        try await FastPathTests.withGateway("once-per-connection") { upstream, gateway, base, gatewayPort in
            let first = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
            #expect(first.status == 200)
            // The next request goes out on the pooled connection, which the backend resets.
            let second = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
            #expect(second.status == 200)
            #expect(second.headers["x-switchyard-attempts"] == "1", "a resend on a fresh connection is not a retry")
            #expect(upstream.count("once-per-connection") == 3)
            #expect(FastPathTests.metric(gateway, #"switchyard_retries_total{reason="stale_connection"} 1"#))
            #expect(FastPathTests.metric(gateway, #"switchyard_fast_path_total{outcome="served"} 2"#))
            #expect(!FastPathTests.metric(gateway, "outcome=\"handed_back\""))
        }
    }

    @Test func theIdleLimitTakesOverFromALongerFirstByteLimit() async throws {
        // One chunk, then 5 s of silence: the 300 ms idle limit ends the stream, not the 10 s
        // first-byte limit nor the backend giving up.
        try await FastPathTests.withGateway(
            "trickle",
            tweak: {
                $0.upstream.timeouts.firstByte = .seconds(10)
                $0.upstream.timeouts.idle = .milliseconds(300)
            }
        ) { _, gateway, base, _ in
            let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(stream: true))
            let last = try #require(TestClient.events(reply.body).last)
            #expect(last.contains("idle timeout"), "\(last)")
            #expect(FastPathTests.metric(gateway, "kind=\"idle_timeout\"} 1"))
        }
    }

    /// On both paths: the fast path writes to the connection, the router path through a
    /// back-pressured response body.
    @Test(arguments: [true, false]) func aSlowClientPausesTheBackendAndLosesNothing(fastPath: Bool) async throws {
        let idle = Duration.milliseconds(200)
        try await FastPathTests.withGateway(tweak: {
            $0.upstream.timeouts.idle = idle
            $0.server.fastPath = fastPath
        }) { upstream, gateway, base, gatewayPort in
            let tokens = 60_000
            let body = TestClient.chat(stream: true, extra: #","max_tokens":\#(tokens)"#)
            let sink = ByteSink()
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.autoRead, value: false)
                .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(sink) } }
                .connect(host: "127.0.0.1", port: gatewayPort).get()
            try await channel.writeAndFlush(
                ByteBuffer(
                    string:
                        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
                ))
            // Not reading: the gateway's socket fills, and it stops reading from the backend.
            #expect(await Poll.until(.seconds(20)) { FastPathTests.metric(gateway, "switchyard_client_backpressure_total 1") })
            // The subject of the test: a client that stays away longer than the idle timeout is
            // not the backend going silent.
            try await Task.sleep(for: idle * 3)
            try await channel.setOption(.autoRead, value: true)
            channel.read()
            try await channel.closeFuture.get()
            let text = sink.text
            #expect(text.components(separatedBy: #""content":"t"#).count - 1 == tokens, "every token arrived")
            #expect(text.contains("data: [DONE]"))
            #expect(!text.contains(#""error""#), "no idle timeout while paused")
        }
    }
}

/// Collects what a raw connection receives.
final class ByteSink: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let received = Mutex(ByteBuffer())

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        received.withLock { $0.writeBuffer(&chunk) }
    }

    var text: String { received.withLock { String(buffer: $0) } }
}
