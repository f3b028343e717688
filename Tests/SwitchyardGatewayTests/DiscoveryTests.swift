import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

@Suite struct DNSMessageTests {
    @Test func answersSurviveTheWireIncludingCompressedNames() throws {
        let query = DNSMessage.query(id: 0xBEEF, name: "_http._tcp.vllm.ml.svc.cluster.local", type: .srv)
        #expect(DNSMessage.question(query)?.name == "_http._tcp.vllm.ml.svc.cluster.local")
        let answers: [DNSMessage.Record] = [
            .init(
                name: "_http._tcp.vllm.ml.svc.cluster.local", ttl: 30,
                data: .srv(priority: 0, weight: 50, port: 8000, target: "a.vllm.ml.svc.cluster.local"))
        ]
        let additional: [DNSMessage.Record] = [
            .init(name: "a.vllm.ml.svc.cluster.local", ttl: 5, data: .address("10.1.2.3")),
            .init(name: "a.vllm.ml.svc.cluster.local", ttl: 5, data: .address("fd00::1:2")),
        ]
        let bytes = try #require(DNSMessage.response(to: query, answers: answers, additional: additional))
        let parsed = try DNSMessage.parse(bytes)
        #expect(parsed.id == 0xBEEF && parsed.rcode == 0 && !parsed.truncated)
        #expect(parsed.answers == answers)
        #expect(parsed.additional == additional)

        // A CNAME answer whose A record points back at the question's name (0xC00C).
        var compressed = Array(DNSMessage.query(id: 7, name: "x.test", type: .a))
        compressed[2] = 0x81
        compressed[3] = 0x80
        compressed[7] = 1  // one answer
        compressed += [0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x04, 10, 0, 0, 9]
        let a = try DNSMessage.parse(compressed)
        #expect(a.answers == [.init(name: "x.test", ttl: 60, data: .address("10.0.0.9"))])
        #expect(throws: DNSMessage.ParseError.self) { try DNSMessage.parse(Array(compressed.prefix(compressed.count - 2))) }
        // A pointer loop is refused, not followed forever.
        #expect(throws: DNSMessage.ParseError.self) { try DNSMessage.parse(Array(compressed.prefix(12)) + [0xC0, 0x0C]) }
    }

    @Test func shortNamesFollowTheSearchListLikeAPodsResolver() {
        let conf = ResolvConf(
            parsing: "search ml.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n")
        #expect(conf.nameservers == ["10.96.0.10"])
        #expect(conf.candidates("vllm").first == "vllm.ml.svc.cluster.local")
        #expect(conf.candidates("vllm").last == "vllm")
        #expect(conf.candidates("vllm.ml.svc.cluster.local.") == ["vllm.ml.svc.cluster.local"])
        #expect(ResolvConf(nameservers: [], search: ["a"], ndots: 1).candidates("x.y") == ["x.y", "x.y.a"])
    }

    @Test func endpointSlicesGiveReadyAddressesOnTheNamedPort() throws {
        let slice = try JSONParser.parse(
            #"{"metadata":{"name":"vllm-abc"},"addressType":"IPv4","ports":[{"name":"metrics","port":9090},{"name":"http","port":8000}],"endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true}},{"addresses":["10.0.0.2"],"conditions":{"ready":false}},{"addresses":["10.0.0.3"],"conditions":{"ready":true,"terminating":true}},{"addresses":["10.0.0.4"]}]}"#
        )
        #expect(EndpointSlices.endpoints(slice, port: "http").map(\.host) == ["10.0.0.1", "10.0.0.4"])
        #expect(EndpointSlices.endpoints(slice, port: "9090").map(\.port) == [9090, 9090])
        #expect(EndpointSlices.endpoints(slice, port: nil).first?.port == 8000, "the port named http when there are several")
        #expect(EndpointSlices.endpoints(slice, port: "grpc").isEmpty)
    }
}

