import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// The configuration lifecycle of the real `switchyard serve`: reloads from the file (its poll),
/// SIGHUP and `POST /admin/config` while `switchyard bench` keeps it loaded.
@Suite(.serialized, .tags(.timing)) struct ConfigReloadTests {
    /// Two configurations that differ in a backend, lane SLOs and queue policy, a tenant's weight
    /// and the retry budget; `token`: the tenant's key.
    static func yaml(_ variant: Int, upstreams: [Int], admin: String) -> String {
        let backends = (variant == 0 ? upstreams : [upstreams[0]]).map { "{ url: \"http://127.0.0.1:\($0)/ok/v1\" }" }
        return """
            \(admin)
            health: { interval: 200ms }
            retry: { budget_ratio: \(variant == 0 ? "0.2" : "0.3") }
            tenants:
              - { name: bench, api_key_sha256: \(Digest.sha256Hex(Self.key)), weight: \(variant == 0 ? 1 : 2) }
            lanes:
              realtime: { slo: { ttft: \(variant == 0 ? "10s" : "20s") }, queue: { max_size: \(variant == 0 ? 500 : 400) } }
            models:
              - name: m
                backends: [\(backends.joined(separator: ", "))]
                queue_timeout: \(variant == 0 ? "30s" : "20s")
            """
    }

    static let key = "sk-bench-0123456789"

    static func admin(_ served: ManagedServeTests.Served, _ path: String, body: String? = nil) async throws -> TestClient.Reply {
        let url = served.base.replacingOccurrences(of: "/v1", with: path)
        let auth = ["authorization": "Bearer \(ManagedServeTests.adminToken)"]
        if let body { return try await TestClient.post(url, body, contentType: "application/yaml", headers: auth) }
        return try await TestClient.get(url, headers: auth)
    }

    @Test func configsFlippingEverySecondUnderLoadFailNoRequest() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let (a, b) = (TestUpstream(), TestUpstream())
        try await a.run { pa in
            try await b.run { pb in
                let dir = ManagedServeTests.tempDir()
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: dir) }
                let adminLine = try ManagedServeTests.adminSection(dir)
                let file = dir.appendingPathComponent("switchyard.yaml")
                try Self.yaml(0, upstreams: [pa, pb], admin: adminLine).write(to: file, atomically: true, encoding: .utf8)
                let served = try await ManagedServeTests.Served(arguments: ["--config", file.path], dataDir: dir)
                defer { _ = served.process.isRunning ? kill(served.process.processIdentifier, SIGKILL) : 0 }
                let first = try await Self.admin(served, "/admin/config")
                #expect(first.status == 200, "\(first.body)")
                let startHash = try JSONParser.parse(first.body)["hash"]?.stringValue

                let out = dir.appendingPathComponent("bundle").path
                async let bench = BenchCommandTests.runDetached(
                    ServeProcessTests.binary,
                    [
                        "bench", "--url", served.base, "--model", "m", "--rate", "25", "--duration", "9s", "--output-tokens", "4",
                        "--api-key", Self.key, "--stream", "--threads", "1", "--out", out,
                    ])
                // Every second the other configuration: written to the file (seen by the
                // gateway's poll), on even seconds also with SIGHUP, on every third posted.
                var outcomes: [String] = []
                let start = ContinuousClock.now
                for second in 1...8 {
                    try await Task.sleep(until: start + .seconds(second))
                    let variant = second % 2
                    let text = Self.yaml(variant, upstreams: [pa, pb], admin: adminLine)
                    if second % 3 == 0 {
                        let reply = try await Self.admin(served, "/admin/config", body: text)
                        #expect(reply.status == 200, "\(reply.body)")
                        outcomes.append(reply.body)
                    } else {
                        try text.write(to: file, atomically: true, encoding: .utf8)
                        if second % 2 == 0 { kill(served.process.processIdentifier, SIGHUP) }
                    }
                    if second == 5 {
                        // Invalid: refused with its field named, and the configuration in force serves on.
                        let bad = text.replacingOccurrences(of: "ttft: 10s", with: "ttft: soon").replacingOccurrences(
                            of: "ttft: 20s", with: "ttft: soon")
                        let reply = try await Self.admin(served, "/admin/config", body: bad)
                        #expect(reply.status == 400, "\(reply.body)")
                        #expect(reply.body.contains("lanes.realtime.slo.ttft"), "\(reply.body)")
                        #expect(reply.body.contains("invalid_config"), "\(reply.body)")
                        let restart = try await Self.admin(
                            served, "/admin/config",
                            body: text.replacingOccurrences(of: "health: { interval: 200ms }", with: "health: { interval: 1s }"))
                        #expect(restart.status == 400 && restart.body.contains("health.interval"), "\(restart.body)")
                    }
                }
                let (status, output) = try await bench
                #expect(status == 0, "\(output)")
                let summary = try JSONParser.parse(String(contentsOfFile: out + "/summary.json", encoding: .utf8))
                let lane = try #require(summary["lanes"]?.arrayValue?.first)
                let requests = lane["sent"]?.intValue ?? 0
                #expect(requests >= 150, "\(output)")
                #expect(lane["succeeded"]?.intValue == requests, "no request failed while the configuration flipped: \(output)")
                #expect(lane["failed"]?.intValue == 0)
                #expect(a.count("ok") + b.count("ok") >= requests)

                let metrics = try await TestClient.get(served.base.replacingOccurrences(of: "/v1", with: "/metrics")).body
                let applied = metrics.split(separator: "\n").first { $0.hasPrefix("switchyard_config_reloads_total{result=\"applied\"}") }
                let count = applied.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
                #expect(count >= 6, "\(metrics)")
                #expect(metrics.contains("switchyard_config_reloads_total{result=\"refused\"}"))
                #expect(metrics.split(separator: "\n").filter { $0.hasPrefix("switchyard_config_info{") }.count == 1, "one config_info series")

                // What is in force is the last one written; rollback returns to the one before.
                let now = try JSONParser.parse(try await Self.admin(served, "/admin/config").body)
                #expect(now["hash"]?.stringValue == String(Digest.sha256Hex(Self.yaml(0, upstreams: [pa, pb], admin: adminLine)).prefix(16)))
                #expect(now["hash"]?.stringValue == startHash)
                let back = try await Self.admin(served, "/admin/config/rollback", body: "")
                #expect(back.status == 200 && back.body.contains("backend http://127.0.0.1:\(pb)/ok/v1 removed"), "\(back.body)")
                #expect(served.logText.contains("configuration reloaded"))
                #expect(await served.stop() == 0)
            }
        }
    }
}
