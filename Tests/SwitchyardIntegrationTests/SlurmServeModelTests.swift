import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardGateway

/// deploy/slurm/serve-model.sbatch on a real one-node Slurm (scripts/slurm.sh): the job's
/// pre-flight runs `switchyard topo`, its llama.cpp server registers with the gateway and serves
/// through it, and `scancel` takes it out of the pool with no failed request.
@Suite(.serialized, .tags(.timing)) struct SlurmServeModelTests {
    static let token = "slurm-admin-token-0123456789"
    static var script: String { LlamaServer.repoRoot.appendingPathComponent("deploy/slurm/serve-model.sbatch").path }

    static func sbatch(_ cluster: SlurmClusterTests.Cluster, _ env: [String: String], output: String) throws -> String {
        let exports = (["ALL"] + env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: ",")
        let (status, text) = try BenchCommandTests.run(
            "/usr/bin/env", ["SLURM_CONF=\(cluster.conf)", "sbatch", "--parsable", "--output", output, "--export", exports, script])
        try #require(status == 0, "sbatch: \(text)")
        return text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first.map(String.init) ?? ""
    }

    static func state(_ cluster: SlurmClusterTests.Cluster, _ job: String) -> String {
        let (_, text) = (try? cluster.scontrol(["show", "job", job, "-o"])) ?? (1, "")
        return text.split(separator: " ").first { $0.hasPrefix("JobState=") }.map { String($0.dropFirst(9)) } ?? "GONE"
    }

    static func registered(_ gateway: Gateway) -> [String] {
        gateway.pools["smollm2"]!.snapshot().filter { gateway.pools["smollm2"]!.isRegistered($0.index) }.map(\.backend.id)
    }

    @Test func aJobJoinsThePoolServesAndLeavesOnScancelWithNoFailedRequest() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let cluster = try SlurmClusterTests.Cluster()
        defer { cluster.stop() }
        let dir = ManagedServeTests.tempDir()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenFile = dir.appendingPathComponent("admin-token").path
        try Self.token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let failExpectations = dir.appendingPathComponent("expect.yaml").path
        try "gpus: { count: 8 }\n".write(toFile: failExpectations, atomically: true, encoding: .utf8)

        let config = GatewayHarness.config(models: [ModelConfig(name: "smollm2", backends: [])]) { $0.admin.token = Self.token }
        try await GatewayHarness.with(config) { gateway, base in
            var env = [
                "SWITCHYARD_GATEWAY": base, "SWITCHYARD_MODEL": "smollm2", "SWITCHYARD_ADMIN_TOKEN_FILE": tokenFile,
                "SWITCHYARD_BIN": ServeProcessTests.binary, "MODEL_HOST": "127.0.0.1", "HEARTBEAT_SECONDS": "2", "TTL_SECONDS": "10",
                "MODEL_SERVER_CMD":
                    "\(LlamaServer.python) \(LlamaServer.repoRoot.appendingPathComponent("scripts/llama_server.py").path) --parallel 2 --ctx 2048 --threads 1 --port {port}",
                "READY_TIMEOUT_SECONDS": "120",
            ]
            // A node that fails the pre-flight never starts its model server.
            env["TOPO_EXPECT"] = failExpectations
            let refusedLog = dir.appendingPathComponent("refused.out").path
            let refused = try Self.sbatch(cluster, env, output: refusedLog)
            #expect(await Poll.until(.seconds(60)) { ["FAILED", "COMPLETED", "GONE"].contains(Self.state(cluster, refused)) })
            let refusedText = (try? String(contentsOfFile: refusedLog, encoding: .utf8)) ?? ""
            #expect(Self.state(cluster, refused) == "FAILED", "\(refusedText)")
            #expect(refusedText.contains("pre-flight failed") && !refusedText.contains("starting:"), "\(refusedText)")
            #expect(Self.registered(gateway).isEmpty)

            env["TOPO_EXPECT"] = nil
            let log = dir.appendingPathComponent("job.out").path
            let job = try Self.sbatch(cluster, env, output: log)
            #expect(
                await Poll.until(.seconds(60)) { Self.registered(gateway).count == 1 },
                "\(String(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(1500)))")
            let url = try #require(Self.registered(gateway).first)
            let served = try await TestClient.post(
                "\(base)/v1/chat/completions", #"{"model":"smollm2","messages":[{"role":"user","content":"Hi"}],"max_tokens":4}"#)
            #expect(served.status == 200, "served by the job's server: \(served.body)")

            // Another server joins (a second job's worth), so traffic has somewhere to go after
            // the first leaves; load keeps flowing while the first job is cancelled.
            let other = try await LlamaServer.shared.url()
            let joined = try await TestClient.post(
                "\(base)/admin/backends", #"{"url":"\#(other)","model":"smollm2","ttl":600}"#, headers: ["authorization": "Bearer \(Self.token)"])
            #expect(joined.status == 201, "\(joined.body)")
            // The clients stop only after four more requests were started once the job has gone,
            // so the load spans the cancel however slowly requests are served.
            let started = Atomic<Int>(0)
            let stopAt = Atomic<Int>(Int.max)
            async let statuses = ManagedServeTests.loadStatuses(base: "\(base)/v1", clients: 2) {
                started.add(1, ordering: .relaxed).newValue > stopAt.load(ordering: .relaxed)
            }
            try await Task.sleep(for: .milliseconds(500))
            let (cancelled, why) = try BenchCommandTests.run("/usr/bin/env", ["SLURM_CONF=\(cluster.conf)", "scancel", job])
            #expect(cancelled == 0, "\(why)")
            #expect(await Poll.until(.seconds(60)) { !Self.registered(gateway).contains(url) }, "left the pool")
            #expect(await Poll.until(.seconds(60)) { !["RUNNING", "PENDING", "COMPLETING"].contains(Self.state(cluster, job)) })
            stopAt.store(started.load(ordering: .relaxed) + 4, ordering: .relaxed)
            let codes = try await statuses
            #expect(codes.count >= 4)
            #expect(codes.allSatisfy { $0 == 200 }, "no failed request: \(codes.filter { $0 != 200 })")
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(text.contains("registered as smollm2-"), "\(text)")
            #expect(text.contains("deregistering") && text.contains("\"removed\":true"), "\(text)")
        }
    }
}
