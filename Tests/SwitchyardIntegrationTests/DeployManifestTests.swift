import Foundation
import SwitchyardCore
import Testing
import Yams

/// deploy/kubernetes: every overlay renders (kubectl kustomize) and validates against the
/// Kubernetes schemas (scripts/validate-deploy.sh), and the rendered objects keep the policy
/// points: probes, drain timing that matches the gateway's own configuration, limits, a
/// locked-down container, a PDB, NetworkPolicies, scraping and autoscaling on queue depth.
@Suite(.serialized, .tags(.timing)) struct DeployManifestTests {
    typealias Object = [String: Any]

    /// Renders and validates every overlay once; the rendered YAML by overlay name.
    static let texts: Result<[String: String], Failure> = Result { () throws(Failure) in
        do { return try render() } catch let error as Failure { throw error } catch { throw Failure(description: "\(error)") }
    }

    /// The rendered objects by overlay name.
    static func rendered() throws -> [String: [Object]] {
        try texts.get().mapValues { text in try Yams.load_all(yaml: text).compactMap { $0 as? Object } }
    }

    static func render() throws -> [String: String] {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-deploy-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let script = LlamaServer.repoRoot.appendingPathComponent("scripts/validate-deploy.sh").path
        let (status, output) = try BenchCommandTests.run("/bin/bash", [script, out.path])
        guard status == 0 else { throw Failure(description: "validate-deploy.sh failed:\n\(output)") }
        var overlays: [String: String] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: out.path) where file.hasSuffix(".yaml") {
            overlays[String(file.dropLast(5))] = try String(contentsOf: out.appendingPathComponent(file), encoding: .utf8)
        }
        return overlays
    }

    struct Failure: Error, Sendable, CustomStringConvertible { var description: String }

    static func find(_ objects: [Object], _ kind: String, _ name: String? = nil) -> [Object] {
        objects.filter { $0["kind"] as? String == kind && (name == nil || ($0["metadata"] as? Object)?["name"] as? String == name) }
    }

    static func path(_ object: Any?, _ keys: String...) -> Any? {
        var current = object
        for key in keys {
            if let index = Int(key) {
                guard let list = current as? [Any], list.indices.contains(index) else { return nil }
                current = list[index]
            } else {
                current = (current as? Object)?[key]
            }
        }
        return current
    }

    /// The gateway's configuration as the ConfigMap carries it, read by Switchyard's own loader.
    static func gatewayConfig(_ objects: [Object]) throws -> GatewayConfig {
        let map = try #require(find(objects, "ConfigMap", "switchyard-config").first)
        let text = try #require(path(map, "data", "switchyard.yaml") as? String)
        // Secret references point at files mounted in the pod; here they resolve to a stand-in.
        return try ConfigLoader.load(yaml: text, secrets: SecretSource(environment: [:]) { _ in "stand-in-secret-0123456789" })
    }

    @Test func everyOverlayRendersValidatesAndKeepsTheGatewayPolicy() throws {
        let overlays = try Self.rendered()
        #expect(Set(overlays.keys) == ["base", "postgres", "gpu"])
        for (name, objects) in overlays {
            let deployment = try #require(Self.find(objects, "Deployment", "switchyard").first, "\(name): gateway Deployment")
            let pod = Self.path(deployment, "spec", "template", "spec")
            let container = try #require((Self.path(pod, "containers") as? [Object])?.first { $0["name"] as? String == "switchyard" })
            #expect(Self.path(container, "readinessProbe", "httpGet", "path") as? String == "/readyz", "\(name)")
            #expect(Self.path(container, "livenessProbe", "httpGet", "path") as? String == "/healthz", "\(name)")
            // SIGTERM comes after preStop; then drain_delay + shutdown_grace must fit before SIGKILL.
            let config = try Self.gatewayConfig(objects)
            let preStop = Self.path(container, "lifecycle", "preStop", "sleep", "seconds") as? Int ?? 0
            let grace = try #require(Self.path(pod, "terminationGracePeriodSeconds") as? Int)
            let needed = Double(preStop) + config.server.drainDelay.seconds + config.server.shutdownGrace.seconds
            #expect(preStop > 0, "\(name): a preStop hold while the endpoints drop the pod")
            #expect(Double(grace) > needed, "\(name): terminationGracePeriodSeconds \(grace) ≤ preStop + drain_delay + shutdown_grace = \(needed)")
            #expect(config.server.host == "0.0.0.0" && config.admin.token != nil, "\(name)")
            for kind in ["requests", "limits"] {
                #expect(
                    Self.path(container, "resources", kind, "cpu") != nil && Self.path(container, "resources", kind, "memory") != nil,
                    "\(name): \(kind)")
            }
            #expect(Self.path(pod, "securityContext", "runAsNonRoot") as? Bool == true, "\(name)")
            #expect(Self.path(container, "securityContext", "readOnlyRootFilesystem") as? Bool == true, "\(name)")
            #expect(Self.path(container, "securityContext", "allowPrivilegeEscalation") as? Bool == false, "\(name)")
            // The admin token comes from a Secret, mounted where the config's file: reference points.
            let volumes = Self.path(pod, "volumes") as? [Object] ?? []
            #expect(volumes.contains { Self.path($0, "secret", "secretName") as? String == "switchyard-admin" }, "\(name)")
            // The ConfigMap keeps its name, so an update reaches the mounted file and is reloaded.
            #expect(volumes.contains { Self.path($0, "configMap", "name") as? String == "switchyard-config" }, "\(name)")

            let labels = try #require(Self.path(deployment, "spec", "selector", "matchLabels") as? [String: String])
            let pdb = try #require(Self.find(objects, "PodDisruptionBudget").first, "\(name): PDB")
            #expect(Self.path(pdb, "spec", "selector", "matchLabels") as? [String: String] == labels)
            #expect(!Self.find(objects, "NetworkPolicy").isEmpty, "\(name): NetworkPolicy")
            let service = try #require(Self.find(objects, "Service", "switchyard").first)
            #expect(Self.path(service, "spec", "selector") as? [String: String] == labels)
            let monitor = try #require(Self.find(objects, "ServiceMonitor").first, "\(name): ServiceMonitor")
            let portName = Self.path(service, "spec", "ports", "0", "name") as? String
            #expect(Self.path(monitor, "spec", "endpoints", "0", "port") as? String == portName)
            #expect(Self.path(monitor, "spec", "endpoints", "0", "path") as? String == "/metrics")
            let serviceLabels = Self.path(service, "metadata", "labels") as? [String: String] ?? [:]
            let wanted = Self.path(monitor, "spec", "selector", "matchLabels") as? [String: String] ?? ["": ""]
            #expect(wanted.allSatisfy { serviceLabels[$0.key] == $0.value }, "\(name): the ServiceMonitor selects the Service")
        }
    }

    @Test func thePostgresOverlayScalesOnQueueDepthWithASharedStore() throws {
        let objects = try #require(try Self.rendered()["postgres"])
        let config = try Self.gatewayConfig(objects)
        #expect(config.batch.store?.hasPrefix("postgres://") == true && config.batch.passwordFile != nil)
        let hpa = try #require(Self.find(objects, "HorizontalPodAutoscaler").first)
        #expect(Self.path(hpa, "spec", "scaleTargetRef", "name") as? String == "switchyard")
        #expect((Self.path(hpa, "spec", "minReplicas") as? Int ?? 0) >= 2, "two or more: the PDB can let one go")
        let metric = (Self.path(hpa, "spec", "metrics") as? [Object])?.first { $0["type"] as? String == "Pods" }
        #expect(Self.path(metric, "pods", "metric", "name") as? String == "switchyard_queue_depth")
        let rules = try #require(
            Self.path(Self.find(objects, "ConfigMap", "switchyard-prometheus-adapter-rules").first, "data", "config.yaml") as? String)
        #expect(rules.contains("switchyard_queue_depth") && rules.contains("<<.LabelMatchers>>"))
        #expect(!Self.find(objects, "StatefulSet", "postgres").isEmpty)
    }

    @Test func theGPUOverlayRunsVLLMOnAnRDMANetworkBehindAHeadlessService() throws {
        let objects = try #require(try Self.rendered()["gpu"])
        let vllm = try #require(Self.find(objects, "Deployment", "vllm").first)
        let network = Self.path(vllm, "spec", "template", "metadata", "annotations", "k8s.v1.cni.cncf.io/networks") as? String
        let nad = try #require(Self.find(objects, "NetworkAttachmentDefinition").first)
        #expect(network == Self.path(nad, "metadata", "name") as? String, "the pod asks for the attachment defined here")
        let resource = try #require(Self.path(nad, "metadata", "annotations", "k8s.v1.cni.cncf.io/resourceName") as? String)
        let limits = Self.path(vllm, "spec", "template", "spec", "containers", "0", "resources", "limits") as? Object
        #expect(limits?["nvidia.com/gpu"] as? String == "1")
        #expect(limits?[resource] != nil, "the SR-IOV resource the attachment needs is requested")
        let config = Self.path(nad, "spec", "config") as? String ?? ""
        #expect((try? JSONParser.parse(config))?["plugins"]?.arrayValue?.contains { $0["type"]?.stringValue == "rdma" } == true)
        let headless = try #require(Self.find(objects, "Service", "vllm").first)
        #expect(Self.path(headless, "spec", "clusterIP") as? String == "None")
        let gateway = try Self.gatewayConfig(objects)
        let discovery = try #require(gateway.models.first?.discovery)
        #expect(discovery.source == .dns(name: "vllm", port: Self.path(headless, "spec", "ports", "0", "port") as? Int ?? 0))
        let scaled = try #require(Self.find(objects, "ScaledObject").first)
        #expect(Self.path(scaled, "spec", "scaleTargetRef", "name") as? String == "vllm")
        let trigger = Self.path(scaled, "spec", "triggers", "0") as? Object
        #expect(trigger?["type"] as? String == "prometheus")
        let query = Self.path(trigger, "metadata", "query") as? String ?? ""
        #expect(query.contains("switchyard_queue_depth") && query.contains(gateway.models[0].name))
        #expect(Self.path(trigger, "metadata", "threshold") is String, "KEDA wants the threshold as a string")
        #expect(Self.path(trigger, "metadata", "serverAddress") != nil)
    }
}
