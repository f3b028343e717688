import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// `switchyard serve` with `server.tls`: the official `openai` client talks to it over HTTPS with
/// the test CA, and SIGHUP makes new connections get a renewed certificate without a restart.
@Suite(.serialized, .tags(.timing)) struct TLSServeTests {
    static let script = """
        import sys, openai
        client = openai.OpenAI(base_url=sys.argv[1], api_key="x", max_retries=0, http_client=openai.DefaultHttpxClient(verify=sys.argv[2]))
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        print("whole:", reply.choices[0].message.content)
        parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True) if c.choices]
        print("stream:", "".join(parts))
        try:
            openai.OpenAI(base_url=sys.argv[1], api_key="x", max_retries=0).models.list()
            print("untrusted: accepted")
        except openai.APIConnectionError as e:
            print("untrusted: refused")
        """

    @Test func theOpenAIClientWorksOverTLSAndSIGHUPServesARenewedCertificate() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let pki = try TestCertificates()
        defer { try? FileManager.default.removeItem(at: pki.dir) }
        let cert = pki.path("listener.pem"), key = pki.path("listener.key")
        try FileManager.default.copyItem(atPath: pki.serverCert, toPath: cert)
        try FileManager.default.copyItem(atPath: pki.serverKey, toPath: key)
        let upstream = TestUpstream()
        try await upstream.run { port in
            let file = pki.dir.appendingPathComponent("switchyard.yaml")
            try """
            server: { tls: { cert: \(cert), key: \(key) } }
            models:
              - name: m
                backends: [{ url: "http://127.0.0.1:\(port)/ok/v1" }]
            """.write(to: file, atomically: true, encoding: .utf8)
            let served = try await ManagedServeTests.Served(arguments: ["--config", file.path], dataDir: pki.dir.appendingPathComponent("data"))
            defer { served.kill9() }
            #expect(served.base.hasPrefix("https://127.0.0.1:"), "the banner says https: \(served.base)")

            let (status, text) = try await BenchCommandTests.runDetached(LlamaServer.python, ["-c", Self.script, served.base, pki.caFile])
            #expect(status == 0, "\(text)")
            #expect(text.contains("whole: ") && text.contains("stream: "), "\(text)")
            #expect(text.contains("untrusted: refused"), "the client without the CA does not get through: \(text)")

            func subject() async throws -> String {
                let r = try await Curl.run(served.base.replacingOccurrences(of: "/v1", with: "/healthz"), ["--cacert", pki.caFile, "-v"])
                return r.stderr.split(separator: "\n").first { $0.contains("subject:") }.map(String.init) ?? r.stderr
            }
            #expect(try await subject().contains("CN=127.0.0.1"))
            try pki.issue("renewed", commonName: "localhost", extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost")
            // cert-manager and a Secret volume swap both files; the reload comes after.
            for (from, to) in [("renewed.pem", cert), ("renewed.key", key)] {
                try FileManager.default.removeItem(atPath: to)
                try FileManager.default.copyItem(atPath: pki.path(from), toPath: to)
            }
            kill(served.process.processIdentifier, SIGHUP)
            var seen = ""
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                seen = try await subject()
                if seen.contains("CN=localhost") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(seen.contains("CN=localhost"), "after SIGHUP: \(seen)\n\(served.logText.suffix(1500))")
            #expect(served.logText.contains("TLS certificate reloaded"))
            #expect(await served.stop() == 0)
        }
    }
}
