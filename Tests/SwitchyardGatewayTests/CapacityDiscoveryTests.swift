import Foundation
import NIOCore
import SwitchyardCore
import SwitchyardScheduling
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// Backends without `max_inflight`: the gateway asks the engine how many requests it runs at once
/// (or learns it from its waiting queue), so the excess waits in the lanes, in lane order.
@Suite(.serialized, .tags(.timing)) struct CapacityDiscoveryTests {
    /// These tests fill the engine with batch requests (see ``GatewayHarness/batchMayFillTheEngine(_:)``).
    static func config(port: Int, tweak: (inout GatewayConfig) -> Void = { _ in }) -> GatewayConfig {
        GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])]) {
            GatewayHarness.batchMayFillTheEngine(&$0)
            tweak(&$0)
        }
    }

    static func send(_ base: String, _ tag: String, lane: String? = nil, extra: String = "") -> Task<TestClient.Reply, any Error> {
        let headers = lane.map { ["x-switchyard-lane": $0] } ?? [:]
        return Task {
            try await TestClient.post(
                "\(base)/v1/chat/completions", TestClient.chat(extra: #","tag":"\#(tag)","max_tokens":4\#(extra)"#),
                headers: headers, client: TestClient.wide)
        }
    }

    static func metrics(_ gateway: Gateway) -> String { String(decoding: gateway.metrics.render(), as: UTF8.self) }

    @Test(arguments: [
        (TestUpstream.Engine.llamacpp(slots: 2), CapacitySource.props, 2048),
        (.sglang(slots: 2), .serverInfo, 8192), (.tgi(slots: 2), .info, 2048),
    ])
    func anEngineThatReportsTwoSlotsGetsTwoAndTheRestWaitInTheLanes(engine: TestUpstream.Engine, source: CapacitySource, tokens: Int) async throws {
        let upstream = TestUpstream(engine: engine)
        try await upstream.run { port in
            try await GatewayHarness.with(Self.config(port: port)) { gateway, base in
                let pool = try #require(gateway.pools["m"])
                #expect(await Poll.until { pool.capacity(0)?.source == source })
                #expect(pool.capacity(0) == ModelPool.CapacityStatus(source: source, limit: 2, tokens: tokens))
                let backend = "http://127.0.0.1:\(port)/ok/v1"
                #expect(
                    await Poll.until {
                        Self.metrics(gateway).contains(#"switchyard_backend_capacity{backend="\#(backend)",source="\#(source.rawValue)"} 2"#)
                    })

                let b0 = Self.send(base, "b0", lane: "batch", extra: #","hold":true"#)
                let b1 = Self.send(base, "b1", lane: "batch", extra: #","hold2":true"#)
                #expect(await Poll.until { upstream.arrivals.count == 2 })
                let b2 = Self.send(base, "b2", lane: "batch")
                #expect(await Poll.until { pool.queued(lane: "batch") == 1 }, "the third request waits in Switchyard, not in the engine")
                #expect(await Poll.until { Self.metrics(gateway).contains(#"switchyard_queue_depth{model="m",lane="batch"} 1"#) })
                let b3 = Self.send(base, "b3", lane: "batch")
                #expect(await Poll.until { pool.queued(lane: "batch") == 2 })
                let realtime = Self.send(base, "r")
                #expect(await Poll.until { pool.queued(lane: "realtime") == 1 })
                #expect(upstream.arrivals.count == 2, "nothing beyond the engine's 2 slots was sent")

                upstream.release()  // b0 ends: one slot frees
                #expect(try await realtime.value.status == 200)
                for task in [b0, b2, b3] { #expect(try await task.value.status == 200) }
                #expect(Array(upstream.arrivals.dropFirst(2)) == ["r", "b2", "b3"], "the realtime request queued last went first")
                upstream.releaseSecond()
                #expect(try await b1.value.status == 200)

                let ready = try await TestClient.get("\(base)/readyz")
                let capacity = ready.json?["models"]?["m"]?["backends"]?.arrayValue?.first?["capacity"]
                #expect(capacity?["limit"]?.intValue == 2 && capacity?["source"]?.stringValue == source.rawValue, "\(ready.body)")
            }
        }
    }

    @Test func aConfiguredMaxInflightWinsOverTheEngine() async throws {
        let upstream = TestUpstream(engine: .llamacpp(slots: 2))
        try await upstream.run { port in
            var config = Self.config(port: port)
            config.models[0].backends[0].maxInflight = 5
            try await GatewayHarness.with(config) { gateway, _ in
                let pool = try #require(gateway.pools["m"])
                #expect(await Poll.until { Self.metrics(gateway).contains(#"source="config"} 5"#) })
                #expect(pool.capacity(0) == ModelPool.CapacityStatus(source: .config, limit: 5, tokens: nil))
                #expect(pool.discoverable().isEmpty)
            }
        }
    }

    @Test func aWindowIsLearnedFromTheEnginesWaitingQueue() async throws {
        // Reports requests beyond 3 as waiting, like vLLM's num_requests_waiting.
        let upstream = TestUpstream(engine: .queueing(runs: 3))
        try await upstream.run { port in
            try await GatewayHarness.with(Self.config(port: port)) { gateway, base in
                let pool = try #require(gateway.pools["m"])
                #expect(await Poll.until { pool.capacity(0)?.source == .learned })
                #expect(pool.capacity(0)?.limit == LearnedWindow.Settings().initial)
                let tasks = (0..<8).map { Self.send(base, "q\($0)", lane: "batch", extra: #","hold":true"#) }
                #expect(await Poll.until { upstream.arrivals.count == 4 && pool.queued(lane: "batch") == 4 })
                // Two scrapes in a row see one waiting inside the engine: the window drops to 3.
                #expect(await Poll.until(.seconds(10)) { pool.capacity(0)?.limit == 3 })
                upstream.release()
                for task in tasks { #expect(try await task.value.status == 200) }
                #expect(upstream.arrivals.count == 8)
                #expect(pool.capacity(0)?.limit == 3)
            }
        }
    }

    @Test func aBackendThatReportsNothingRunsUnderTheDefaultLimit() async throws {
        let upstream = TestUpstream(engine: .plain)
        try await upstream.run { port in
            let config = Self.config(port: port) { $0.upstream.defaultMaxInflight = 2 }
            try await GatewayHarness.with(config) { gateway, base in
                let pool = try #require(gateway.pools["m"])
                #expect(await Poll.until { pool.capacity(0)?.source == .default })
                #expect(pool.capacity(0)?.limit == 2)
                let held = (0..<2).map { Self.send(base, "h\($0)", extra: #","hold":true"#) }
                #expect(await Poll.until { upstream.arrivals.count == 2 })
                let third = Self.send(base, "x")
                #expect(await Poll.until { pool.queued(lane: "realtime") == 1 })
                upstream.release()
                for task in held + [third] { #expect(try await task.value.status == 200) }
            }
        }
    }

    @Test func oddAnswersFallBackToTheDefaultWithoutHoldingUpServing() async throws {
        // /props is not JSON, /get_server_info says 0 slots, /info hangs; /metrics has no queue.
        let upstream = TestUpstream(engine: .odd)
        try await upstream.run { port in
            try await GatewayHarness.with(Self.config(port: port) { $0.upstream.discoveryTimeout = .seconds(2) }, waitForDiscovery: false) {
                gateway, base in
                let pool = try #require(gateway.pools["m"])
                let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                #expect(reply.status == 200)
                #expect(pool.capacity(0)?.source == .pending, "served while /info still hangs")
                #expect(await Poll.until(.seconds(10)) { pool.capacity(0)?.source == .default })
                #expect(pool.capacity(0)?.limit == UpstreamConfig().defaultMaxInflight)
            }
        }
    }

    @Test func registeredBackendsAreDiscoveredBeforeTheAnswer() async throws {
        let upstream = TestUpstream(engine: .tgi(slots: 3))
        try await upstream.run { port in
            var config = GatewayHarness.config(models: [GatewayHarness.model("m", [])])
            config.admin.token = "t"
            try await GatewayHarness.with(config) { gateway, base in
                let reply = try await TestClient.post(
                    "\(base)/admin/backends", #"{"url":"http://127.0.0.1:\#(port)/ok/v1","model":"m","ttl":30}"#,
                    headers: ["authorization": "Bearer t"])
                #expect(reply.status == 201)
                #expect(
                    reply.json?["capacity"]?["limit"]?.intValue == 3 && reply.json?["capacity"]?["source"]?.stringValue == "info", "\(reply.body)")
                let bad = try await TestClient.post(
                    "\(base)/admin/backends", #"{"url":"http://127.0.0.1:\#(port)/x/v1","model":"m","ttl":30,"max_inflight":-1}"#,
                    headers: ["authorization": "Bearer t"])
                #expect(bad.status == 400 && bad.json?["error"]?["param"]?.stringValue == "max_inflight")
            }
        }
    }
}

/// Connect timeouts under load, on the pool alone.
struct ConnectStormTests {
    static func pool(defaultMaxInflight: Int) -> ModelPool {
        var health = HealthCheckConfig()
        health.enabled = false
        return ModelPool(
            config: ModelConfig(name: "m", backends: [BackendConfig(url: "http://127.0.0.1:9/v1")]), health: health,
            outlier: OutlierConfig(), defaultMaxInflight: defaultMaxInflight)
    }

    static func ticket() -> ModelPool.Ticket {
        ModelPool.Ticket(lane: "realtime", tenant: "t", inputTokens: 10, maxOutputTokens: 10, startBy: nil, giveUpAt: .now + .seconds(60))
    }

    @Test func aConnectTimeoutWhileBusyHalvesTheWindowAndRequeues() throws {
        let pool = Self.pool(defaultMaxInflight: 16)
        #expect(pool.capacity(0) == ModelPool.CapacityStatus(source: .pending, limit: 16, tokens: nil))
        var leases: [ModelPool.Lease] = []
        for _ in 0..<10 { leases.append(try #require(pool.tryAcquireNow(Self.ticket()))) }
        let (requeue, change) = pool.connectTimedOut(leases[0])
        #expect(requeue, "nine others were in flight: the backend is alive but cannot accept this fast")
        #expect(change == .shrank(from: 16, to: 5, reason: "connect timeout with 10 in flight"))
        #expect(pool.capacity(0)?.limit == 5)
        // What discovery then finds keeps the shrunk window (pending → default).
        pool.applyCapacity(0, .unknown)
        #expect(pool.capacity(0) == ModelPool.CapacityStatus(source: .default, limit: 5, tokens: nil))
        for lease in leases { pool.release(lease, outcome: .neutral) }
        let alone = try #require(pool.tryAcquireNow(Self.ticket()))
        #expect(pool.connectTimedOut(alone).requeue == false, "nothing else in flight: an ordinary connect failure")
    }

    @Test func aConfiguredLimitIsNotShrunk() throws {
        var health = HealthCheckConfig()
        health.enabled = false
        let pool = ModelPool(
            config: ModelConfig(name: "m", backends: [BackendConfig(url: "http://127.0.0.1:9/v1", maxInflight: 8)]),
            health: health, outlier: OutlierConfig())
        let leases = try (0..<4).map { _ in try #require(pool.tryAcquireNow(Self.ticket())) }
        #expect(pool.connectTimedOut(leases[0]).requeue == false)
        #expect(pool.capacity(0)?.limit == 8)
    }
}

/// The connect storm end to end: a backend with a full listen backlog while it serves a request.
@Suite(.serialized, .tags(.timing)) struct ConnectStormGatewayTests {
    /// On the fast path (the attempt is handed to the router, which queues it again) and on the
    /// router path alone.
    @Test(arguments: [true, false])
    func aConnectTimeoutUnderLoadWaitsInTheLaneInsteadOfFailing(fastPath: Bool) async throws {
        let backend = try StingyBackend()
        defer { backend.stop() }
        let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(backend.port)/v1"])]) { c in
            c.server.fastPath = fastPath
            c.upstream.connectTimeout = .milliseconds(250)
            c.upstream.defaultMaxInflight = 8
        }
        try await GatewayHarness.with(config) { gateway, base in
            let pool = try #require(gateway.pools["m"])
            #expect(await Poll.until { pool.capacity(0)?.source == .default }, "no info endpoint, no /metrics")
            // Every discovery GET first: a late one would take the one accept meant for A.
            #expect(await Poll.until { backend.served.withLock { $0.count } == 4 }, "4 discovery GETs answered")
            backend.acceptOneMoreThenStop()
            let a = Task {
                try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(extra: #","hold":true"#), client: TestClient.wide)
            }
            #expect(await Poll.until { backend.served.withLock { $0.count } == 5 }, "4 discovery GETs answered; A received and held")
            let filler = backend.fillBacklog()
            defer { close(filler) }
            // B's connection is never accepted: its connect times out while A is in flight.
            let b = Task { try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(), client: TestClient.wide) }
            #expect(await Poll.until { pool.capacity(0)?.limit == 1 }, "the window halved from min(8, 2 in flight)")
            #expect(await Poll.until { pool.queued(lane: "realtime") == 1 }, "B waits in its lane, it did not fail")
            backend.acceptAll()
            // The backlog drains (the filler is accepted) before A ends and B goes again.
            #expect(await Poll.until { backend.accepted == 6 }, "4 discovery connections, A and the filler")
            backend.releaseHeld()
            #expect(try await a.value.status == 200)
            let reply = try await b.value
            #expect(reply.status == 200, "\(reply.body)")
            #expect(reply.headers["x-switchyard-attempts"] == "2")
            let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
            #expect(metrics.contains(#"switchyard_upstream_errors_total{backend="http://127.0.0.1:\#(backend.port)/v1",kind="connect"} 1"#))
            #expect(!metrics.contains("switchyard_retries_total"), "waiting again in the lane is not a retry")
            #expect(pool.snapshot().first?.ejected == false)
        }
    }
}

/// Connect failures are read from typed errors (NIO's and AsyncHTTPClient's), on both paths.
@Suite(.tags(.timing)) struct ConnectFailureKindTests {
    @Test(arguments: [true, false])
    func aRefusedConnectionIsAConnectFailure(fastPath: Bool) async throws {
        let backend = "http://127.0.0.1:1/v1"  // nothing listens on port 1
        let config = GatewayHarness.config(models: [GatewayHarness.model("m", [backend])]) {
            $0.server.fastPath = fastPath
            // AsyncHTTPClient retries a refused connect until its connect timeout.
            $0.upstream.connectTimeout = .milliseconds(300)
        }
        try await GatewayHarness.with(config) { gateway, base in
            let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
            #expect(reply.status == 502, "\(reply.body)")
            let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
            #expect(metrics.contains(#"switchyard_upstream_errors_total{backend="\#(backend)",kind="connect"}"#), "\(metrics)")
            #expect(!metrics.contains(#"kind="reset""#))
        }
    }

    @Test func typedErrorsAreClassified() {
        #expect(UpstreamFailure.kind(of: IOError(errnoCode: ECONNREFUSED, reason: "connect")) == .connect)
        #expect(UpstreamFailure.kind(of: IOError(errnoCode: ECONNRESET, reason: "read")) == .reset)
        #expect(UpstreamFailure.kind(of: ChannelError.connectTimeout(.milliseconds(250))) == .connect)
        #expect(UpstreamFailure.isConnectTimeout(ChannelError.connectTimeout(.milliseconds(250))))
        #expect(!UpstreamFailure.isConnectTimeout(IOError(errnoCode: ECONNREFUSED, reason: "connect")))
        #expect(UpstreamFailure.kind(of: ChannelError.eof) == .reset)
    }
}
