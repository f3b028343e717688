import Foundation
import NIOCore
import NIOSSL
import SwitchyardCore
import Synchronization

/// The listener's TLS context. Each new connection takes the context in force; ``reload()``
/// (on SIGHUP) reads the certificate, key and client CA again, so a renewed certificate
/// (cert-manager, a Secret update) is served without a restart. Connections already open keep
/// the one they started with. A reload that fails keeps the previous context.
package final class ListenerTLS: Sendable {
    let config: ListenerTLSConfig
    private let context: Mutex<(context: NIOSSLContext, notAfter: Date)>

    /// Reads the files; throws with the file named when one cannot be used.
    package init(_ config: ListenerTLSConfig) throws {
        self.config = config
        context = Mutex(try Self.load(config))
    }

    /// The context new connections use.
    var current: NIOSSLContext { context.withLock { $0.context } }
    /// When the certificate in force expires.
    var notAfter: Date { context.withLock { $0.notAfter } }

    /// Reads the files again and swaps the context in; returns the new certificate's expiry.
    @discardableResult
    package func reload() throws -> Date {
        let loaded = try Self.load(config)
        context.withLock { $0 = loaded }
        return loaded.notAfter
    }

    static func load(_ config: ListenerTLSConfig) throws -> (context: NIOSSLContext, notAfter: Date) {
        func read<T>(_ what: String, _ file: String, _ parse: (String) throws -> T) throws -> T {
            do {
                return try parse(file)
            } catch {
                throw ListenerTLSError(message: "server.tls.\(what): cannot use '\(file)': \(error)")
            }
        }
        let chain = try read("cert", config.certFile) { try NIOSSLCertificate.fromPEMFile($0) }
        guard let leaf = chain.first else { throw ListenerTLSError(message: "server.tls.cert: no certificate in '\(config.certFile)'") }
        let key = try read("key", config.keyFile) { try NIOSSLPrivateKey(file: $0, format: .pem) }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        // How long a connection the gateway closes waits for the client's close_notify. NIO SSL
        // keeps waiting even after the client's FIN (a client that just closes, as many do), so
        // with its 5 s default such sockets sat in CLOSE-WAIT and a graceful shutdown waited 5 s
        // for them (measured: 5.0 s of a 5.5 s shutdown). Nothing can arrive after a FIN anyway.
        tls.shutdownTimeout = .milliseconds(250)
        if let ca = config.clientCAFile {
            let roots = try read("client_ca", ca) { try NIOSSLCertificate.fromPEMFile($0) }
            tls.trustRoots = .certificates(roots)
            // Asked for, checked when presented; which routes require one is the admin API's call.
            tls.certificateVerification = .optionalVerification
        }
        let context = try read("cert", config.certFile) { _ in try NIOSSLContext(configuration: tls) }
        return (context, Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter)))
    }

    /// The verified client certificate of `channel`'s TLS connection, if it presented one.
    static func peerCertificate(of channel: any Channel) async -> NIOSSLCertificate? {
        try? await channel.nioSSL_peerCertificate().get()
    }

    /// The certificate's subject common name (from NIOSSL's description, the only public view).
    static func commonName(_ certificate: NIOSSLCertificate) -> String? {
        certificate.description.split(separator: ";").first { $0.hasPrefix("common_name=") }
            .map { String($0.dropFirst("common_name=".count).trimmingCharacters(in: CharacterSet(charactersIn: ">"))) }
    }
}

struct ListenerTLSError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// The client TLS configuration for `https://` backends: the CA file of `upstream.ca_file` in
/// place of the system's roots when set; the host name is checked either way.
enum UpstreamTLS {
    static func configuration(_ config: UpstreamConfig) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = config.caFile {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            } catch {
                throw ListenerTLSError(message: "upstream.ca_file: cannot use '\(ca)': \(error)")
            }
        }
        return tls
    }
}
