import Foundation
import NIOPosix
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
                    "http://127.0.0.1:\(port)/delay-30/v1", model: "m", samples: 3, insecure: false, group: group)
                let via = try await PathTiming.measure("\(base)/v1", model: "m", samples: 3, insecure: false, group: group)
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
}
