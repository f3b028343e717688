import Foundation
import NIOPosix
import NIOSSL
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardCLI

/// `switchyard probe path`: the hops to a server straight and through a gateway, measured.
@Suite struct ProbePathTests {
    @Test func eachHopIsMeasuredAndTheGatewaysShareIsShown() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/delay-30/v1"])])
            try await GatewayHarness.with(config) { _, base in
                let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
                let direct = try await PathTiming.measure(
                    "http://127.0.0.1:\(port)/delay-30/v1", model: "m", samples: 3, trust: .systemRoots, group: group)
                let via = try await PathTiming.measure("\(base)/v1", model: "m", samples: 3, trust: .systemRoots, group: group)
                try await group.shutdownGracefully()
                #expect(direct.status == 200 && via.status == 200)
                for t in [direct, via] {
                    #expect((t.dns ?? -1) >= 0 && (t.connect ?? -1) >= 0 && t.tls == nil)
                    #expect((t.ttfb ?? 0) >= 0.029, "the server waits 30 ms before answering: \(String(describing: t.ttfb))")
                    #expect((t.total ?? 0) >= (t.ttfb ?? 0))
                }
                #expect(direct.serverTiming.isEmpty, "a model server sends no Server-Timing")
                #expect(via.serverTiming.map(\.0) == ["queue", "connect", "ttfb", "upstream", "gateway", "total"], "\(via.serverTiming)")
                let table = ProbeCommand.Path.table([("direct", direct), ("via gateway", via)])
                #expect(table.contains("time to first byte") && table.contains("added") && table.contains("Server-Timing"), "\(table)")
                let upstreamMs = try #require(via.serverTiming.first { $0.0 == "upstream" }?.1) * 1000
                #expect(table.contains(String(format: "upstream %.2f ms", upstreamMs)), "milliseconds in the table: \(table)")

                // The command itself, and a clear error for a server that is not there.
                try await ProbeCommand.Path.parse(["http://127.0.0.1:\(port)/delay-30/v1", "--via", "\(base)/v1", "--model", "m", "--samples", "2"])
                    .run()
                do {
                    try await ProbeCommand.Path.parse(["http://127.0.0.1:1/v1", "--samples", "1"]).run()
                    Issue.record("a closed port was measured")
                } catch {
                    #expect("\(error)".contains("connect to 127.0.0.1:1"), "\(error)")
                }
            }
        }
    }

    /// Over HTTPS both ways (a test CA): the handshake is measured on each path, the gateway's
    /// certificate is checked against `--cacert`, and a server the CA does not vouch for is a
    /// clear TLS error, not a number.
    @Test func theTLSHandshakeIsMeasuredStraightAndThroughAnHTTPSGateway() async throws {
        let pki = try TestCertificates()
        defer { try? FileManager.default.removeItem(at: pki.dir) }
        let upstream = TestUpstream()
        try await upstream.run(tls: try pki.serverTLS()) { port in
            let server = "https://localhost:\(port)/delay-30/v1"
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", [server])]) {
                $0.server.tls = ListenerTLSConfig(certFile: pki.serverCert, keyFile: pki.serverKey)
                $0.upstream.caFile = pki.caFile
            }
            let bodyDone = try await GatewayHarness.with(config) { _, base in
                #expect(base.hasPrefix("https://"))
                let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
                let trust = PathTiming.Trust.caFile(pki.caFile)
                let direct: PathTiming, via: PathTiming
                do {
                    direct = try await PathTiming.measure(server, model: "m", samples: 3, trust: trust, group: group)
                    via = try await PathTiming.measure("\(base)/v1", model: "m", samples: 3, trust: trust, group: group)
                    try await group.shutdownGracefully()
                } catch {
                    try? await group.shutdownGracefully()
                    throw error
                }
                for t in [direct, via] {
                    #expect(t.status == 200)
                    #expect((t.tls ?? 0) > 0, "a handshake takes time: \(String(describing: t.tls))")
                    #expect((t.ttfb ?? 0) >= 0.029 && (t.total ?? 0) >= max(t.tls ?? 0, t.ttfb ?? 0))  // medians: parts of different samples
                }
                #expect(via.serverTiming.map(\.0).contains("upstream"))
                let table = ProbeCommand.Path.table([("direct", direct), ("via gateway", via)])
                let tlsRow = try #require(table.split(separator: "\n").first { $0.hasPrefix("TLS") })
                #expect(!tlsRow.split(separator: " ").contains("-"), "TLS measured on both paths and the difference shown: \(tlsRow)")

                // The command with --cacert; without it the system roots refuse the test CA.
                try await ProbeCommand.Path.parse([server, "--via", "\(base)/v1", "--model", "m", "--samples", "1", "--cacert", pki.caFile]).run()
                do {
                    try await ProbeCommand.Path.parse([server, "--samples", "1"]).run()
                    Issue.record("a certificate from an unknown CA was accepted")
                } catch {
                    #expect("\(error)".contains("TLS with localhost:\(port)"), "\(error)")
                }
                return ContinuousClock.now
            }
            // The probe's connections end with the server's close_notify answered by a bare FIN:
            // the gateway must not hold them (and its shutdown) for NIO SSL's default 5 s.
            let shutdown = ContinuousClock.now - bodyDone
            #expect(shutdown < .seconds(4), "the gateway's graceful shutdown took \(shutdown)")
        }
    }
}
