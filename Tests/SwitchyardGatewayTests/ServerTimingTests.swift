import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// `Server-Timing`: where a request's time went, hop by hop, on both paths; the same fields in
/// the access log.
@Suite struct ServerTimingTests {
    /// `name;dur=1.2;desc="…", …` → name → milliseconds.
    static func parse(_ header: String?) -> [String: Double] {
        var out: [String: Double] = [:]
        for entry in (header ?? "").split(separator: ",") {
            let fields = entry.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let name = fields.first, let dur = fields.first(where: { $0.hasPrefix("dur=") }) else { continue }
            out[name] = Double(dur.dropFirst(4))
        }
        return out
    }

    @Test func thePartsAddUpToTheTotal() {
        let start = ContinuousClock.now
        var hops = HopTiming()
        hops.connect = .milliseconds(3)
        hops.sent = start + .milliseconds(20)
        hops.firstByteArrived(at: start + .milliseconds(70))
        let parts = hops.parts(start: start, queue: .milliseconds(10), now: start + .milliseconds(120))
        #expect(parts.upstream == .milliseconds(100) && parts.ttfb == .milliseconds(50))
        #expect(parts.gateway == .milliseconds(7), "120 − 10 queue − 3 connect − 100 upstream")
        let header = Self.parse(parts.serverTiming)
        #expect(header == ["queue": 10, "connect": 3, "ttfb": 50, "upstream": 100, "gateway": 7, "total": 120])
        // A refusal never reached a backend: queue and gateway only.
        let refused = HopTiming().parts(start: start, queue: .zero, now: start + .milliseconds(2))
        #expect(Self.parse(refused.serverTiming).keys.sorted() == ["gateway", "queue", "total"])
    }

    @Test(arguments: [true, false], [false, true])
    func theHeaderSaysWhereTheTimeWent(fastPath: Bool, stream: Bool) async throws {
        let upstream = TestUpstream()
        let log = LogRecorder()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/delay-120/v1"])]) {
                $0.server.fastPath = fastPath
            }
            try await GatewayHarness.with(config, log: log) { _, base in
                let started = ContinuousClock.now
                let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat(stream: stream))
                let took = (ContinuousClock.now - started).seconds * 1000
                #expect(reply.status == 200)
                let timing = Self.parse(reply.headers["server-timing"])
                let total = try #require(timing["total"], "\(reply.headers)")
                let parts = ["queue", "connect", "upstream", "gateway"].map { timing[$0] ?? -1 }
                #expect(parts.allSatisfy { $0 >= 0 }, "\(timing)")
                #expect(abs(parts.reduce(0, +) - total) <= 0.5, "the parts add up to the total: \(timing)")
                #expect(total <= took + 1, "the total is within what the client saw (\(took) ms): \(timing)")
                #expect((timing["upstream"] ?? 0) >= 119, "the backend took 120 ms: \(timing)")
                #expect((timing["ttfb"] ?? .infinity) <= (timing["upstream"] ?? 0) + 0.1, "\(timing)")
            }
        }
        let line = log.text.split(separator: "\n").first { $0.contains(" request ") && $0.contains("status=200") }
        let fields = try #require(line.map(String.init), "an access-log line")
        for field in ["connect_ms=", "ttfb_ms=", "upstream_ms=", "gateway_ms=", "queue_ms="] { #expect(fields.contains(field), "\(fields)") }
    }
}
