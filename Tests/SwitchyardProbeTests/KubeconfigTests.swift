import Foundation
import Testing

@testable import SwitchyardCore
@testable import SwitchyardProbe

@Suite struct KubeconfigTests {
    static let text = """
        apiVersion: v1
        kind: Config
        current-context: prod
        clusters:
          - name: prod-cluster
            cluster: { server: "https://10.0.0.1:6443", certificate-authority-data: \(Data("CA-PEM".utf8).base64EncodedString()) }
          - name: lab
            cluster: { server: "https://lab:6443", certificate-authority: ca.crt, insecure-skip-tls-verify: false }
        users:
          - name: admin
            user: { client-certificate-data: \(Data("CERT".utf8).base64EncodedString()), client-key-data: \(Data("KEY".utf8).base64EncodedString()) }
          - name: robot
            user: { tokenFile: token.txt }
          - name: cloud
            user: { exec: { command: gke-gcloud-auth-plugin } }
        contexts:
          - { name: prod, context: { cluster: prod-cluster, user: admin } }
          - { name: lab, context: { cluster: lab, user: robot } }
          - { name: gke, context: { cluster: lab, user: cloud } }
        """

    @Test func contextsCredentialsAndFilesAreResolved() throws {
        let prod = try Kubeconfig.parse(Self.text)
        #expect(prod.context == "prod" && prod.server == "https://10.0.0.1:6443" && prod.caPEM == "CA-PEM")
        #expect(prod.clientCertificatePEM == "CERT" && prod.clientKeyPEM == "KEY" && prod.token == nil)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "LAB-CA".write(to: dir.appendingPathComponent("ca.crt"), atomically: true, encoding: .utf8)
        try "tok-123\n".write(to: dir.appendingPathComponent("token.txt"), atomically: true, encoding: .utf8)
        let lab = try Kubeconfig.parse(Self.text, context: "lab", directory: dir.path)
        #expect(lab.caPEM == "LAB-CA" && lab.token == "tok-123", "files are read relative to the kubeconfig")

        #expect(throws: Kubeconfig.LoadError.self) { try Kubeconfig.parse(Self.text, context: "gke", directory: dir.path) }
        #expect(throws: Kubeconfig.LoadError.self) { try Kubeconfig.parse(Self.text, context: "nope") }
        do {
            _ = try Kubeconfig.parse(Self.text, context: "gke", directory: dir.path)
        } catch {
            #expect(error.description.contains("exec or auth-provider plugin"), "\(error)")
        }
    }

    @Test func inAPodTheServiceAccountIsUsedAndItsTokenReadAtEachUse() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sa-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "SA-CA".write(to: dir.appendingPathComponent("ca.crt"), atomically: true, encoding: .utf8)
        try "first\n".write(to: dir.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        try "ml\n".write(to: dir.appendingPathComponent("namespace"), atomically: true, encoding: .utf8)
        let config = try Kubeconfig.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: dir.path)
        #expect(config.server == "https://10.96.0.1:443" && config.caPEM == "SA-CA" && config.namespace == "ml")
        #expect(config.currentToken == "first")
        // Projected tokens rotate: the next connection reads the new one.
        try "second".write(to: dir.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        #expect(config.currentToken == "second")
        #expect(throws: Kubeconfig.LoadError.self) { try Kubeconfig.inCluster(environment: [:], directory: dir.path) }
        #expect(throws: Kubeconfig.LoadError.self) {
            try Kubeconfig.inCluster(environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1"], directory: dir.path + "/missing")
        }
    }
}
