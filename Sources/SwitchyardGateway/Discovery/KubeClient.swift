import AsyncHTTPClient
import NIOCore
import NIOSSL
import SwitchyardCore

/// An HTTPS client for the Kubernetes API as a kubeconfig (or the pod's service account) says:
/// the cluster's CA verified, a client certificate when given; no redirects.
package enum KubeClient {
    package static func make(_ config: Kubeconfig) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = config.caPEM { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(ca.utf8))) }
        if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
        if let cert = config.clientCertificatePEM, let key = config.clientKeyPEM {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(cert.utf8)).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem))
        }
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = tls
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// A GET with the bearer token (read now: in-cluster tokens rotate).
    package static func get(_ url: String, _ config: Kubeconfig) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        if let bearer = config.currentToken { request.headers.add(name: "authorization", value: "Bearer \(bearer)") }
        request.headers.add(name: "accept", value: "application/json")
        return request
    }
}
