import Foundation
import NIOSSL
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// HTTPS on the listener (curl as the client, a test CA made by openssl), client certificates on
/// the admin API, the certificate read again without a restart, and HTTPS to backends checked
/// against `upstream.ca_file`.
@Suite struct TLSTests {
    static func chat(_ base: String, _ curl: [String]) async throws -> (exit: Int32, status: Int, body: String, stderr: String) {
        try await Curl.run(
            "\(base)/v1/chat/completions",
            curl + ["-H", "content-type: application/json", "--data", #"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#])
    }

    @Test func theListenerServesHTTPSWithItsCertificateAndRefusesClientsThatDoNotTrustIt() async throws {
        let pki = try TestCertificates()
        defer { try? FileManager.default.removeItem(at: pki.dir) }
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])]) {
                $0.server.tls = ListenerTLSConfig(certFile: pki.serverCert, keyFile: pki.serverKey)
            }
            try await GatewayHarness.with(config) { gateway, base in
                #expect(base.hasPrefix("https://"))
                let served = try await Self.chat(base, ["--cacert", pki.caFile])
                #expect(served.exit == 0 && served.status == 200, "\(served)")
                #expect(served.body.contains("chat.completion"))
                let untrusted = try await Self.chat(base, [])
                #expect(untrusted.exit == 60, "curl cannot verify the certificate without the CA: \(untrusted)")
                let plain = try await Curl.run(base.replacingOccurrences(of: "https://", with: "http://") + "/healthz")
                #expect(plain.status != 200, "plain HTTP on the TLS port is not served: \(plain)")
                let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
                #expect(metrics.contains("switchyard_tls_certificate_expiry_timestamp_seconds"))
            }
        }
    }

    @Test func adminRequiresAClientCertificateFromTheClientCAAndNamesItInTheAudit() async throws {
        let pki = try TestCertificates()
        defer { try? FileManager.default.removeItem(at: pki.dir) }
        try pki.issue("ops", commonName: "ops")
        try pki.issue("intern", commonName: "intern")
        try pki.issue("mallory", commonName: "ops", by: "stranger-ca")
        let token = "admin-token-\(UUID().uuidString)"
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])]) {
                $0.server.tls = ListenerTLSConfig(certFile: pki.serverCert, keyFile: pki.serverKey, clientCAFile: pki.caFile)
                $0.admin.token = token
                $0.admin.clientCertificate = true
                $0.admin.clientSubjects = ["ops"]
            }
            let log = LogRecorder()
            try await GatewayHarness.with(config, log: log) { _, base in
                let admin = "\(base)/admin/backends"
                let bearer = ["-H", "authorization: Bearer \(token)"]
                func cert(_ name: String) -> [String] {
                    ["--cacert", pki.caFile, "--cert", pki.path("\(name).pem"), "--key", pki.path("\(name).key")]
                }

                let ops = try await Curl.run(admin, cert("ops") + bearer)
                #expect(ops.status == 200, "\(ops)")
                let noCert = try await Curl.run(admin, ["--cacert", pki.caFile] + bearer)
                #expect(noCert.status == 401 && noCert.body.contains("client_certificate_required"), "\(noCert)")
                let notListed = try await Curl.run(admin, cert("intern") + bearer)
                #expect(notListed.status == 403 && notListed.body.contains("client_certificate_not_allowed"), "\(notListed)")
                let noToken = try await Curl.run(admin, cert("ops"))
                #expect(noToken.status == 401 && noToken.body.contains("invalid_admin_token"), "the token is still needed: \(noToken)")
                // A certificate from another CA is refused in the handshake: no HTTP answer at all.
                let stranger = try await Curl.run(admin, cert("mallory") + bearer)
                #expect(stranger.exit != 0 && stranger.status == 0, "\(stranger)")
                // Client certificates are asked for, not required, off the admin API.
                let chat = try await Self.chat(base, ["--cacert", pki.caFile])
                #expect(chat.status == 200, "\(chat)")

                let audit = log.text.split(separator: "\n").filter { $0.contains("audit=admin") }
                #expect(audit.contains { $0.contains("who=cert:CN=ops token:") && $0.contains("status=200") }, "\(audit)")
                #expect(audit.contains { $0.contains("admin call refused") && $0.contains("who=cert:CN=intern") }, "\(audit)")
            }
        }
    }

    @Test func aRenewedCertificateIsServedToNewConnectionsAfterAReload() async throws {
        let pki = try TestCertificates()
        defer { try? FileManager.default.removeItem(at: pki.dir) }
        let cert = pki.path("listener.pem"), key = pki.path("listener.key")
        try FileManager.default.copyItem(atPath: pki.serverCert, toPath: cert)
        try FileManager.default.copyItem(atPath: pki.serverKey, toPath: key)
        let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:1/v1"])]) {
            $0.server.tls = ListenerTLSConfig(certFile: cert, keyFile: key)
        }
        try await GatewayHarness.with(config, waitForDiscovery: false) { gateway, base in
            func subject() async throws -> String {
                let r = try await Curl.run("\(base)/healthz", ["--cacert", pki.caFile, "-v"])
                return r.stderr.split(separator: "\n").first { $0.contains("subject:") }.map(String.init) ?? r.stderr
            }
            #expect(try await subject().contains("CN=127.0.0.1"))
            try pki.issue("renewed", commonName: "localhost", extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost")
            // A broken pair is refused and the certificate in force keeps serving.
            try FileManager.default.removeItem(atPath: key)
            try FileManager.default.copyItem(atPath: pki.path("renewed.key"), toPath: key)
            gateway.reloadTLS()
            #expect(try await subject().contains("CN=127.0.0.1"), "a key that does not match the certificate is not taken")
            try FileManager.default.removeItem(atPath: cert)
            try FileManager.default.copyItem(atPath: pki.path("renewed.pem"), toPath: cert)
            gateway.reloadTLS()
            #expect(try await subject().contains("CN=localhost"))
            let metrics = String(decoding: gateway.metrics.render(), as: UTF8.self)
            #expect(metrics.contains(#"switchyard_tls_reloads_total{result="failed"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"switchyard_tls_reloads_total{result="applied"} 1"#))
        }
    }

    @Test func httpsBackendsAreCheckedAgainstTheConfiguredCA() async throws {
        let pki = try TestCertificates()
        defer { try? FileManager.default.removeItem(at: pki.dir) }
        let upstream = TestUpstream()
        try await upstream.run(tls: try pki.serverTLS()) { port in
            for (caFile, fastPath) in [(pki.caFile, true), (pki.caFile, false), (nil, true)] {
                let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["https://localhost:\(port)/ok/v1"])]) {
                    $0.upstream.caFile = caFile
                    $0.server.fastPath = fastPath
                }
                try await GatewayHarness.with(config) { _, base in
                    let reply = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                    if caFile != nil {
                        #expect(reply.status == 200, "verified against upstream.ca_file (fast path \(fastPath)): \(reply.body)")
                    } else {
                        #expect(reply.status == 502, "the system roots do not vouch for the test CA: \(reply.body)")
                    }
                }
            }
        }
    }
}
