import Foundation
import SwitchyardCore
import Testing

@Suite struct ConfigDiffTests {
    static let base = """
        retry: { max_attempts: 3 }
        tenants:
          - { name: a, api_key_sha256: \(String(repeating: "a", count: 64)) }
        lanes:
          realtime: { slo: { ttft: 2s } }
        models:
          - name: m
            backends: [{ url: "http://10.0.0.1:8000/v1" }, { url: "http://10.0.0.2:8000/v1", weight: 1 }]
        """

    static func load(_ text: String) throws -> GatewayConfig { try ConfigLoader.load(yaml: text) }

    @Test func changesAreSaidPerLaneAndModelInPlainWords() throws {
        let new = Self.base
            .replacingOccurrences(of: "ttft: 2s", with: "ttft: 1s, tpot: 50ms")
            .replacingOccurrences(of: "weight: 1 }", with: "weight: 2 }, { url: \"http://10.0.0.3:8000/v1\" }")
            .replacingOccurrences(of: "{ url: \"http://10.0.0.1:8000/v1\" }, ", with: "")
            .replacingOccurrences(of: "max_attempts: 3", with: "max_attempts: 2")
        let diff = ConfigDiff(from: try Self.load(Self.base), to: try Self.load(new))
        let text = diff.changes.map(\.description)
        #expect(text.contains("lane realtime: slo.ttft 2s → 1s"), "\(text)")
        #expect(text.contains("lane realtime: slo.tpot none → 50ms"), "\(text)")
        #expect(text.contains("retry: max_attempts 3 → 2"), "\(text)")
        #expect(text.contains("model m backend http://10.0.0.2:8000/v1: weight 1 → 2"), "\(text)")
        #expect(text.contains { $0.hasPrefix("model m: backend http://10.0.0.3:8000/v1 added") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("model m: backend http://10.0.0.1:8000/v1 removed") }, "\(text)")
        #expect(diff.restartIssues.isEmpty)
    }

    @Test func restartOnlyChangesAreNamedByField() throws {
        let new = Self.base + "\n  - { name: n, backends: [] }\nserver: { port: 9090 }\n"
        let diff = ConfigDiff(from: try Self.load(Self.base), to: try Self.load(new))
        let paths = diff.restartIssues.map(\.path)
        #expect(paths.contains("server.port"), "\(paths)")
        #expect(paths.contains("models[1]"), "\(paths)")
        #expect(diff.restartIssues.first { $0.path == "server.port" }?.message.contains("port 8080 → 9090") == true)
    }

    @Test func identicalConfigsHaveNoChangesAndTokensAreNeverPrinted() throws {
        #expect(ConfigDiff(from: try Self.load(Self.base), to: try Self.load(Self.base)).isEmpty)
        let secrets = SecretSource(environment: ["T1": "first-token-0123456789", "T2": "second-token-0123456789"])
        let a = try ConfigLoader.load(yaml: Self.base + "\nadmin: { token: \"${T1}\" }", secrets: secrets)
        let b = try ConfigLoader.load(yaml: Self.base + "\nadmin: { token: \"${T2}\" }", secrets: secrets)
        let text = ConfigDiff(from: a, to: b).changes.map(\.description).joined()
        #expect(text == "admin: token replaced")
    }

    @Test func secretsComeFromTheEnvironmentOrAFileNeverTheYAML() throws {
        let source = SecretSource(environment: ["TOKEN": "env-token-0123456789"]) { path in
            path == "/run/secrets/admin" ? "file-token-0123456789\n" : nil
        }
        #expect(try ConfigLoader.load(yaml: "admin: { token: \"${TOKEN}\" }", secrets: source).admin.token == "env-token-0123456789")
        #expect(try ConfigLoader.load(yaml: "admin: { token: file:/run/secrets/admin }", secrets: source).admin.token == "file-token-0123456789")
        for (yaml, words) in [
            ("admin: { token: a-literal-token-in-the-yaml }", "not accepted in the YAML"), ("admin: { token: \"${NOPE}\" }", "NOPE is not set"),
            ("admin: { token: file:/missing }", "/missing cannot be read"),
        ] {
            do {
                _ = try ConfigLoader.load(yaml: yaml, secrets: source)
                Issue.record("\(yaml) was accepted")
            } catch {
                #expect(error.issues.first?.path == "admin.token")
                #expect(error.description.contains(words), "\(error)")
            }
        }
    }
}
