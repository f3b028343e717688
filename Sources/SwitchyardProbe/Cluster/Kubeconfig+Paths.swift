import SwitchyardCore

extension Kubeconfig {
    /// The API paths `cluster k8s` reads, with the kind each list holds.
    package static let paths: [(path: String, kind: String)] = [
        ("/api/v1/nodes", "nodes.json"), ("/api/v1/pods", "pods.json"),
        ("/apis/k8s.cni.cncf.io/v1/network-attachment-definitions", "network-attachment-definitions.json"),
    ]
}
