import Foundation
import SwitchyardCore

/// `kubectl get nodes|pods|network-attachment-definitions -A -o json` of a small GPU cluster:
/// two H100 nodes in one pool with an SR-IOV RDMA network (MTU 9000) and a CPU node; two pods
/// on it (the comma form and the JSON form of the networks annotation). Optional faults.
struct KubeFixture {
    enum Fault: String, CaseIterable {
        case missingNAD, resourceNotRequested, resourceNotAllocatable, networkNotAttached, mtuMismatch, rdmaDeviceMissing
        case gpuCountMismatch, mixedProductInPool, nodeNotReady, memoryPressure
        // Warnings only:
        case cordoned, operatorComponentDisabled
    }

    var faults: Set<Fault> = []

    static let rdmaResource = "nvidia.com/mlnx_rdma"

    func node(_ name: String, gpus: Int, product: String = "NVIDIA-H100-80GB-HBM3", rdma: Int = 8) -> JSONValue {
        var labels: [(String, JSONValue)] = [
            ("kubernetes.io/hostname", .string(name)), ("cloud.google.com/gke-nodepool", .string(gpus > 0 ? "gpu-pool" : "cpu-pool")),
        ]
        var allocatable: [(String, JSONValue)] = [("cpu", .string("190")), ("memory", .string("2113455748Ki")), ("pods", .string("110"))]
        if gpus > 0 {
            labels += [
                ("nvidia.com/gpu.present", .string("true")), ("nvidia.com/gpu.count", .string(String(gpus))),
                ("nvidia.com/gpu.product", .string(product)),
            ]
            var advertised = gpus
            if faults.contains(.gpuCountMismatch) && name == "gpu-a" { advertised -= 1 }
            allocatable += [
                ("nvidia.com/gpu", .string(String(advertised))),
                (Self.rdmaResource, .string(faults.contains(.resourceNotAllocatable) && name == "gpu-a" ? "0" : String(rdma))),
            ]
            if faults.contains(.operatorComponentDisabled) && name == "gpu-b" {
                labels.append(("nvidia.com/gpu.deploy.dcgm-exporter", .string("false")))
            }
        }
        var conditions: [JSONValue] = [
            .object([
                ("type", .string("MemoryPressure")), ("status", .string(faults.contains(.memoryPressure) && name == "gpu-b" ? "True" : "False")),
                ("message", .string("kubelet has sufficient memory available")),
            ]),
            .object([("type", .string("DiskPressure")), ("status", .string("False"))]),
            .object([("type", .string("PIDPressure")), ("status", .string("False"))]),
        ]
        let notReady = faults.contains(.nodeNotReady) && name == "cpu-a"
        conditions.append(
            .object([
                ("type", .string("Ready")), ("status", .string(notReady ? "Unknown" : "True")),
                ("reason", .string(notReady ? "NodeStatusUnknown" : "KubeletReady")),
                ("message", .string(notReady ? "Kubelet stopped posting node status." : "kubelet is posting ready status")),
            ]))
        var spec: [(String, JSONValue)] = [("podCIDR", .string("10.0.1.0/24"))]
        if faults.contains(.cordoned) && name == "cpu-a" {
            spec += [
                ("unschedulable", .bool(true)),
                ("taints", .array([.object([("effect", .string("NoSchedule")), ("key", .string("node.kubernetes.io/unschedulable"))])])),
            ]
        }
        return .object([
            ("apiVersion", .string("v1")), ("kind", .string("Node")),
            ("metadata", .object([("name", .string(name)), ("labels", .object(labels))])),
            ("spec", .object(spec)),
            ("status", .object([("allocatable", .object(allocatable)), ("capacity", .object(allocatable)), ("conditions", .array(conditions))])),
        ])
    }

    func nad(_ name: String, mtu: Int = 9000) -> JSONValue {
        let config =
            #"{"cniVersion":"0.3.1","name":"\#(name)","plugins":[{"type":"sriov","vlan":0,"mtu":\#(mtu),"ipam":{"type":"whereabouts","range":"192.168.10.0/24"}},{"type":"rdma"}]}"#
        return .object([
            ("apiVersion", .string("k8s.cni.cncf.io/v1")), ("kind", .string("NetworkAttachmentDefinition")),
            (
                "metadata",
                .object([
                    ("name", .string(name)), ("namespace", .string("training")),
                    ("annotations", .object([("k8s.v1.cni.cncf.io/resourceName", .string(Self.rdmaResource))])),
                ])
            ),
            ("spec", .object([("config", .string(config))])),
        ])
    }

