import AsyncHTTPClient
import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardEvidence

/// `accept` with chaos `at: backend`: the proxy goes between the gateway and one of its two
/// backends through the admin API, so the gateway's retries absorb the resets, and everything is
/// put back afterwards.
@Suite struct BackendChaosTests {
    static let token = "chaos-admin-token-0123456789"

    @Test func resetsAtOneBackendAreAbsorbedByTheGatewaysRetries() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let backends = ["ok", "fine"].map { BackendConfig(url: "http://127.0.0.1:\(port)/\($0)/v1", maxInflight: 4) }
            let config = GatewayHarness.config(models: [ModelConfig(name: "m", backends: backends)]) { $0.admin.token = Self.token }
            try await GatewayHarness.with(config) { _, base in
                let origin = base
                let spec = try AcceptSpec.load(
                    yaml: """
                        target: { url: "\(base)/v1", model: m, metrics_url: "\(origin)/metrics", admin_url: "\(origin)", admin_token: \(Self.token) }
                        lanes:
                          - { name: realtime, header: none, load: { rate: 20, arrival: constant }, output_tokens: 3 }
                        phases:
                          - { name: steady, duration: 1s }
                          - { name: fault, duration: 2s, fault: { chaos: { reset_rate: 1.0 }, backends: m-0 } }
                          - { name: recovery, duration: 1s }
                        """)
                #expect(
                    spec.phases[1].fault
                        == .chaos(
                            {
                                var f = ChaosFaults()
                                f.resetRate = 1
                                return f
                            }(), at: .backends(["m-0"])))
                let result = try await AcceptRunner(spec: spec).run()

                #expect(!result.records.isEmpty)
                let failed = result.records.filter { !$0.succeeded }
                #expect(failed.isEmpty, "the other backend took every reset request: \(failed.prefix(3).map { "\($0.id): \($0.error ?? "")" })")
                #expect(result.records.allSatisfy { !$0.resent }, "no reset reached the client's connection")
                #expect((result.chaosCounts["m-0 reset"] ?? 0) > 0, "\(result.chaosCounts)")
                #expect((result.chaosCounts["m-0 forwarded"] ?? 0) > 0, "traffic to m-0 went through the proxy outside the fault")
                let recovery = try #require(result.verdicts.first?.recoveries.first)
                #expect(recovery.hurt == 0)
                #expect((recovery.gateway?.retries ?? 0) > 0, "the gateway's retries show: \(String(describing: recovery.gateway))")

                // Put back: m-0 serves again directly, the proxy is gone.
                let listed = try await AdminClient(url: origin, token: Self.token, http: .shared).backends(of: "m")
                #expect(listed.compactMap { $0["url"]?.stringValue } == backends.map(\.url), "\(listed)")
                #expect(listed.allSatisfy { $0["state"] == .string("serving") }, "\(listed)")
            }
        }
    }
}
