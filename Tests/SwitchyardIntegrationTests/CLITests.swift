import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardCLI

@Suite struct CLITests {
    @Test func flagsOverrideTheFile() throws {
        let file = try ConfigLoader.load(
            yaml: """
                server: { port: 9000 }
                models:
                  - name: m
                    backends: [{ url: "http://127.0.0.1:1/v1" }]
                """)
        #expect(file.server.port == 9000)
        var config = file
        config.server.port = 1234
        let model = try ConfigLoader.parseUpstreamFlag("m=http://127.0.0.1:2/v1,http://127.0.0.1:3/v1")
        config.models[0].backends = model.backends
        #expect(config.models[0].backends.count == 2)
        #expect(throws: (any Error).self) {
            try ServeCommand.effectiveConfig(text: "", host: nil, port: 70000, upstream: [])
        }
        let flagsOnly = try ServeCommand.effectiveConfig(text: "", host: "0.0.0.0", port: 0, upstream: ["a=http://127.0.0.1:5/v1"])
        #expect(flagsOnly.server.host == "0.0.0.0")
        #expect(flagsOnly.models.map(\.name) == ["a"])
    }

    @Test func effectiveConfigShowsEveryPolicy() throws {
        let config = try ConfigLoader.load(
            yaml: """
                models:
                  - name: smollm2
                    routing: { policy: prefix_affinity }
                    fallback: [backup]
                    backends: [{ url: "http://127.0.0.1:8000/v1", model: SmolLM2, max_inflight: 4 }]
                  - name: backup
                    backends: [{ url: "http://127.0.0.1:8001/v1" }]
                """)
        let text = EffectiveConfig.render(config)
        #expect(text.contains("configuration OK"))
        #expect(text.contains("smollm2: routing prefix_affinity (first 512 chars, bound (1+0.25)× average load); fallback backup"))
        #expect(text.contains("http://127.0.0.1:8000/v1"))
        #expect(text.contains("SmolLM2"))
        #expect(text.contains("retry: at most 3 attempts per pool, budget 20%"))
        // Which backends are discovered at run time, and which run under a configured limit.
        let rows = text.split(separator: "\n")
        #expect(rows.contains { $0.contains("http://127.0.0.1:8000/v1") && $0.hasSuffix("4 (max_inflight)") }, "\(text)")
        #expect(
            rows.contains {
                $0.contains("http://127.0.0.1:8001/v1")
                    && $0.contains("discovered at run time (/props, /get_server_info, /info, else learned from /metrics, else 256)")
            },
            "\(text)")
    }

    @Test func upstreamSettingsForCapacityAreValidated() throws {
        let config = try ConfigLoader.load(yaml: "upstream: { default_max_inflight: 64, discovery_timeout: 500ms }")
        #expect(config.upstream.defaultMaxInflight == 64 && config.upstream.discoveryTimeout == .milliseconds(500))
        #expect(throws: ConfigError.self) { try ConfigLoader.load(yaml: "upstream: { default_max_inflight: 0 }") }
        let explicitZero = try ConfigLoader.load(yaml: #"models: [{ name: m, backends: [{ url: "http://127.0.0.1:1/v1", max_inflight: 0 }] }]"#)
        #expect(explicitZero.models[0].backends[0].maxInflight == 0, "0 stays: unlimited on purpose")
    }
}

@Suite struct ConfigDiffCommandTests {
    @Test func diffSaysWhatChangesAndExitsThreeWhenARestartIsNeeded() throws {
        let dir = ManagedServeTests.tempDir()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let old = dir.appendingPathComponent("old.yaml").path
        let live = dir.appendingPathComponent("live.yaml").path
        let restart = dir.appendingPathComponent("restart.yaml").path
        let base = "lanes: { realtime: { slo: { ttft: 2s } } }\nmodels: [{ name: m, backends: [{ url: \"http://127.0.0.1:1/v1\" }] }]\n"
        try base.write(toFile: old, atomically: true, encoding: .utf8)
        try base.replacingOccurrences(of: "2s", with: "500ms").write(toFile: live, atomically: true, encoding: .utf8)
        try (base + "server: { port: 9999 }\n").write(toFile: restart, atomically: true, encoding: .utf8)
        let (ok, text) = try BenchCommandTests.run(ServeProcessTests.binary, ["config", "diff", old, live])
        #expect(ok == 0, "\(text)")
        #expect(text.contains("lane realtime:\n  - slo.ttft 2s → 500ms"), "\(text)")
        #expect(text.contains("1 change, all applied live on reload"), "\(text)")
        let (code, words) = try BenchCommandTests.run(ServeProcessTests.binary, ["config", "diff", old, restart])
        #expect(code == 3, "\(words)")
        #expect(words.contains("port 8080 → 9999  [needs a restart]"), "\(words)")
        let (bad, why) = try BenchCommandTests.run(ServeProcessTests.binary, ["config", "diff", old, old + ".missing"])
        #expect(bad != 0 && why.contains("cannot read"), "\(why)")
    }
}

@Suite struct KeysCommandTests {
    @Test func keysCreatePrintsTheKeyOnceAndTheLineThatAdmitsIt() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServeProcessTests.binary)
        process.arguments = ["keys", "create", "--tenant", "team-a", "--weight", "2"]
        let (out, err) = (Pipe(), Pipe())
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let key = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let note = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(key.hasPrefix("sk-sy-") && !key.contains("\n"), "only the key on stdout: \(key)")
        let line = try #require(note.split(separator: "\n").first { $0.contains("api_key_sha256") })
        #expect(line.contains("name: team-a") && line.contains(Digest.sha256Hex(key)) && line.contains("weight: 2"), "\(line)")
        // The line is a valid tenants entry.
        let config = try ConfigLoader.load(yaml: "tenants:\n\(line)\nmodels: [{ name: m, backends: [] }]")
        #expect(TenantKeys(config.tenants).tenant(forKey: key) == "team-a")
        let (status, words) = try BenchCommandTests.run(ServeProcessTests.binary, ["keys", "create", "--tenant", "no spaces"])
        #expect(status != 0 && words.contains("--tenant must be"), "\(words)")
    }
}
