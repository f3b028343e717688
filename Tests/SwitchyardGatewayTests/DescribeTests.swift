import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// `GET /admin/describe`: the serving path from the objects that serve, live state included; the
/// HTML page as a real browser reads it.
@Suite struct DescribeTests {
    @Test func theLivePathShowsADrainedReplicaAndRendersInChromium() async throws {
        let upstream = TestUpstream(engine: .llamacpp(slots: 4))
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [
                GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1", "http://127.0.0.1:\(port)/ok2/v1"], fallback: ["n"]),
                GatewayHarness.model("n", ["http://127.0.0.1:\(port)/ok3/v1"]),
            ]) { $0.admin.token = "admin-secret" }
            let admin = ["authorization": "Bearer admin-secret"]
            try await GatewayHarness.with(config) { _, base in
                let drained = try await TestClient.post("\(base)/admin/backends/m-1/drain?stop=false", "", headers: admin)
                #expect(drained.status == 200, "\(drained.body)")
                let mermaid = try await TestClient.get("\(base)/admin/describe", headers: admin)
                #expect(mermaid.status == 200 && mermaid.headers["content-type"]?.hasPrefix("text/plain") == true)
                #expect(mermaid.body.hasPrefix("flowchart LR\n"), "\(mermaid.body)")
                #expect(
                    mermaid.body.contains(#"replica_m_0["m-0<br/>http://127.0.0.1:\#(port)/ok/v1"#)
                        && mermaid.body.contains("serving, 0 in flight\"]:::serving"))
                #expect(mermaid.body.contains("drained, 0 in flight\"]:::closed"), "the drained replica is drawn as closed: \(mermaid.body)")
                #expect(mermaid.body.contains("<br/>llama.cpp, 4 slots (props)<br/>"), "the engine its /props answer names: \(mermaid.body)")
                #expect(mermaid.body.contains(#"pool_m -. "fallback 1" .-> pool_n"#))
                let bad = try await TestClient.get("\(base)/admin/describe?format=png", headers: admin)
                #expect(bad.status == 400 && bad.json?["error"]?["param"] == .string("format"))

                let html = try await TestClient.get("\(base)/admin/describe?format=html", headers: admin)
                #expect(html.status == 200 && html.headers["content-type"]?.hasPrefix("text/html") == true)
                let file = FileManager.default.temporaryDirectory.appendingPathComponent("describe-\(UUID().uuidString).html").path
                defer { try? FileManager.default.removeItem(atPath: file) }
                try html.body.write(toFile: file, atomically: true, encoding: .utf8)
                let (status, dom) = try TestProcess.run(
                    "/usr/bin/chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "file://\(file)"])
                #expect(status == 0)
                // The browser built the SVG: a box per node (listener, telemetry, 3 lanes, 2 pools, 3 replicas).
                #expect(dom.components(separatedBy: "<rect ").count - 1 == 10, "\(dom.prefix(400))")
                #expect(dom.contains(">m-1<") && dom.contains(">fallback 1<"))
            }
        }
    }
}
