import Foundation
import Testing

@testable import SwitchyardProbe

@Suite struct KubeChecksTests {
    static func run(_ faults: Set<KubeFixture.Fault>) throws -> [CheckResult] {
        let dir = try KubeFixture(faults: faults).write()
        defer { try? FileManager.default.removeItem(at: dir) }
        return KubeChecks().run(try KubeSnapshot.load(directory: dir.path))
    }

    static func failing(_ r: [CheckResult]) -> Set<String> { Set(r.filter { $0.status == .fail }.map(\.id)) }
    static func warning(_ r: [CheckResult]) -> Set<String> { Set(r.filter { $0.status == .warn }.map(\.id)) }

    @Test func aHealthyClusterPasses() throws {
        let results = try Self.run([])
        #expect(
            Self.failing(results).isEmpty && Self.warning(results).isEmpty,
            "\(results.filter { $0.status != .pass }.map { "\($0.id) \($0.subject): \($0.message)" })")
        for id in ["k8s.node_ready", "k8s.gpu_labels", "k8s.gpu_product_pool", "k8s.pod_network_nad", "k8s.nad_resource", "k8s.network_status"] {
            #expect(results.contains { $0.id == id && $0.status == .pass }, "\(id)")
        }
    }

    @Test(arguments: [
        (KubeFixture.Fault.missingNAD, "k8s.pod_network_nad"), (.resourceNotRequested, "k8s.nad_resource"),
        (.resourceNotAllocatable, "k8s.nad_resource"),
        (.networkNotAttached, "k8s.network_status"), (.mtuMismatch, "k8s.network_status"), (.rdmaDeviceMissing, "k8s.network_status"),
        (.gpuCountMismatch, "k8s.gpu_labels"), (.mixedProductInPool, "k8s.gpu_product_pool"), (.nodeNotReady, "k8s.node_ready"),
        (.memoryPressure, "k8s.node_pressure"),
    ])
    func eachFaultIsCaughtByItsCheckAlone(fault: KubeFixture.Fault, check: String) throws {
        let results = try Self.run([fault])
        #expect(Self.failing(results) == [check], "\(results.filter { $0.status == .fail }.map { "\($0.id) \($0.subject): \($0.message)" })")
        let failure = try #require(results.first { $0.id == check && $0.status == .fail })
        #expect(!failure.evidence.isEmpty && failure.hint != nil)
    }

    @Test(arguments: [(KubeFixture.Fault.cordoned, "k8s.node_cordoned"), (.operatorComponentDisabled, "k8s.gpu_operator")])
    func someFindingsAreWarningsOnly(fault: KubeFixture.Fault, check: String) throws {
        let results = try Self.run([fault])
        #expect(Self.failing(results).isEmpty)
        #expect(Self.warning(results) == [check])
    }

    @Test func quantitiesAndNetworkAnnotationsParse() {
        #expect(Quantity.parse("7880620Ki") == Double(7_880_620 * 1024))
        #expect(Quantity.parse("1k") == 1000 && Quantity.parse("500m") == 0.5 && Quantity.parse("2Gi") == 2_147_483_648)
        #expect(Quantity.parse("8") == 8 && Quantity.parse("1e3") == 1000 && Quantity.parse("x") == nil)
        #expect(
            PodNetwork.parse("net1, other/net2@eth1 ,net3", podNamespace: "ns")
                == [
                    PodNetwork(namespace: "ns", name: "net1", interface: nil), PodNetwork(namespace: "other", name: "net2", interface: "eth1"),
                    PodNetwork(namespace: "ns", name: "net3", interface: nil),
                ])
        #expect(
            PodNetwork.parse(#"[{"name":"a","interface":"net1"},{"name":"b","namespace":"x"}]"#, podNamespace: "ns")
                == [PodNetwork(namespace: "ns", name: "a", interface: "net1"), PodNetwork(namespace: "x", name: "b", interface: nil)])
        #expect(PodNetwork.parse("[{oops", podNamespace: "ns") == nil)
    }

    @Test func missingDataIsUnknownNotAPass() throws {
        // Only pods: nodes unknown; the pods' resources cannot be checked on their nodes.
        var snapshot = KubeSnapshot()
        try snapshot.add(KubeFixture.list([KubeFixture().pod("trainer-0", node: "gpu-a", networksJSONForm: false)]), hint: "pods.json")
        try snapshot.add(KubeFixture.list([KubeFixture().nad("rdma-net")]), hint: "nads.json")
        let results = KubeChecks().run(snapshot)
        #expect(results.contains { $0.id == "k8s.node_ready" && $0.status == .warn && $0.message.hasPrefix("unknown") })
        #expect(results.contains { $0.id == "k8s.nad_resource" && $0.status == .warn && $0.message.hasPrefix("unknown") })
        #expect(!results.contains { $0.id == "k8s.nad_resource" && $0.status == .pass })
        // A NAD with an MTU and a status without one: unknown.
        var noMTU = KubeSnapshot()
        var pod = KubeFixture().pod("trainer-0", node: "gpu-a", networksJSONForm: false)
        let status = #"[{"name":"training/rdma-net","interface":"net1","ips":["192.168.10.2"],"device-info":{"pci":{"rdma-device":"mlx5_1"}}}]"#
        if case .object(var fields) = pod, let i = fields.firstIndex(where: { $0.0 == "metadata" }), case .object(var meta) = fields[i].1,
            let j = meta.firstIndex(where: { $0.0 == "annotations" })
        {
            meta[j].1 = .object([("k8s.v1.cni.cncf.io/networks", .string("rdma-net@net1")), ("k8s.v1.cni.cncf.io/network-status", .string(status))])
            fields[i].1 = .object(meta)
            pod = .object(fields)
        }
        try noMTU.add(KubeFixture.list([pod]))
        try noMTU.add(KubeFixture.list([KubeFixture().nad("rdma-net"), KubeFixture().node("gpu-a", gpus: 8)]))
        let mtu = KubeChecks().run(noMTU).filter { $0.id == "k8s.network_status" }
        #expect(mtu.contains { $0.status == .warn && $0.message.contains("does not report the attached MTU") }, "\(mtu)")
    }
}