    func pod(_ name: String, node: String, networksJSONForm: Bool) -> JSONValue {
        let networks =
            networksJSONForm
            ? #"[{"name":"rdma-net","namespace":"training","interface":"net1"}]"#
            : (faults.contains(.missingNAD) && name == "trainer-0" ? "training/rdma-nett@net1" : "rdma-net@net1")
        var status: [JSONValue] = [
            .object([("name", .string("cilium")), ("interface", .string("eth0")), ("ips", .array([.string("10.0.1.7")])), ("default", .bool(true))])
        ]
        if !(faults.contains(.networkNotAttached) && name == "trainer-1") {
            var pci: [(String, JSONValue)] = [("pci-address", .string("0000:1a:00.2"))]
            if !(faults.contains(.rdmaDeviceMissing) && name == "trainer-0") { pci.append(("rdma-device", .string("mlx5_12"))) }
            status.append(
                .object([
                    ("name", .string("training/rdma-net")), ("interface", .string("net1")),
                    ("ips", .array([.string("192.168.10.\(name.last!.wholeNumberValue! + 2)")])),
                    ("mac", .string("02:00:00:00:00:0\(name.last!)")),
                    ("mtu", .number(faults.contains(.mtuMismatch) && name == "trainer-1" ? 1500 : 9000)),
                    ("device-info", .object([("type", .string("pci")), ("version", .string("1.1.0")), ("pci", .object(pci))])),
                ]))
        }
        let requested = faults.contains(.resourceNotRequested) && name == "trainer-1" ? [] : [(Self.rdmaResource, JSONValue.string("1"))]
        let resources = JSONValue.object([
            ("requests", .object([("nvidia.com/gpu", .string("8"))] + requested)),
            ("limits", .object([("nvidia.com/gpu", .string("8"))] + requested)),
        ])
        return .object([
            ("apiVersion", .string("v1")), ("kind", .string("Pod")),
            (
                "metadata",
                .object([
                    ("name", .string(name)), ("namespace", .string("training")),
                    (
                        "annotations",
                        .object([
                            ("k8s.v1.cni.cncf.io/networks", .string(networks)),
                            ("k8s.v1.cni.cncf.io/network-status", .string(String(decoding: JSONValue.array(status).serialized(), as: UTF8.self))),
                        ])
                    ),
                ])
            ),
            (
                "spec",
                .object([
                    ("nodeName", .string(node)),
                    (
                        "containers",
                        .array([
                            .object([("name", .string("trainer")), ("image", .string("nvcr.io/nvidia/pytorch:24.05-py3")), ("resources", resources)])
                        ])
                    ),
                ])
            ),
            ("status", .object([("phase", .string("Running"))])),
        ])
    }

    static func list(_ items: [JSONValue]) -> JSONValue {
        .object([
            ("apiVersion", .string("v1")), ("items", .array(items)), ("kind", .string("List")),
            ("metadata", .object([("resourceVersion", .string(""))])),
        ])
    }

    /// Writes nodes.json, pods.json and network-attachment-definitions.json into a new folder.
    func write() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kube-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let nodes = [
            node("gpu-a", gpus: 8),
            node("gpu-b", gpus: 8, product: faults.contains(.mixedProductInPool) ? "NVIDIA-A100-SXM4-80GB" : "NVIDIA-H100-80GB-HBM3"),
            node("cpu-a", gpus: 0),
        ]
        let pods = [pod("trainer-0", node: "gpu-a", networksJSONForm: false), pod("trainer-1", node: "gpu-b", networksJSONForm: true)]
        let nads = [nad("rdma-net")]
        for (file, items) in [("nodes.json", nodes), ("pods.json", pods), ("network-attachment-definitions.json", nads)] {
            try Data(Self.list(items).serialized()).write(to: dir.appendingPathComponent(file))
        }
        return dir
    }
}
