import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import SwitchyardCore
import SwitchyardEvidence
import SwitchyardTestSupport
import Testing

/// `switchyard cluster k8s --kubeconfig` against a local HTTPS server that serves the Kubernetes
/// API's lists (paginated with `continue`), checks the bearer token, and presents a certificate
/// that only the kubeconfig's CA vouches for.
@Suite(.serialized, .tags(.timing)) struct KubeLiveAPITests {
    static let token = "sy-test-token-7f3a"

    /// A self-signed certificate for 127.0.0.1 (it is its own CA), from openssl.
    static func certificate(in dir: URL) throws -> (cert: String, key: String) {
        let cert = dir.appendingPathComponent("cert.pem").path
        let key = dir.appendingPathComponent("key.pem").path
        let (status, output) = try BenchCommandTests.run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1",
            ])
        try #require(status == 0, "openssl: \(output)")
        return (try String(contentsOfFile: cert, encoding: .utf8), try String(contentsOfFile: key, encoding: .utf8))
    }

    static func node(_ name: String) -> String {
        #"{"metadata":{"name":"\#(name)","labels":{"nvidia.com/gpu.count":"8","nvidia.com/gpu.product":"NVIDIA-H100-80GB-HBM3"}},"status":{"allocatable":{"nvidia.com/gpu":"8"},"conditions":[{"type":"Ready","status":"True"}]}}"#
    }

    /// The API: nodes in two pages (items without `kind`, as the API sends them), pods, NADs.
    static func router() -> Router<BasicRequestContext> {
        let router = Router()
        @Sendable func authorized(_ request: Request) -> Response? {
            guard request.headers[.authorization] == "Bearer \(token)" else {
                return Response(
                    status: .unauthorized, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"kind":"Status","status":"Failure","message":"Unauthorized","code":401}"#)))
            }
            return nil
        }
        @Sendable func json(_ text: String) -> Response {
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/api/v1/nodes") { request, _ in
            if let denied = authorized(request) { return denied }
            if request.uri.queryParameters["continue"] == "page2" {
                return json(#"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[\#(node("gpu-b"))]}"#)
            }
            return json(#"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"page2"},"items":[\#(node("gpu-a"))]}"#)
        }
        router.get("/api/v1/pods") { request, _ in
            if let denied = authorized(request) { return denied }
            return json(
                #"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"p","namespace":"default"},"spec":{"nodeName":"gpu-a"},"status":{"phase":"Running"}}]}"#
            )
        }
        router.get("/apis/k8s.cni.cncf.io/v1/network-attachment-definitions") { request, _ in
            if let denied = authorized(request) { return denied }
            return json(#"{"kind":"NetworkAttachmentDefinitionList","apiVersion":"k8s.cni.cncf.io/v1","metadata":{},"items":[]}"#)
        }
        return router
    }

    /// Serves `router` over TLS with `cert` on a free loopback port; cancel the task to stop it.
    static func serveTLS(_ router: Router<BasicRequestContext>, cert: String, key: String) async throws -> (Int, Task<Void, any Error>) {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(cert.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        var logger = Logger(label: "kube-api")
        logger.logLevel = .critical
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)), onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) },
            logger: logger)
        let server = Task { try await app.runUntilCancelled() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            server.cancel()
            throw CancellationError()
        }
        return (port, server)
    }

    static func kubeconfig(_ dir: URL, port: Int, ca: String, token: String) throws -> String {
        let path = dir.appendingPathComponent("kubeconfig-\(UUID().uuidString)").path
        try """
        apiVersion: v1
        kind: Config
        current-context: test
        clusters:
          - name: local
            cluster: { server: "https://127.0.0.1:\(port)", certificate-authority-data: \(Data(ca.utf8).base64EncodedString()) }
        users:
          - name: tester
            user: { token: \(token) }
        contexts:
          - name: test
            context: { cluster: local, user: tester }
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func theLiveAPIIsReadWithTheKubeconfigsCAAndToken() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let dir = ManagedServeTests.tempDir()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try Self.certificate(in: dir)
        let other = try Self.certificate(in: dir.appendingPathComponent("other", isDirectory: true).creatingDirectory())
        let (port, server) = try await Self.serveTLS(Self.router(), cert: cert, key: key)
        defer { server.cancel() }

        let good = try Self.kubeconfig(dir, port: port, ca: cert, token: Self.token)
        let (status, output) = try await BenchCommandTests.runDetached(
            ServeProcessTests.binary, ["cluster", "k8s", "--kubeconfig", good, "--format", "json"])
        #expect(status == 0, "\(output)")
        let report = try JSONParser.parse(String(output[(output.firstIndex(of: "{") ?? output.startIndex)...]))
        #expect(report["summary"]?["counts"]?["nodes"] == .number(2), "both pages of nodes: \(report["summary"] ?? .null)")
        #expect(report["summary"]?["counts"]?["pods"] == .number(1))
        #expect(report["summary"]?["fail"] == .number(0))
        #expect(report["sources"]?.arrayValue?.contains(.string("https://127.0.0.1:\(port)/api/v1/nodes")) == true)

        let wrongToken = try Self.kubeconfig(dir, port: port, ca: cert, token: "nope")
        let refused = try await BenchCommandTests.runDetached(ServeProcessTests.binary, ["cluster", "k8s", "--kubeconfig", wrongToken])
        #expect(refused.status != 0 && refused.output.contains("answered 401 (the API refused the credentials of context test)"), "\(refused.output)")

        let wrongCA = try Self.kubeconfig(dir, port: port, ca: other.cert, token: Self.token)
        let untrusted = try await BenchCommandTests.runDetached(ServeProcessTests.binary, ["cluster", "k8s", "--kubeconfig", wrongCA])
        #expect(
            untrusted.status != 0 && untrusted.output.lowercased().contains("certificate"),
            "the server's certificate is verified: \(untrusted.output)")
    }
}

extension URL {
    func creatingDirectory() throws -> URL {
        try FileManager.default.createDirectory(at: self, withIntermediateDirectories: true)
        return self
    }
}
