import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// `switchyard cluster slurm` against a real one-node Slurm (Debian's slurmctld, slurmd and munge,
/// started by scripts/slurm.sh): a drain with an NHC reason fails the check until the node is
/// resumed, and GRES the node cannot back is caught from the scheduler's own verdict.
@Suite(.serialized, .tags(.timing)) struct SlurmClusterTests {
    struct Cluster {
        let dir: String
        let conf: String
        let node: String

        /// Starts scripts/slurm.sh in `mode` (healthy or gres-mismatch).
        init(mode: String = "healthy") throws {
            let (status, output) = try BenchCommandTests.run(
                "/bin/bash", [LlamaServer.repoRoot.appendingPathComponent("scripts/slurm.sh").path, "start", mode])
            try #require(status == 0, "scripts/slurm.sh start: \(output)")
            var env: [String: String] = [:]
            for line in output.split(separator: "\n") where line.hasPrefix("export ") {
                let kv = line.dropFirst(7).split(separator: "=", maxSplits: 1)
                if kv.count == 2 { env[String(kv[0])] = String(kv[1]) }
            }
            dir = try #require(env["SWITCHYARD_TEST_SLURM_DIR"], "\(output)")
            conf = try #require(env["SLURM_CONF"], "\(output)")
            node = try #require(env["SWITCHYARD_TEST_SLURM_NODE"], "\(output)")
        }

        func stop() {
            _ = try? BenchCommandTests.run("/bin/bash", [LlamaServer.repoRoot.appendingPathComponent("scripts/slurm.sh").path, "stop", dir])
        }

        func scontrol(_ arguments: [String]) throws -> (Int32, String) {
            try BenchCommandTests.run("/usr/bin/env", ["SLURM_CONF=\(conf)", "scontrol"] + arguments)
        }

        /// `switchyard cluster slurm --format json` run live (it asks scontrol itself).
        func check() throws -> (Int32, [JSONValue]) {
            let (status, output) = try BenchCommandTests.run(
                "/usr/bin/env", ["SLURM_CONF=\(conf)", ServeProcessTests.binary, "cluster", "slurm", "--format", "json"])
            let start = output.firstIndex(of: "{") ?? output.startIndex
            let json = try JSONParser.parse(String(output[start...]))
            return (status, json["checks"]?.arrayValue ?? [])
        }
    }

    static func failing(_ checks: [JSONValue]) -> [JSONValue] { checks.filter { $0["status"] == .string("fail") } }

    @Test func anNHCDrainFailsTheCheckUntilTheNodeIsResumed() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let cluster = try Cluster()
        defer { cluster.stop() }
        let (status, healthy) = try cluster.check()
        #expect(status == 0 && Self.failing(healthy).isEmpty, "\(healthy)")
        #expect(healthy.contains { $0["id"] == .string("slurm.node_state") && $0["status"] == .string("pass") })
        #expect(healthy.contains { $0["id"] == .string("slurm.topology") && $0["status"] == .string("pass") })

        let reason = "NHC: check_fs_mount: /scratch not mounted"
        #expect(try cluster.scontrol(["update", "nodename=\(cluster.node)", "state=drain", "reason=\(reason)"]).0 == 0)
        let (drainedStatus, drained) = try cluster.check()
        #expect(drainedStatus == 2)
        let failure = try #require(Self.failing(drained).first)
        #expect(failure["id"] == .string("slurm.node_state") && failure["subject"] == .string(cluster.node))
        #expect(failure["message"]?.stringValue?.contains("node health check (NHC) failed: \(reason)") == true, "\(failure)")
        #expect(failure["fix"]?.stringValue?.contains("state=resume") == true)

        #expect(try cluster.scontrol(["update", "nodename=\(cluster.node)", "state=resume"]).0 == 0)
        var resumed: [JSONValue] = []
        let deadline = ContinuousClock.now + .seconds(20)
        repeat {
            resumed = try cluster.check().1
            if Self.failing(resumed).isEmpty { break }
            try await Task.sleep(for: .milliseconds(200))
        } while ContinuousClock.now < deadline
        #expect(Self.failing(resumed).isEmpty, "\(resumed)")
    }

    @Test func gresTheNodeCannotBackIsCaughtFromTheSchedulersVerdict() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let cluster = try Cluster(mode: "gres-mismatch")
        defer { cluster.stop() }
        // slurmd registers with no GPUs; the controller drains the node.
        var failures: [JSONValue] = []
        let deadline = ContinuousClock.now + .seconds(30)
        repeat {
            failures = Self.failing(try cluster.check().1)
            if failures.contains(where: { $0["id"] == .string("slurm.node_state") }) { break }
            try await Task.sleep(for: .milliseconds(250))
        } while ContinuousClock.now < deadline
        let state = try #require(failures.first { $0["id"] == .string("slurm.node_state") }, "\(failures)")
        #expect(state["message"]?.stringValue?.contains("gres/gpu count reported lower than configured") == true, "\(state)")
        #expect(state["message"]?.stringValue?.contains("the node's GPUs disagree with its configuration") == true)
        #expect(failures.contains { $0["id"] == .string("slurm.gres") }, "Slurm's Gres and gres.conf disagree too: \(failures)")
    }
}
