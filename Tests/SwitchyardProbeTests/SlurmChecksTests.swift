import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardProbe

/// Slurm's own output formats (`scontrol show node -o`, gres.conf, topology.conf), healthy and
/// with one fault each.
@Suite struct SlurmChecksTests {
    enum Fault: CaseIterable { case nhcDrain, missingFromTopology, gresCountMismatch, gresCoresOnOtherSocket }

    static func scontrol(_ faults: Set<Fault>) -> String {
        (1...4).map { i in
            let name = String(format: "gpu%03d", i)
            let drained = faults.contains(.nhcDrain) && i == 2
            let gpus = faults.contains(.gresCountMismatch) && i == 3 ? 6 : 8
            return
                "NodeName=\(name) Arch=x86_64 CoresPerSocket=48 CPUAlloc=0 CPUEfctv=192 CPUTot=192 CPULoad=0.31 AvailableFeatures=h100,ib ActiveFeatures=h100,ib Gres=gpu:h100:\(gpus)(S:0-1) NodeAddr=\(name) NodeHostName=\(name) Version=23.02.7 OS=Linux 5.15.0-105-generic #115-Ubuntu SMP Mon Apr 15 09:52:04 UTC 2024 RealMemory=2063000 AllocMem=0 FreeMem=2011874 Sockets=2 Boards=1 State=\(drained ? "IDLE+DRAIN" : "IDLE") ThreadsPerCore=2 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=gpu,debug BootTime=2024-05-01T09:00:00 SlurmdStartTime=2024-05-01T09:01:00 LastBusyTime=2024-05-01T12:00:00 CfgTRES=cpu=192,mem=2063000M,billing=192,gres/gpu=\(gpus) AllocTRES= CapWatts=n/a CurrentWatts=0 AveWatts=0 ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s"
                + (drained ? " Reason=NHC: check_hw_ib: No IB port mlx5_0:1 is ACTIVE (LinkUp 400 Gb/sec). [root@2024-05-01T10:11:12]" : "")
        }.joined(separator: "\n") + "\n"
    }

    static func gresConf(_ faults: Set<Fault>) -> String {
        let (a, b) = faults.contains(.gresCoresOnOtherSocket) ? ("48-95", "0-47") : ("0-47", "48-95")
        return """
            # Generated for the test cluster
            AutoDetect=off
            NodeName=gpu[001-004] Name=gpu Type=h100 File=/dev/nvidia[0-3] Cores=\(a)
            NodeName=gpu[001-004] Name=gpu Type=h100 File=/dev/nvidia[4-7] Cores=\(b)

            """
    }

    static func topology(_ faults: Set<Fault>) -> String {
        """
        SwitchName=leaf0 Nodes=gpu[001-002]
        SwitchName=leaf1 Nodes=\(faults.contains(.missingFromTopology) ? "gpu003" : "gpu[003-004]")
        SwitchName=spine Switches=leaf[0-1]

        """
    }

    static func hosts() throws -> [String: TopoReport] {
        let fixture = try SysfsFixture()
        defer { fixture.remove() }
        var out: [String: TopoReport] = [:]
        for i in 1...4 {
            let name = String(format: "gpu%03d", i)
            let host = TopologyProbe(root: fixture.root.path).probe(hostname: name)
            out[name] = TopoReport(host: host, checks: [])
        }
        return out
    }

