import Yams

/// Backends found at run time instead of listed: from DNS (the A/AAAA or SRV records of a
/// headless Service, re-resolved at the records' TTL) or from Kubernetes EndpointSlices (watched).
///
/// ```yaml
/// models:
///   - name: qwen
///     discovery: { dns: vllm.ml.svc.cluster.local, port: 8000 }        # A/AAAA
///   - name: llama
///     discovery: { srv: _http._tcp.vllm.ml.svc.cluster.local }          # SRV: ports from the records
///   - name: mistral
///     discovery: { kubernetes: { service: vllm, namespace: ml, port: http } }
/// ```
package struct DiscoveryConfig: Sendable, Equatable {
    package enum Source: Sendable, Equatable {
        /// A/AAAA records of `name`; every address is a backend on `port`.
        case dns(name: String, port: Int)
        /// SRV records of `name`: each target and port is a backend.
        case srv(name: String)
        case kubernetes(KubernetesEndpoints)
    }

    package struct KubernetesEndpoints: Sendable, Equatable {
        package var service: String
        /// nil: the pod's own namespace (in-cluster), else the kubeconfig context's.
        package var namespace: String?
        /// The EndpointSlice port's name (or number); nil: the slice's only port.
        package var port: String?
        /// nil: in-cluster (service-account token), else this kubeconfig file.
        package var kubeconfig: String?
        package var context: String?
        package init(service: String) { self.service = service }
    }

    package var source: Source
    package var scheme = "http"
    /// The OpenAI base path on each discovered server.
    package var path = "/v1"
    /// Model name sent upstream; nil: the public name.
    package var upstreamModel: String?
    package var maxInflight: Int?
    /// DNS server `host:port`; nil: the first nameserver of /etc/resolv.conf.
    package var resolver: String?
    /// Re-resolution never sooner than this (a TTL of 0), nor later than `maxInterval`.
    package var minInterval: Duration = .seconds(1)
    package var maxInterval: Duration = .seconds(30)

    package init(source: Source) { self.source = source }

    /// A backend at `host:port` as the pool lists it.
    package func backend(host: String, port: Int) -> BackendConfig {
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return BackendConfig(url: "\(scheme)://\(authority)\(path)", upstreamModel: upstreamModel, maxInflight: maxInflight)
    }

    /// What the source is, for logs and `/admin/backends`.
    package var label: String {
        switch source {
        case .dns(let name, let port): "dns:\(name):\(port)"
        case .srv(let name): "srv:\(name)"
        case .kubernetes(let k): "endpointslices:\(k.namespace.map { "\($0)/" } ?? "")\(k.service)"
        }
    }
}

extension ConfigLoader {
    static func decodeDiscovery(_ node: Node, _ path: String, reader r: inout YAMLReader) -> DiscoveryConfig? {
        guard
            let m = r.mapping(
                node, path,
                allowed: [
                    "dns", "port", "srv", "kubernetes", "scheme", "path", "model", "max_inflight", "resolver", "min_interval", "max_interval",
                ])
        else { return nil }
        let given = ["dns", "srv", "kubernetes"].filter { m[$0] != nil }
        guard given.count == 1 else {
            r.fail(path, "give exactly one of dns (with port), srv or kubernetes", node)
            return nil
        }
        var source: DiscoveryConfig.Source?
        if let n = m["dns"], let name = r.string(n, "\(path).dns") {
            if let p = m["port"], let port = r.int(p, "\(path).port", min: 1, max: 65535) {
                source = .dns(name: name, port: port)
            } else if m["port"] == nil {
                r.fail("\(path).port", "required with dns (A/AAAA records carry no port; use srv for records that do)", n)
            }
        }
        if let n = m["srv"], let name = r.string(n, "\(path).srv") { source = .srv(name: name) }
        if let n = m["kubernetes"],
            let k = r.mapping(n, "\(path).kubernetes", allowed: ["service", "namespace", "port", "kubeconfig", "context"])
        {
            if let s = k["service"], let service = r.string(s, "\(path).kubernetes.service") {
                var endpoints = DiscoveryConfig.KubernetesEndpoints(service: service)
                if let v = k["namespace"] { endpoints.namespace = r.string(v, "\(path).kubernetes.namespace") }
                if let v = k["port"] { endpoints.port = r.string(v, "\(path).kubernetes.port") }
                if let v = k["kubeconfig"] { endpoints.kubeconfig = r.string(v, "\(path).kubernetes.kubeconfig") }
                if let v = k["context"] { endpoints.context = r.string(v, "\(path).kubernetes.context") }
                source = .kubernetes(endpoints)
            } else if k["service"] == nil {
                r.fail("\(path).kubernetes.service", "required: the Service whose EndpointSlices list the model servers", n)
            }
        }
        guard let source else { return nil }
        var d = DiscoveryConfig(source: source)
        if let n = m["scheme"], let v = r.string(n, "\(path).scheme") {
            if v == "http" || v == "https" { d.scheme = v } else { r.fail("\(path).scheme", "must be http or https", n) }
        }
        if let n = m["path"], let v = r.string(n, "\(path).path") {
            if v.hasPrefix("/") { d.path = v } else { r.fail("\(path).path", "must start with / (the OpenAI base path, e.g. /v1)", n) }
        }
        if let n = m["model"] { d.upstreamModel = r.string(n, "\(path).model") }
        if let n = m["max_inflight"], let v = r.int(n, "\(path).max_inflight", min: 0) { d.maxInflight = v }
        if let n = m["resolver"], let v = r.string(n, "\(path).resolver") {
            if HostPort(v) != nil { d.resolver = v } else { r.fail("\(path).resolver", "must be host:port, e.g. 10.96.0.10:53", n) }
        }
        if let n = m["min_interval"], let v = r.duration(n, "\(path).min_interval") { d.minInterval = v }
        if let n = m["max_interval"], let v = r.duration(n, "\(path).max_interval") { d.maxInterval = v }
        if d.maxInterval < d.minInterval { r.fail("\(path).max_interval", "must not be shorter than min_interval", node) }
        return d
    }
}

/// `host:port` or `[v6]:port`.
package struct HostPort: Sendable, Equatable {
    package var host: String
    package var port: Int

    package init?(_ text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }
}
