import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// API keys and the admin token never reach the log, error answers or metrics; admin calls are
/// audited with who made them (the token's id) and what.
@Suite struct KeyRedactionTests {
    @Test func keysNeverAppearInLogsErrorsOrMetricsAndAdminCallsAreAudited() async throws {
        let key = TenantKeys.generate()
        let wrongKey = TenantKeys.generate()
        let token = "admin-token-\(UUID().uuidString)"
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])]) {
                $0.tenants = [TenantConfig(name: "team-a", apiKeySHA256: Digest.sha256Hex(key))]
                $0.admin.token = token
            }
            let log = LogRecorder()
            try await GatewayHarness.with(config, log: log) { gateway, base in
                let good = try await TestClient.post(
                    "\(base)/v1/chat/completions", TestClient.chat(stream: true), headers: ["authorization": "Bearer \(key)"])
                #expect(good.status == 200)
                let bad = try await TestClient.post(
                    "\(base)/v1/chat/completions", TestClient.chat(), headers: ["authorization": "Bearer \(wrongKey)"])
                #expect(bad.status == 401 && bad.body.contains("invalid_api_key"))
                #expect(!bad.body.contains(wrongKey) && !bad.body.contains(String(wrongKey.suffix(8))), "the error does not echo the key")

                let drain = try await TestClient.post(
                    "\(base)/admin/backends/m-0/drain?stop=false", "", headers: ["authorization": "Bearer \(token)"])
                #expect(drain.status == 200, "\(drain.body)")
                let refused = try await TestClient.post("\(base)/admin/backends/m-0/resume", "", headers: ["authorization": "Bearer \(wrongKey)"])
                #expect(refused.status == 401)
                // A tenant's own valid key opens nothing on the admin API.
                let tenantOnAdmin = try await TestClient.get("\(base)/admin/backends", headers: ["authorization": "Bearer \(key)"])
                #expect(tenantOnAdmin.status == 401 && tenantOnAdmin.body.contains("invalid_admin_token"))
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                let text = log.text
                for secret in [key, wrongKey, token] {
                    #expect(!text.contains(secret), "a secret in the log")
                    #expect(!metrics.contains(secret), "a secret in the metrics")
                }
                #expect(text.contains("tenant=team-a"), "the access log names the tenant instead: \(text.suffix(600))")
                let tokenID = "token:" + Digest.sha256Hex(token).prefix(8)
                let audit = text.split(separator: "\n").filter { $0.contains("audit=admin") }
                #expect(
                    audit.contains {
                        $0.contains("call=POST /admin/backends/m-0/drain") && $0.contains("who=\(tokenID)") && $0.contains("status=200")
                    },
                    "\(audit)")
                #expect(audit.contains { $0.contains("admin call refused") && $0.contains("call=POST /admin/backends/m-0/resume") }, "\(audit)")
            }
        }
    }

    @Test func keyDigestsAreFoundOnlyForTheirOwnKey() {
        let keys = (0..<50).map { _ in TenantKeys.generate() }
        let table = TenantKeys(keys.enumerated().map { TenantConfig(name: "t\($0.offset)", apiKeySHA256: Digest.sha256Hex($0.element)) })
        #expect(table.count == 50)
        for (i, key) in keys.enumerated() { #expect(table.tenant(forKey: key) == "t\(i)") }
        #expect(table.tenant(forKey: TenantKeys.generate()) == nil)
        #expect(table.tenant(forKey: String(keys[0].dropLast())) == nil)
        #expect(Set(keys).count == 50 && keys.allSatisfy { $0.hasPrefix("sk-sy-") && $0.count == 49 })
        #expect(TenantKeys.constantTimeEqual([1, 2, 3], [1, 2, 3]) && !TenantKeys.constantTimeEqual([1, 2, 3], [1, 2]))
    }
}