    static func run(_ faults: Set<Fault>, hosts: [String: TopoReport] = [:]) throws -> [CheckResult] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slurm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try scontrol(faults).write(to: dir.appendingPathComponent("scontrol-show-node.txt"), atomically: true, encoding: .utf8)
        try gresConf(faults).write(to: dir.appendingPathComponent("gres.conf"), atomically: true, encoding: .utf8)
        try topology(faults).write(to: dir.appendingPathComponent("topology.conf"), atomically: true, encoding: .utf8)
        return SlurmChecks(hosts: hosts).run(try SlurmSnapshot.load(directory: dir.path))
    }

    static func failing(_ r: [CheckResult]) -> Set<String> { Set(r.filter { $0.status == .fail }.map(\.id)) }

    @Test func aHealthyClusterPassesWithAndWithoutHostTopology() throws {
        let hosts = try Self.hosts()
        for given in [[:], hosts] {
            let results = try Self.run([], hosts: given)
            #expect(
                results.allSatisfy { $0.status == .pass }, "\(results.filter { $0.status != .pass }.map { "\($0.id) \($0.subject): \($0.message)" })")
        }
        #expect(try Self.run([], hosts: hosts).contains { $0.id == "slurm.gres_cores" && $0.status == .pass })
    }

    @Test(arguments: [
        (Fault.nhcDrain, "slurm.node_state"), (.missingFromTopology, "slurm.topology"), (.gresCountMismatch, "slurm.gres"),
        (.gresCoresOnOtherSocket, "slurm.gres_cores"),
    ])
    func eachFaultIsCaughtByItsCheckAlone(fault: Fault, check: String) throws {
        let results = try Self.run([fault], hosts: try Self.hosts())
        #expect(Self.failing(results) == [check], "\(results.filter { $0.status == .fail }.map { "\($0.id) \($0.subject): \($0.message)" })")
        let failure = try #require(results.first { $0.id == check && $0.status == .fail })
        #expect(!failure.evidence.isEmpty && failure.hint != nil)
        if fault == .nhcDrain {
            #expect(failure.subject == "gpu002")
            #expect(failure.message.contains("node health check (NHC) failed: NHC: check_hw_ib: No IB port mlx5_0:1 is ACTIVE"), "\(failure.message)")
            #expect(!failure.message.contains("[root@"), "the reason's stamp is not part of it")
        }
    }

    @Test func parsersReadSlurmsFormats() throws {
        #expect(try Hostlist.expand("gpu[001-003,010],cpu1") == ["gpu001", "gpu002", "gpu003", "gpu010", "cpu1"])
        #expect(try Hostlist.expand("r[1-2]-n[1-2]") == ["r1-n1", "r1-n2", "r2-n1", "r2-n2"])
        #expect(throws: SlurmSnapshot.ParseError.self) { try Hostlist.expand("gpu[1-") }
        let nodes = SlurmSnapshot.parseNodes(Self.scontrol([.nhcDrain]))
        #expect(nodes.count == 4 && nodes[1].states == ["IDLE", "DRAIN"] && nodes[1].partitions == ["gpu", "debug"])
        #expect(nodes[0].fields["OS"]?.hasPrefix("Linux 5.15.0-105-generic #115-Ubuntu SMP") == true, "values with spaces stay whole")
        #expect(nodes[0].gres == [SlurmSnapshot.GRES(name: "gpu", type: "h100", count: 8)])
        #expect(SlurmSnapshot.parseGres("gpu:2,shard:8") == [.init(name: "gpu", type: nil, count: 2), .init(name: "shard", type: nil, count: 8)])
        let json = #"{"nodes":[{"name":"n1","state":["IDLE","DRAIN"],"reason":"NHC: disk","gres":"gpu:a100:4","partitions":["p"]}]}"#
        let parsed = try SlurmSnapshot.parseNodesJSON(json)
        #expect(parsed[0].states == ["IDLE", "DRAIN"] && parsed[0].reason == "NHC: disk" && parsed[0].gres.first?.count == 4)
        let sinfo = SlurmSnapshot.parseSinfo(
            "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\ndebug*       up   infinite      1   idle vm\ngpu       down   infinite     16  alloc gpu[001-016]\ngpu       down   infinite      2   idle gpu[017-018]\n"
        )
        #expect(sinfo == ["debug": "up", "gpu": "down"])
        var snapshot = SlurmSnapshot()
        snapshot.partitions = sinfo
        let down = SlurmChecks().partitions(snapshot)
        #expect(down.map { "\($0.id) \($0.subject) \($0.status)" } == ["slurm.partition gpu fail"])
        let block = try SlurmSnapshot.parseTopology("BlockName=b1 Nodes=gpu[001-004]\nBlockName=b2 Nodes=gpu[005-008]\nBlockSizes=4,8\n")
        #expect(block["b2"] == ["gpu005", "gpu006", "gpu007", "gpu008"])
        #expect(CPUList.parse("0-2,8") == [0, 1, 2, 8])
    }
}

/// Slurm nodes running as pods (SUNK / Slinky style).
@Suite struct SlurmOnKubeChecksTests {
    static func pod(_ node: String, phase: String = "Running", gpus: Int = 8) -> JSONValue {
        .object([
            ("metadata", .object([("name", .string("slurmd-\(node)")), ("namespace", .string("slurm"))])),
            (
                "spec",
                .object([
                    ("hostname", .string(node)), ("nodeName", .string("k8s-\(node)")),
                    (
                        "containers",
                        .array([
                            .object([
                                ("name", .string("slurmd")),
                                ("resources", .object([("limits", .object([("nvidia.com/gpu", .string(String(gpus)))]))])),
                            ])
                        ])
                    ),
                ])
            ),
            ("status", .object([("phase", .string(phase))])),
        ])
    }

    @Test func eachSlurmNodeMapsToARunningPodHoldingItsGPUs() {
        let slurm = { () -> SlurmSnapshot in
            var s = SlurmSnapshot()
            s.nodes = SlurmSnapshot.parseNodes(SlurmChecksTests.scontrol([]))
            return s
        }()
        func run(_ pods: [JSONValue]) -> [CheckResult] {
            var kube = KubeSnapshot()
            kube.pods = pods
            return SlurmOnKubeChecks().run(slurm: slurm, kube: kube)
        }
        let healthy = run((1...4).map { Self.pod(String(format: "gpu%03d", $0)) })
        #expect(healthy.allSatisfy { $0.status == .pass }, "\(healthy)")
        let missing = run((1...3).map { Self.pod(String(format: "gpu%03d", $0)) })
        #expect(missing.filter { $0.status == .fail }.map { "\($0.id) \($0.subject)" } == ["sunk.pod gpu004"])
        let pending = run([Self.pod("gpu001", phase: "Pending")] + (2...4).map { Self.pod(String(format: "gpu%03d", $0)) })
        #expect(pending.filter { $0.status == .fail }.map(\.id) == ["sunk.pod"])
        #expect(pending.first { $0.status == .fail }?.message.contains("Pending (Kubernetes node k8s-gpu001)") == true)
        let fewer = run([Self.pod("gpu001", gpus: 4)] + (2...4).map { Self.pod(String(format: "gpu%03d", $0)) })
        #expect(fewer.filter { $0.status == .fail }.map { "\($0.id) \($0.subject)" } == ["sunk.gres gpu001"])
    }
}
