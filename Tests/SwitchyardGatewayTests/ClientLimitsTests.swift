import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import SwitchyardCore
import SwitchyardHTTPGuard
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

    /// A connection that has sent a request head and owes its body: held open (within the 30 s
    /// body idle timeout, far beyond the short idle timeout of the test) until closed.
    static func hold(_ port: Int) async throws -> any Channel {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")).get()
        return channel
    }
}

/// The request-head handling (NIO's HTTP/1 decoder with the gateway's limits in front and its
/// fast path behind) under mutated heads: bytes flipped, inserted, deleted, header lines
/// doubled, long tokens, stray CR/LF/NUL. Seeded, so a failure replays. Every answer is a 4xx or
/// a success, never a 5xx; every error body that arrives whole is OpenAI's shape; the gateway
/// serves normally afterwards. (libFuzzer targets cover the parsers below it: scripts/fuzz.sh.)
@Suite(.tags(.timing)) struct RequestHeadMutationTests {
    static let seeds: [[UInt8]] = [
        Array(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 56\r\nx-switchyard-lane: realtime\r\n\r\n{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}"
                .utf8),
        Array("GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer sk-x\r\nx-switchyard-timeout-ms: 500\r\n\r\n".utf8),
        Array("POST /v1/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"model\":\"m\",\"p\"\r\n0\r\n\r\n".utf8),
    ]

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        let specials: [UInt8] = [0x0D, 0x0A, 0x00, 0x3A, 0x20, 0x09, 0x7F, 0xFF, 0x22, 0x2F]
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let i = Int.random(in: 0..<max(1, bytes.count), using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: bytes[i] ^= UInt8.random(in: 1...255, using: &rng)
            case 1: bytes.insert(specials.randomElement(using: &rng)!, at: i)
            case 2: if !bytes.isEmpty { bytes.remove(at: i) }
            case 3:
                // Double a header line.
                if let end = bytes[i...].firstIndex(of: 0x0A), let start = bytes[..<i].lastIndex(of: 0x0A) {
                    bytes.insert(contentsOf: bytes[(start + 1)...end], at: end + 1)
                }
            case 4: bytes.insert(contentsOf: Array(repeating: UInt8(ascii: "A"), count: Int.random(in: 100...5000, using: &rng)), at: i)
            default: bytes[i] = UInt8.random(in: 0...255, using: &rng)
            }
        }
        return bytes
    }

    @Test func mutatedRequestHeadsGetA4xxOrAnAnswerNeverA5xx() async throws {
        let upstream = TestUpstream()
        try await upstream.run { up in
            let config = ClientLimitsTests.config(port: up) {
                $0.headerReadTimeout = .milliseconds(300)
                $0.bodyIdleTimeout = .milliseconds(300)
            }
            try await GatewayHarness.with(config) { _, base in
                let port = ClientLimitsTests.port(base)
                var rng = SplitMix64(seed: 18)
                var statuses: [Int: Int] = [:]
                for round in 0..<300 {
                    let bytes = Self.mutate(Self.seeds[round % Self.seeds.count], &rng)
                    let answer =
                        (try? await RawHTTP.exchange(port: port, bytes: bytes, timeout: .seconds(5)) { text in
                            guard let head = text.range(of: "\r\n\r\n") else { return false }
                            let length = text[..<head.lowerBound].split(separator: "\r\n")
                                .first { $0.lowercased().hasPrefix("content-length:") }
                                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
                            return length.map { text.utf8.count - text.utf8.distance(from: text.startIndex, to: head.upperBound) >= $0 } ?? false
                        }) ?? ""
                    // The server may close without an answer (a connection it cannot parse at all).
                    guard !answer.isEmpty else {
                        statuses[0, default: 0] += 1
                        continue
                    }
                    let status = answer.hasPrefix("HTTP/1.1 ") ? Int(answer.dropFirst(9).prefix(3)) ?? -1 : -1
                    statuses[status, default: 0] += 1
                    #expect(
                        (200..<500).contains(status),
                        "round \(round): \(answer.prefix(300)) for \(String(decoding: bytes.prefix(300), as: UTF8.self))")
                    if status >= 400, let head = answer.range(of: "\r\n\r\n"), answer.contains("application/json") {
                        let body = String(answer[head.upperBound...])
                        if let json = try? JSONParser.parse(body) {
                            #expect(json["error"]?["message"]?.stringValue != nil && json["error"]?["type"] != nil, "round \(round): \(body)")
                        }
                    }
                }
                if ProcessInfo.processInfo.environment["SWITCHYARD_TEST_LOG"] != nil { print("statuses:", statuses.sorted { $0.key < $1.key }) }
                #expect(statuses.keys.contains { (400..<500).contains($0) }, "\(statuses)")
                let fine = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                #expect(fine.status == 200, "served normally after: \(statuses)")
            }
        }
    }
}

/// Found by FuzzRequestHead (memory growing run after run): the guard and its handler's context
/// held each other past the connection's end, so every connection leaked them.
@Suite struct ClientGuardLifetimeTests {
    @Test func aClosedConnectionLeavesNoGuardBehind() throws {
        weak var weakGuard: ClientGuard?
        try {
            let channel = EmbeddedChannel()
            let guardian = ClientGuard(limits: ClientLimits(), connections: ClientConnectionCounts()) { _ in }
            weakGuard = guardian
            try guardian.install(on: channel.pipeline.syncOperations)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
            try channel.writeInbound(ByteBuffer(string: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
            _ = try channel.finish(acceptAlreadyClosed: true)
        }()
        #expect(weakGuard == nil)
    }
}

extension ClientGuardLifetimeTests {
    /// Counts the request parts that get past the guard.
    final class Parts: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var seen: [String] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): seen.append("head \(head.uri)")
            case .body: seen.append("body")
            case .end: seen.append("end")
            }
        }
    }

    /// Found by FuzzRequestHead: after a 431 the refused request's end (and a request pipelined
    /// behind it) still reached the app, which answered 200 after the refusal.
    @Test func nothingPassesAfterARefusal() throws {
        var limits = ClientLimits()
        limits.maxHeaders = 3
        let channel = EmbeddedChannel()
        let parts = Parts()
        try ClientGuard(limits: limits, connections: ClientConnectionCounts()) { _ in }.install(on: channel.pipeline.syncOperations)
        try channel.pipeline.syncOperations.addHandler(parts)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        let many = (0..<5).map { "x-\($0): 1\r\n" }.joined()
        try? channel.writeInbound(
            ByteBuffer(string: "POST /a HTTP/1.1\r\nHost: x\r\n\(many)Content-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\nHost: x\r\n\r\n"))
        var answer = ""
        while let out = try channel.readOutbound(as: ByteBuffer.self) { answer += String(buffer: out) }
        #expect(answer.hasPrefix("HTTP/1.1 431"))
        #expect(parts.seen.isEmpty, "\(parts.seen)")
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }
}
