import Foundation
import NIOSSL

/// A throwaway PKI made with the openssl CLI in a fresh folder: a CA, a server certificate for
/// 127.0.0.1 and localhost, and client certificates from that CA or from a stranger CA.
/// Remove ``dir`` when done.
package struct TestCertificates: Sendable {
    package let dir: URL
    package var caFile: String { path("ca.pem") }
    package var serverCert: String { path("server.pem") }
    package var serverKey: String { path("server.key") }

    package init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try makeCA("ca")
        try makeCA("stranger-ca")
        try issue("server", commonName: "127.0.0.1", by: "ca", extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost")
    }

    package func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// A server configuration with the server certificate (for a test upstream over HTTPS).
    /// Closes as the gateway's listener does (see `ListenerTLS.load`), so a test server's
    /// shutdown does not wait 5 s on a client that sent FIN without close_notify.
    package func serverTLS() throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(serverCert).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: serverKey, format: .pem)))
        tls.shutdownTimeout = .milliseconds(250)
        return tls
    }

    /// Issues `name.pem`/`name.key` (a client certificate unless `extensions` say otherwise),
    /// signed by the CA `by` ("ca" or "stranger-ca").
    package func issue(_ name: String, commonName: String, by ca: String = "ca", extensions: String = "extendedKeyUsage=clientAuth") throws {
        try openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path("\(name).key"),
            "-out", path("\(name).csr"), "-subj", "/CN=\(commonName)",
        ])
        try extensions.write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).pem"), "-CAkey", path("\(ca).key"), "-set_serial",
            String(UInt32.random(in: 1...UInt32.max)), "-out", path("\(name).pem"), "-days", "1", "-extfile", path("\(name).ext"),
        ])
    }

    private func makeCA(_ name: String) throws {
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path("\(name).key"),
            "-out", path("\(name).pem"), "-days", "2", "-subj", "/CN=Switchyard test \(name)",
        ])
    }

    private func openssl(_ arguments: [String]) throws {
        let (status, output) = try TestProcess.run("/usr/bin/openssl", arguments)
        guard status == 0 else { throw TestCertificateError(message: "openssl \(arguments.first ?? ""): \(output)") }
    }
}

/// Runs a program to its end; its exit status and its stdout and stderr together.
package enum TestProcess {
    package static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

struct TestCertificateError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// curl, for what a real HTTPS client sees: its exit status, the HTTP status (0 when no response
/// came) and the body. `arguments` come before the URL (`--cacert`, `--cert`, `-H`…). It waits
/// on a Dispatch thread: blocking the few threads of Swift's cooperative pool would starve the
/// gateway under test of the very threads that answer curl.
package enum Curl {
    package static func run(_ url: String, _ arguments: [String] = []) async throws -> (exit: Int32, status: Int, body: String, stderr: String) {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try blocking(url, arguments) }) }
        }
    }

    static func blocking(_ url: String, _ arguments: [String]) throws -> (exit: Int32, status: Int, body: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"] + arguments + [url]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var text = String(decoding: data, as: UTF8.self)
        let code = text.split(separator: "\n").last.flatMap { Int($0) } ?? 0
        if let cut = text.lastIndex(of: "\n") { text = String(text[..<cut]) }
        return (process.terminationStatus, code, text, errors)
    }
}
