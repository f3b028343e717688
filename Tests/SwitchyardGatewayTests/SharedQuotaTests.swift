import Foundation
import SwitchyardBatch
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// `limits: { shared: postgres://… }` on a real PostgreSQL: two gateways in front of the same
/// upstream hold one tenant to one limit between them.
@Suite struct SharedQuotaTests {
    @Test func twoReplicasHoldATenantToOneLimitBetweenThem() async throws {
        let server = try #require(TestPostgres.url, TestPostgres.missing)
        let (url, drop) = try await TestPostgres.freshDatabase(server)
        let key = TenantKeys.generate()
        let upstream = TestUpstream()
        try await upstream.run { port in
            var config = try ConfigLoader.load(
                yaml: """
                    limits: { shared: "\(url)", sync_interval: 100ms }
                    tenants:
                      - { name: team-a, api_key_sha256: \(Digest.sha256Hex(key)), limits: { requests_per_minute: 6 } }
                    models: [{ name: m, backends: [{ url: "http://127.0.0.1:\(port)/ok/v1" }] }]
                    """)
            let harness = GatewayHarness.config(models: config.models)
            (config.server, config.health, config.upstream) = (harness.server, harness.health, harness.upstream)
            let auth = ["authorization": "Bearer \(key)"]
            let shared = config
            try await GatewayHarness.with(shared) { a, baseA in
                try await GatewayHarness.with(shared) { b, baseB in
                    for _ in 0..<4 {
                        let r = try await TestClient.post("\(baseA)/v1/chat/completions", TestClient.chat(), headers: auth)
                        #expect(r.status == 200, "\(r.body)")
                    }
                    // B learns A's usage at its next rounds (A shares, B reads).
                    let seen = await Poll.until(.seconds(10)) { (b.quotas.requestsLeft(tenant: "team-a") ?? 6) < 2.5 }
                    #expect(seen, "B sees A's 4 requests: \(String(describing: b.quotas.requestsLeft(tenant: "team-a")))")
                    var statuses: [Int] = []
                    for _ in 0..<4 {
                        statuses.append(try await TestClient.post("\(baseB)/v1/chat/completions", TestClient.chat(), headers: auth).status)
                    }
                    // 6 per minute across both (one more may have refilled meanwhile).
                    #expect(statuses.filter { $0 == 200 }.count <= 3 && statuses.contains(429), "\(statuses)")
                    #expect(a.quotas.requestsLeft(tenant: "team-a") != nil)
                }
            }
        }
        try await drop()
    }
}
