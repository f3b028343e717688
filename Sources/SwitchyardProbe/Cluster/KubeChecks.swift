import Foundation
import SwitchyardCore

/// Checks that Kubernetes agrees with the hardware it schedules onto: node health, GPU labels
/// against allocatable GPUs, and every secondary network (Multus) a pod asks for — its
/// NetworkAttachmentDefinition, its device resource, what the CNI attached and at which MTU.
/// Missing data is reported as unknown (a warning naming what is missing), never as a pass.
package struct KubeChecks: Sendable {
    static let networksKey = "k8s.v1.cni.cncf.io/networks"
    static let statusKey = "k8s.v1.cni.cncf.io/network-status"
    static let resourceKey = "k8s.v1.cni.cncf.io/resourceName"
    static let gpuResource = "nvidia.com/gpu"
    static let poolLabels = [
        "cloud.google.com/gke-nodepool", "eks.amazonaws.com/nodegroup", "kubernetes.azure.com/agentpool", "agentpool", "nodepool",
        "node.kubernetes.io/instance-type",
    ]

    package init() {}

    package func run(_ s: KubeSnapshot) -> [CheckResult] {
        nodeHealth(s) + gpuLabels(s) + gpuProductPerPool(s) + gpuOperator(s) + podNetworks(s)
    }

    static func pass(_ id: String, _ message: String) -> CheckResult { CheckResult(id: id, status: .pass, subject: "cluster", message: message) }

    // MARK: Nodes

    func nodeHealth(_ s: KubeSnapshot) -> [CheckResult] {
        guard !s.nodes.isEmpty else {
            return [CheckResult(id: "k8s.node_ready", status: .warn, subject: "cluster", message: "unknown: no Node objects in the input")]
        }
        var results: [CheckResult] = []
        for node in s.nodes {
            let conditions = node["status"]?["conditions"]?.arrayValue ?? []
            func condition(_ type: String) -> JSONValue? { conditions.first { $0["type"]?.stringValue == type } }
            if let ready = condition("Ready") {
                if ready["status"]?.stringValue != "True" {
                    results.append(
                        CheckResult(
                            id: "k8s.node_ready", status: .fail, subject: node.name,
                            message: "NotReady: \(ready["reason"]?.stringValue ?? "") \(ready["message"]?.stringValue ?? "")".trimmingCharacters(
                                in: .whitespaces),
                            evidence: [Evidence("status.conditions[Ready].status", ready["status"]?.stringValue ?? "?")],
                            hint: "kubectl describe node \(node.name); check the kubelet and container runtime on it"))
                }
            } else {
                results.append(
                    CheckResult(
                        id: "k8s.node_ready", status: .warn, subject: node.name, message: "unknown: the node has no Ready condition",
                        evidence: [Evidence("status.conditions", "\(conditions.count) conditions, none of type Ready")]))
            }
            for pressure in ["MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"]
            where condition(pressure)?["status"]?.stringValue == "True" {
                results.append(
                    CheckResult(
                        id: "k8s.node_pressure", status: .fail, subject: node.name,
                        message: "\(pressure): \(condition(pressure)?["message"]?.stringValue ?? "")",
                        evidence: [Evidence("status.conditions[\(pressure)].status", "True")],
                        hint: "the kubelet evicts and refuses pods while under pressure; free the resource or drain the node"))
            }
            if node["spec"]?["unschedulable"]?.boolValue == true {
                results.append(
                    CheckResult(
                        id: "k8s.node_cordoned", status: .warn, subject: node.name, message: "cordoned: new pods are not scheduled here",
                        evidence: [Evidence("spec.unschedulable", "true")]
                            + (node["spec"]?["taints"]?.arrayValue ?? []).map {
                                Evidence(
                                    "spec.taints",
                                    "\($0["key"]?.stringValue ?? "")=\($0["value"]?.stringValue ?? ""):\($0["effect"]?.stringValue ?? "")")
                            },
                        hint: "kubectl uncordon \(node.name) once its maintenance is done"))
            }
        }
        if !results.contains(where: { $0.status == .fail && $0.id == "k8s.node_ready" }) {
            results.append(Self.pass("k8s.node_ready", "\(s.nodes.count) nodes Ready"))
        }
        return results
    }

    /// Nodes that carry GPUs by any account: allocatable, a count label or GFD's `gpu.present`.
    static func gpuNodes(_ s: KubeSnapshot) -> [JSONValue] {
        s.nodes.filter {
            ($0.allocatable(gpuResource) ?? 0) > 0 || Int($0.label("nvidia.com/gpu.count") ?? "") ?? 0 > 0
                || $0.label("nvidia.com/gpu.present") == "true"
        }
    }

    func gpuLabels(_ s: KubeSnapshot) -> [CheckResult] {
        let gpuNodes = Self.gpuNodes(s)
        guard !gpuNodes.isEmpty else { return [Self.pass("k8s.gpu_labels", "not applicable: no GPU nodes")] }
        var results: [CheckResult] = []
        for node in gpuNodes {
            let allocatable = node.allocatable(Self.gpuResource)
            let label = node.label("nvidia.com/gpu.count").flatMap { Int($0) }
            let evidence = [
                Evidence("status.allocatable[nvidia.com/gpu]", allocatable.map { String(Int($0)) } ?? "absent"),
                Evidence("labels[nvidia.com/gpu.count]", label.map(String.init) ?? "absent"),
                Evidence("labels[nvidia.com/gpu.product]", node.label("nvidia.com/gpu.product") ?? "absent"),
            ]
            guard let label, let allocatable else {
                results.append(
                    CheckResult(
                        id: "k8s.gpu_labels", status: allocatable == nil || allocatable == 0 ? .fail : .warn, subject: node.name,
                        message: allocatable == nil || allocatable == 0
                            ? "the node has GPUs by its labels but none allocatable: the device plugin is not advertising them"
                            : "unknown: no nvidia.com/gpu.count label (GPU feature discovery not running?)",
                        evidence: evidence, hint: "check the nvidia-device-plugin and gpu-feature-discovery pods on \(node.name)"))
                continue
            }
            if Int(allocatable) != label {
                results.append(
                    CheckResult(
                        id: "k8s.gpu_labels", status: .fail, subject: node.name,
                        message: "\(label) GPUs labelled, \(Int(allocatable)) allocatable: some GPUs are unhealthy or hidden from the scheduler",
                        evidence: evidence,
                        hint: "nvidia-smi on the node; the device plugin marks GPUs with XID errors unhealthy. Fix or drain, then restart the plugin")
                )
            }
        }
        if results.isEmpty {
            results.append(Self.pass("k8s.gpu_labels", "\(gpuNodes.count) GPU nodes: labels agree with allocatable nvidia.com/gpu"))
        }
        return results
    }

    func gpuProductPerPool(_ s: KubeSnapshot) -> [CheckResult] {
        var pools: [String: [(node: String, product: String)]] = [:]
        for node in Self.gpuNodes(s) {
            let pool = Self.poolLabels.lazy.compactMap { key in node.label(key).map { "\(key)=\($0)" } }.first ?? "(no pool label)"
            pools[pool, default: []].append((node.name, node.label("nvidia.com/gpu.product") ?? "unknown"))
        }
        var results: [CheckResult] = []
        for (pool, members) in pools.sorted(by: { $0.key < $1.key }) {
            let products = Set(members.map(\.product))
            if products.count > 1 {
                results.append(
                    CheckResult(
                        id: "k8s.gpu_product_pool", status: .fail, subject: pool,
                        message: "\(products.count) GPU products in one pool: \(products.sorted().joined(separator: ", "))",
                        evidence: members.map { Evidence($0.node, $0.product) },
                        hint: "one product per node pool: capacity plans, NCCL tuning and bin-packing assume it; split the pool"))
            }
        }
        if results.isEmpty && !pools.isEmpty { results.append(Self.pass("k8s.gpu_product_pool", "\(pools.count) GPU pools, one product each")) }
        return results
    }

    func gpuOperator(_ s: KubeSnapshot) -> [CheckResult] {
        var results: [CheckResult] = []
        for node in Self.gpuNodes(s) {
            let disabled = node.labels.filter { $0.0.hasPrefix("nvidia.com/gpu.deploy.") && $0.1.stringValue == "false" }.map(\.0)
            guard !disabled.isEmpty else { continue }
            results.append(
                CheckResult(
                    id: "k8s.gpu_operator", status: .warn, subject: node.name,
                    message:
                        "GPU operator components disabled on a GPU node: \(disabled.map { String($0.dropFirst("nvidia.com/gpu.deploy.".count)) }.joined(separator: ", "))",
                    evidence: disabled.map { Evidence("labels[\($0)]", "false") },
                    hint:
                        "kubectl label node \(node.name) \(disabled.map { "\($0)-" }.joined(separator: " ")) unless this node is meant to run without them"
                ))
        }
        return results
    }

    // MARK: Pod networks (Multus)

    /// Whether a NAD carries RDMA: its resource or its CNI config says so.
    static func isRDMA(_ nad: JSONValue) -> Bool {
        if (nad.annotation(resourceKey) ?? "").lowercased().contains("rdma") { return true }
        guard let text = nad["spec"]?["config"]?.stringValue, let config = try? JSONParser.parse(text) else { return false }
        let types = [config["type"]?.stringValue] + (config["plugins"]?.arrayValue ?? []).map { $0["type"]?.stringValue }
        return types.contains { $0 == "rdma" || $0 == "ib-sriov" }
    }

    /// The MTU a NAD's CNI config sets (top level or in a plugin), if any.
    static func mtu(_ nad: JSONValue) -> Int? {
        guard let text = nad["spec"]?["config"]?.stringValue, let config = try? JSONParser.parse(text) else { return nil }
        if let mtu = config["mtu"]?.intValue { return mtu }
        return (config["plugins"]?.arrayValue ?? []).lazy.compactMap { $0["mtu"]?.intValue }.first
    }

    func podNetworks(_ s: KubeSnapshot) -> [CheckResult] {
        let nads = Dictionary(s.nads.map { ($0.qualifiedName, $0) }, uniquingKeysWith: { a, _ in a })
        let nodes = Dictionary(s.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var results: [CheckResult] = []
        var checked = 0
        for pod in s.pods {
            guard let annotation = pod.annotation(Self.networksKey) else { continue }
            guard let networks = PodNetwork.parse(annotation, podNamespace: pod.namespace) else {
                results.append(
                    CheckResult(
                        id: "k8s.pod_network_nad", status: .fail, subject: pod.qualifiedName,
                        message: "the \(Self.networksKey) annotation cannot be parsed", evidence: [Evidence(Self.networksKey, annotation)],
                        hint: "use the comma form (ns/net@iface, …) or a JSON list of {name, namespace, interface}"))
                continue
            }
            checked += 1
            let running = pod["status"]?["phase"]?.stringValue == "Running"
            let nodeName = pod["spec"]?["nodeName"]?.stringValue
            let statuses = Self.networkStatus(pod)
            for network in networks {
                guard let nad = nads[network.qualified] else {
                    results.append(
                        CheckResult(
                            id: "k8s.pod_network_nad", status: .fail, subject: pod.qualifiedName,
                            message: "asks for network \(network.qualified), which has no NetworkAttachmentDefinition",
                            evidence: [
                                Evidence(Self.networksKey, annotation),
                                Evidence(
                                    "NADs in \(network.namespace)",
                                    nads.keys.filter { $0.hasPrefix(network.namespace + "/") }.sorted().joined(separator: ", ")),
                            ],
                            hint: "create the NAD \(network.name) in namespace \(network.namespace), or fix the pod's annotation"))
                    continue
                }
                results += resourceChecks(pod: pod, network: network, nad: nad, node: nodeName.flatMap { nodes[$0] }, nodeName: nodeName)
                if running {
                    results += statusChecks(pod: pod, network: network, nad: nad, statuses: statuses)
                }
            }
        }
        for id in ["k8s.pod_network_nad", "k8s.nad_resource", "k8s.network_status"]
        where !results.contains(where: { $0.id == id && $0.status != .pass }) {
            results.append(
                Self.pass(id, checked == 0 ? "not applicable: no pod asks for a secondary network" : "\(checked) pods with secondary networks agree"))
        }
        return results
    }

    /// The pod's `network-status` entries, by network name (`ns/name`); nil when absent or unreadable.
    static func networkStatus(_ pod: JSONValue) -> [String: JSONValue]? {
        guard let text = pod.annotation(statusKey), let list = (try? JSONParser.parse(text))?.arrayValue else { return nil }
        var out: [String: JSONValue] = [:]
        for entry in list {
            guard let name = entry["name"]?.stringValue else { continue }
            out[name.contains("/") ? name : "\(pod.namespace)/\(name)"] = entry
        }
        return out
    }

    func resourceChecks(pod: JSONValue, network: PodNetwork, nad: JSONValue, node: JSONValue?, nodeName: String?) -> [CheckResult] {
        guard let resource = nad.annotation(Self.resourceKey) else { return [] }
        var results: [CheckResult] = []
        let requested = (pod["spec"]?["containers"]?.arrayValue ?? []).contains { c in
            [c["resources"]?["requests"]?[resource], c["resources"]?["limits"]?[resource]].contains {
                $0?.stringValue.flatMap(Quantity.parse).map { $0 > 0 } == true
            }
        }
        if !requested {
            results.append(
                CheckResult(
                    id: "k8s.nad_resource", status: .fail, subject: pod.qualifiedName,
                    message: "network \(network.qualified) needs \(resource), which the pod does not request: it gets no device from it",
                    evidence: [Evidence("NAD \(nad.qualifiedName) \(Self.resourceKey)", resource), Evidence("pod resources", "no \(resource)")],
                    hint: "add \(resource): 1 to the container's requests and limits (the network-resources-injector does it when installed)"))
        }
        if let nodeName {
            if let node {
                let allocatable = node.allocatable(resource) ?? 0
                if allocatable <= 0 {
                    results.append(
                        CheckResult(
                            id: "k8s.nad_resource", status: .fail, subject: pod.qualifiedName,
                            message: "\(resource) is not allocatable on its node \(nodeName)",
                            evidence: [
                                Evidence(
                                    "node \(nodeName) status.allocatable[\(resource)]", node.allocatable(resource).map { String(Int($0)) } ?? "absent"
                                )
                            ],
                            hint: "check the SR-IOV device plugin's config and VFs on \(nodeName) (sriov_numvfs, the resource pool's selectors)"))
                }
            } else {
                results.append(
                    CheckResult(
                        id: "k8s.nad_resource", status: .warn, subject: pod.qualifiedName,
                        message: "unknown: its node \(nodeName) is not in the input", evidence: [Evidence("spec.nodeName", nodeName)],
                        hint: "include the nodes (kubectl get nodes -o json)"))
            }
        }
        return results
    }

    func statusChecks(pod: JSONValue, network: PodNetwork, nad: JSONValue, statuses: [String: JSONValue]?) -> [CheckResult] {
        guard let statuses else {
            return [
                CheckResult(
                    id: "k8s.network_status", status: .fail, subject: pod.qualifiedName,
                    message: "running with secondary networks but no readable \(Self.statusKey): what Multus attached is unknown",
                    evidence: [Evidence(Self.statusKey, pod.annotation(Self.statusKey) ?? "absent")],
                    hint: "check Multus on the pod's node (its logs name the failed attachment)")
            ]
        }
        guard let entry = statuses[network.qualified] else {
            return [
                CheckResult(
                    id: "k8s.network_status", status: .fail, subject: pod.qualifiedName,
                    message: "network \(network.qualified) was requested but not attached",
                    evidence: [Evidence(Self.statusKey, statuses.keys.sorted().joined(separator: ", "))],
                    hint: "the CNI call for \(network.name) failed or was skipped; kubectl describe pod shows the AddedInterface events")
            ]
        }
        var results: [CheckResult] = []
        let interface = entry["interface"]?.stringValue
        let ips = entry["ips"]?.arrayValue ?? []
        if interface == nil || ips.isEmpty {
            results.append(
                CheckResult(
                    id: "k8s.network_status", status: .fail, subject: pod.qualifiedName,
                    message: "network \(network.qualified) attached without \(interface == nil ? "an interface" : "an IP address")",
                    evidence: [Evidence("\(Self.statusKey)[\(network.qualified)]", String(decoding: entry.serialized(), as: UTF8.self))],
                    hint: "check the NAD's IPAM (whereabouts / static) and its address pool"))
        }
        if let wanted = network.interface, let interface, wanted != interface {
            results.append(
                CheckResult(
                    id: "k8s.network_status", status: .fail, subject: pod.qualifiedName,
                    message: "network \(network.qualified) asked for interface \(wanted), got \(interface)",
                    evidence: [Evidence("requested", wanted), Evidence("attached", interface)]))
        }
        if Self.isRDMA(nad) {
            let rdma = entry["device-info"]?["pci"]?["rdma-device"]?.stringValue
            if rdma == nil || rdma?.isEmpty == true {
                results.append(
                    CheckResult(
                        id: "k8s.network_status", status: .fail, subject: pod.qualifiedName,
                        message: "RDMA network \(network.qualified) attached without an RDMA device (device-info.pci.rdma-device)",
                        evidence: [
                            Evidence(
                                "\(Self.statusKey)[\(network.qualified)].device-info",
                                entry["device-info"].map { String(decoding: $0.serialized(), as: UTF8.self) } ?? "absent")
                        ],
                        hint:
                            "the VF has no RDMA device: enable the rdma CNI / RDMA shared-device mode and check `rdma system` (exclusive netns mode)")
                )
            }
        }
        if let want = Self.mtu(nad) {
            if let got = entry["mtu"]?.intValue {
                if got != want {
                    results.append(
                        CheckResult(
                            id: "k8s.network_status", status: .fail, subject: pod.qualifiedName,
                            message: "network \(network.qualified) MTU \(got), its NAD says \(want)",
                            evidence: [Evidence("NAD \(nad.qualifiedName) config mtu", String(want)), Evidence("network-status mtu", String(got))],
                            hint: "set the MTU on the PF (or the switch port) to at least \(want); VFs cannot exceed their PF's MTU"))
                }
            } else {
                results.append(
                    CheckResult(
                        id: "k8s.network_status", status: .warn, subject: pod.qualifiedName,
                        message: "unknown: the NAD sets MTU \(want) but network-status does not report the attached MTU",
                        evidence: [Evidence("NAD \(nad.qualifiedName) config mtu", String(want))],
                        hint: "Multus 4+ reports mtu in network-status; or read it in the pod: ip link show \(interface ?? "<iface>")"))
            }
        }
        return results
    }
}
