import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import SwitchyardCore
import SwitchyardGateway
import SwitchyardProbe

/// Reads nodes, pods and NetworkAttachmentDefinitions from the live Kubernetes API over HTTPS,
/// as a kubeconfig says: the cluster's CA verified, a bearer token or a client certificate;
/// lists followed page by page (`limit` / `continue`).
enum KubeAPI {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func fetch(_ config: Kubeconfig) async throws -> KubeSnapshot {
        let client = try KubeClient.make(config)
        do {
            let snapshot = try await fetch(config, client: client)
            try await client.shutdown()
            return snapshot
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private static func fetch(_ config: Kubeconfig, client: HTTPClient) async throws -> KubeSnapshot {
        var snapshot = KubeSnapshot()
        let server = config.server.hasSuffix("/") ? String(config.server.dropLast()) : config.server
        for (path, hint) in Kubeconfig.paths {
            var next: String? = ""
            while let token = next {
                let request = KubeClient.get(server + path + "?limit=500" + (token.isEmpty ? "" : "&continue=\(token)"), config)
                let response: HTTPClientResponse
                do {
                    response = try await client.execute(request, timeout: .seconds(30))
                } catch {
                    throw Failure(description: "GET \(server)\(path): \(error)")
                }
                let body = try await response.body.collect(upTo: 512 << 20)
                if response.status.code == 404, path.hasPrefix("/apis/k8s.cni.cncf.io") {
                    break  // Multus is not installed: no NADs.
                }
                guard response.status.code == 200 else {
                    let message =
                        (try? JSONParser.parse(body.readableBytesView))?["message"]?.stringValue ?? String(buffer: body).prefix(300).description
                    let why = response.status.code == 401 ? " (the API refused the credentials of context \(config.context))" : ""
                    throw Failure(description: "GET \(server)\(path) answered \(response.status.code)\(why): \(message)")
                }
                let json = try JSONParser.parse(body.readableBytesView)
                try snapshot.add(json, hint: hint)
                let cont = json["metadata"]?["continue"]?.stringValue ?? ""
                next = cont.isEmpty ? nil : cont.addingPercentEncoding(withAllowedCharacters: .alphanumerics)
            }
            snapshot.sources.append(server + path)
        }
        return snapshot
    }
}