/// Backends from DNS against a server the test runs on loopback: records added and removed
/// while requests flow; a vanished backend drains; a failing resolver keeps what was found.
@Suite(.tags(.timing)) struct DNSDiscoveryTests {
    static func config(_ discovery: DiscoveryConfig) -> GatewayConfig {
        var model = ModelConfig(name: "m", backends: [])
        model.discovery = discovery
        return GatewayHarness.config(models: [model])
    }

    static func discovery(_ source: DiscoveryConfig.Source, resolver: Int) -> DiscoveryConfig {
        var d = DiscoveryConfig(source: source)
        d.path = "/ok/v1"
        d.upstreamModel = "upstream-model"
        d.resolver = "127.0.0.1:\(resolver)"
        d.minInterval = .milliseconds(50)
        return d
    }

    static func urls(_ gateway: Gateway) -> [String] {
        gateway.pools["m"]!.snapshot().filter { $0.state == .serving }.map(\.backend.id).sorted()
    }

    @Test func srvRecordsAddAndRemoveBackendsAndAVanishedOneDrains() async throws {
        let (a, b, dns) = (TestUpstream(), TestUpstream(), TestDNSServer())
        try await a.run { pa in
            try await b.run { pb in
                try await dns.run { dnsPort in
                    let name = "_http._tcp.vllm.test"
                    dns.set("a.vllm.test", [.init(name: "a.vllm.test", ttl: 0, data: .address("127.0.0.1"))])
                    dns.set("b.vllm.test", [.init(name: "b.vllm.test", ttl: 0, data: .address("127.0.0.1"))])
                    let srvA = DNSMessage.Record(name: name, ttl: 0, data: .srv(priority: 0, weight: 1, port: UInt16(pa), target: "a.vllm.test"))
                    let srvB = DNSMessage.Record(name: name, ttl: 0, data: .srv(priority: 0, weight: 1, port: UInt16(pb), target: "b.vllm.test"))
                    dns.set(name, [srvA])
                    let (urlA, urlB) = ("http://127.0.0.1:\(pa)/ok/v1", "http://127.0.0.1:\(pb)/ok/v1")
                    try await GatewayHarness.with(Self.config(Self.discovery(.srv(name: name), resolver: dnsPort))) { gateway, base in
                        #expect(await Poll.until { Self.urls(gateway) == [urlA] }, "found from the SRV record")
                        #expect(try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat()).status == 200)
                        dns.set(name, [srvA, srvB])
                        #expect(await Poll.until { Self.urls(gateway) == [urlA, urlB].sorted() }, "a record added during the run")

                        // A stream in flight on the backend whose record goes away finishes.
                        async let held = TestClient.post("\(base)/v1/chat/completions", TestClient.chat(stream: true, extra: #","hold":true"#))
                        #expect(await Poll.until { a.count("ok") + b.count("ok") == 2 })
                        let onA = a.count("ok") == 2
                        dns.set(name, [onA ? srvB : srvA])
                        let (gone, stays) = onA ? (urlA, urlB) : (urlB, urlA)
                        #expect(await Poll.until { gateway.pools["m"]!.snapshot().first { $0.backend.id == gone }?.state == .draining })
                        for _ in 0..<4 {
                            #expect(try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat()).status == 200)
                        }
                        #expect((onA ? b : a).count("ok") >= 4, "new requests go to the backend that stays")
                        (onA ? a : b).release()
                        let reply = try await held
                        #expect(reply.status == 200 && reply.body.contains("[DONE]"), "\(reply.body)")
                        #expect(await Poll.until { Self.urls(gateway) == [stays] }, "gone once idle")

                        // The resolver fails: what was found keeps serving.
                        dns.failing.store(true, ordering: .relaxed)
                        let before = dns.questions(name)
                        #expect(await Poll.until { dns.questions(name) >= before + 2 })
                        #expect(Self.urls(gateway) == [stays])
                        #expect(try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat()).status == 200)
                        #expect(
                            String(decoding: gateway.metrics.render(), as: UTF8.self).contains(
                                "switchyard_discovery_errors_total{model=\"m\",source=\"srv:\(name)\"}"))
                    }
                }
            }
        }
    }

    @Test func addressRecordsUseTheConfiguredPortAndAnEmptyAnswerEmptiesThePool() async throws {
        let (a, dns) = (TestUpstream(), TestDNSServer())
        try await a.run { pa in
            try await dns.run { dnsPort in
                dns.set("vllm.test", [.init(name: "vllm.test", ttl: 1, data: .address("127.0.0.1"))])
                let discovery = Self.discovery(.dns(name: "vllm.test", port: pa), resolver: dnsPort)
                try await GatewayHarness.with(Self.config(discovery)) { gateway, base in
                    #expect(await Poll.until { Self.urls(gateway) == ["http://127.0.0.1:\(pa)/ok/v1"] })
                    #expect(try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat()).status == 200)
                    // The record's TTL (1 s) paces the questions.
                    let asked = dns.questions("vllm.test")
                    #expect(await Poll.until(.seconds(5)) { dns.questions("vllm.test") > asked })
                    // The Service scaled to zero: the name has no address records left.
                    dns.set("vllm.test", [])
                    #expect(await Poll.until { Self.urls(gateway).isEmpty })
                    let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                    #expect(reply.status == 503, "\(reply.body)")
                }
            }
        }
    }
}
