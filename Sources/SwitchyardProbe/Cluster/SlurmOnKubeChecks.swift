import SwitchyardCore

/// Slurm on Kubernetes (SUNK / Slinky style: each slurmd runs in a pod): every Slurm node maps to
/// its pod — the pod whose `spec.hostname` or name is the node's name — and through it to a
/// Kubernetes node; the pod must be running, and its GPU request must match the node's GRES.
package struct SlurmOnKubeChecks: Sendable {
    package init() {}

    /// The pod that runs Slurm node `name`.
    static func pod(for name: String, in pods: [JSONValue]) -> JSONValue? {
        pods.first { $0["spec"]?["hostname"]?.stringValue == name } ?? pods.first { $0.name == name }
    }

    /// GPUs a pod asks for (limits, else requests, summed over its containers).
    static func gpuRequest(_ pod: JSONValue) -> Int {
        (pod["spec"]?["containers"]?.arrayValue ?? []).reduce(0) { sum, c in
            let value = c["resources"]?["limits"]?[KubeChecks.gpuResource] ?? c["resources"]?["requests"]?[KubeChecks.gpuResource]
            return sum + Int(value?.stringValue.flatMap(Quantity.parse) ?? 0)
        }
    }

    package func run(slurm: SlurmSnapshot, kube: KubeSnapshot) -> [CheckResult] {
        var results: [CheckResult] = []
        for node in slurm.nodes {
            guard let pod = Self.pod(for: node.name, in: kube.pods) else {
                results.append(
                    CheckResult(
                        id: "sunk.pod", status: .fail, subject: node.name, message: "no pod runs this Slurm node",
                        evidence: [Evidence("pods searched", "\(kube.pods.count) (by spec.hostname, then name)")],
                        hint: "the slurmd pod is gone: check its StatefulSet / NodeSet and why the pod was not recreated; jobs sent here will fail"))
                continue
            }
            let phase = pod["status"]?["phase"]?.stringValue ?? "unknown"
            let k8sNode = pod["spec"]?["nodeName"]?.stringValue ?? "unscheduled"
            if phase != "Running" {
                results.append(
                    CheckResult(
                        id: "sunk.pod", status: .fail, subject: node.name,
                        message: "its pod \(pod.qualifiedName) is \(phase) (Kubernetes node \(k8sNode))",
                        evidence: [Evidence("pod \(pod.qualifiedName) status.phase", phase), Evidence("spec.nodeName", k8sNode)],
                        hint: "kubectl describe pod -n \(pod.namespace) \(pod.name): Slurm still counts this node while its slurmd is not running"))
            }
            let slurmGPUs = node.gres.filter { $0.name == "gpu" }.reduce(0) { $0 + $1.count }
            let podGPUs = Self.gpuRequest(pod)
            if slurmGPUs != podGPUs {
                results.append(
                    CheckResult(
                        id: "sunk.gres", status: .fail, subject: node.name,
                        message: "Slurm offers \(slurmGPUs) GPUs, its pod \(pod.qualifiedName) holds \(podGPUs) on \(k8sNode)",
                        evidence: [
                            Evidence("scontrol Gres", node.fields["Gres"] ?? "\(slurmGPUs)"), Evidence("pod nvidia.com/gpu", String(podGPUs)),
                        ],
                        hint:
                            "make the slurmd pod's nvidia.com/gpu limit equal the node's Gres=gpu count, or jobs are promised GPUs the pod cannot see"
                    ))
            }
        }
        if !results.contains(where: { $0.id == "sunk.pod" }) {
            results.append(
                CheckResult(
                    id: "sunk.pod", status: .pass, subject: "cluster", message: "every Slurm node (\(slurm.nodes.count)) runs in a running pod"))
        }
        if !results.contains(where: { $0.id == "sunk.gres" }) {
            results.append(
                CheckResult(id: "sunk.gres", status: .pass, subject: "cluster", message: "every slurmd pod holds the GPUs its Slurm node offers"))
        }
        return results
    }
}
