import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SwitchyardCore

/// What the EndpointSlices of a Service say (discovery.k8s.io/v1). Pure.
package enum EndpointSlices {
    /// The ready, not terminating addresses of one slice, on the wanted port (its name or number;
    /// nil: the slice's only port, or the one named `http`).
    package static func endpoints(_ slice: JSONValue, port wanted: String?) -> [Resolution.Endpoint] {
        let ports = slice["ports"]?.arrayValue ?? []
        let chosen: JSONValue?
        if let wanted {
            chosen = ports.first { $0["name"]?.stringValue == wanted || $0["port"]?.intValue.map(String.init) == wanted }
        } else {
            chosen = ports.count == 1 ? ports.first : ports.first { $0["name"]?.stringValue == "http" }
        }
        guard let port = chosen?["port"]?.intValue else { return [] }
        var out: [Resolution.Endpoint] = []
        for endpoint in slice["endpoints"]?.arrayValue ?? [] {
            let conditions = endpoint["conditions"]
            // A nil `ready` means ready (the API's rule); a terminating endpoint takes nothing new.
            if conditions?["ready"]?.boolValue == false || conditions?["terminating"]?.boolValue == true { continue }
            for address in endpoint["addresses"]?.arrayValue ?? [] {
                if let host = address.stringValue { out.append(.init(host: host, port: port)) }
            }
        }
        return out
    }
}

/// Lists a Service's EndpointSlices, then watches them (`watch=true` from the list's
/// `resourceVersion`, one JSON event per line); lists again when the watch ends (the server's
/// `timeoutSeconds`: a periodic resync) or the version is gone (410), and after errors.
struct EndpointSliceWatch {
    let gateway: Gateway
    let pool: ModelPool
    let discovery: DiscoveryConfig
    let endpoints: DiscoveryConfig.KubernetesEndpoints
    /// How long one watch runs before the next list.
    var watchSeconds = 240

    func run() async {
        let logger = gateway.logger
        let config: Kubeconfig
        let client: HTTPClient
        do {
            config =
                try endpoints.kubeconfig.map { path throws(Kubeconfig.LoadError) in try Kubeconfig.load(path: path, context: endpoints.context) }
                ?? Kubeconfig.inCluster()
            client = try KubeClient.make(config)
        } catch {
            logger.error("discovery cannot start", metadata: ["model": "\(pool.name)", "source": "\(discovery.label)", "error": "\(error)"])
            return
        }
        let namespace = endpoints.namespace ?? config.namespace ?? "default"
        let server = config.server.hasSuffix("/") ? String(config.server.dropLast()) : config.server
        let selector = "kubernetes.io/service-name=\(endpoints.service)".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let base = "\(server)/apis/discovery.k8s.io/v1/namespaces/\(namespace)/endpointslices?labelSelector=\(selector)"
        var failing = false
        while !Task.isCancelled {
            do {
                var slices: [String: [Resolution.Endpoint]] = [:]
                let version = try await list(base, config, client, into: &slices)
                if failing { logger.info("discovery answers again", metadata: ["model": "\(pool.name)", "source": "\(discovery.label)"]) }
                failing = false
                publish(slices)
                try await watch(base, from: version, config, client, slices: &slices)
            } catch is CancellationError {
                break
            } catch {
                if Task.isCancelled { break }
                if !failing {
                    logger.warning(
                        "discovery failed; keeping the backends found before",
                        metadata: ["model": "\(pool.name)", "source": "\(discovery.label)", "error": "\(error)"])
                }
                failing = true
                gateway.metrics.discoveryError(model: pool.name, source: discovery.label)
                try? await Task.sleep(for: max(discovery.minInterval, .seconds(1)))
            }
        }
        try? await client.shutdown()
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    func publish(_ slices: [String: [Resolution.Endpoint]]) {
        let all = Set(slices.values.joined()).sorted()
        gateway.discovered(pool, discovery, all.map { discovery.backend(host: $0.host, port: $0.port) })
    }

    /// The slices now; returns the list's resourceVersion.
    func list(
        _ base: String, _ config: Kubeconfig, _ client: HTTPClient, into slices: inout [String: [Resolution.Endpoint]]
    ) async throws
        -> String
    {
        let response = try await client.execute(KubeClient.get(base, config), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 64 << 20)
        guard response.status.code == 200 else {
            let message = (try? JSONParser.parse(body.readableBytesView))?["message"]?.stringValue ?? String(buffer: body).prefix(200).description
            throw Failure(description: "GET EndpointSlices answered \(response.status.code): \(message)")
        }
        let json = try JSONParser.parse(body.readableBytesView)
        for item in json["items"]?.arrayValue ?? [] {
            if let name = item["metadata"]?["name"]?.stringValue { slices[name] = EndpointSlices.endpoints(item, port: endpoints.port) }
        }
        return json["metadata"]?["resourceVersion"]?.stringValue ?? ""
    }

    /// Applies watch events until the server ends the watch; throws on 410 Gone and errors.
    func watch(
        _ base: String, from version: String, _ config: Kubeconfig, _ client: HTTPClient, slices: inout [String: [Resolution.Endpoint]]
    )
        async throws
    {
        let url = base + "&watch=true&allowWatchBookmarks=true&timeoutSeconds=\(watchSeconds)&resourceVersion=\(version)"
        let response = try await client.execute(KubeClient.get(url, config), timeout: .seconds(Int64(watchSeconds) + 30))
        guard response.status.code == 200 else {
            throw Failure(description: "watching EndpointSlices answered \(response.status.code)")
        }
        var pending: [UInt8] = []
        for try await chunk in response.body {
            pending.append(contentsOf: chunk.readableBytesView)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<newline])
                pending.removeFirst(newline + 1)
                guard !line.isEmpty else { continue }
                let event = try JSONParser.parse(line)
                let object = event["object"]
                switch event["type"]?.stringValue {
                case "ADDED", "MODIFIED":
                    if let name = object?["metadata"]?["name"]?.stringValue, let object {
                        slices[name] = EndpointSlices.endpoints(object, port: endpoints.port)
                        publish(slices)
                    }
                case "DELETED":
                    if let name = object?["metadata"]?["name"]?.stringValue {
                        slices[name] = nil
                        publish(slices)
                    }
                case "ERROR":
                    throw Failure(description: "watch error \(object?["code"]?.intValue ?? 0): \(object?["message"]?.stringValue ?? "")")
                default:
                    break  // BOOKMARK: nothing changed.
                }
            }
        }
    }
}
