import Foundation
import Yams

/// What `cluster k8s --kubeconfig` needs from a kubeconfig: the API server of the chosen context
/// (current, or `--context`), the CA that signs it, and the user's bearer token or client
/// certificate (inline `*-data` or files, relative to the kubeconfig's folder).
package struct Kubeconfig: Sendable, Equatable {
    package var context: String
    package var server: String
    package var caPEM: String?
    package var insecureSkipTLSVerify = false
    package var token: String?
    /// A file holding the token (in-cluster), read again at each connection.
    package var tokenFile: String?
    /// The context's namespace (in-cluster: the pod's own).
    package var namespace: String?
    package var clientCertificatePEM: String?
    package var clientKeyPEM: String?

    package struct LoadError: Error, CustomStringConvertible {
        package let description: String
    }

    package static func load(path: String, context wanted: String? = nil) throws(LoadError) -> Kubeconfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw LoadError(description: "\(path): cannot be read") }
        return try parse(text, context: wanted, directory: (path as NSString).deletingLastPathComponent)
    }

    package static func parse(_ text: String, context wanted: String? = nil, directory: String = ".") throws(LoadError) -> Kubeconfig {
        let root: [String: Any]
        do {
            guard let parsed = try Yams.load(yaml: text) as? [String: Any] else { throw LoadError(description: "kubeconfig: not a mapping") }
            root = parsed
        } catch let error as LoadError {
            throw error
        } catch {
            throw LoadError(description: "kubeconfig: not valid YAML: \(error)")
        }
        func named(_ key: String, _ name: String) -> [String: Any]? {
            (root[key] as? [[String: Any]])?.first { ($0["name"] as? String) == name }
        }
        guard let contextName = wanted ?? root["current-context"] as? String, !contextName.isEmpty else {
            throw LoadError(description: "kubeconfig: no current-context; give --context")
        }
        guard let context = named("contexts", contextName)?["context"] as? [String: Any] else {
            let known = (root["contexts"] as? [[String: Any]])?.compactMap { $0["name"] as? String } ?? []
            throw LoadError(description: "kubeconfig: no context '\(contextName)' (contexts: \(known.joined(separator: ", ")))")
        }
        guard let clusterName = context["cluster"] as? String, let cluster = named("clusters", clusterName)?["cluster"] as? [String: Any],
            let server = cluster["server"] as? String
        else { throw LoadError(description: "kubeconfig: context '\(contextName)' names no cluster with a server") }
        let user = (context["user"] as? String).flatMap { named("users", $0)?["user"] as? [String: Any] } ?? [:]
        if user["exec"] != nil || user["auth-provider"] != nil {
            throw LoadError(
                description:
                    "kubeconfig: user of context '\(contextName)' authenticates through an exec or auth-provider plugin, which is not run here; give a token or client certificate, or capture with kubectl and use --from"
            )
        }

        func material(_ inline: String, _ file: String, in map: [String: Any]) throws(LoadError) -> String? {
            if let data = map[inline] as? String {
                guard let decoded = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else {
                    throw LoadError(description: "kubeconfig: \(inline) is not base64")
                }
                return String(decoding: decoded, as: UTF8.self)
            }
            if let path = map[file] as? String {
                let full = path.hasPrefix("/") ? path : (directory as NSString).appendingPathComponent(path)
                guard let text = try? String(contentsOfFile: full, encoding: .utf8) else {
                    throw LoadError(description: "kubeconfig: \(file) \(full) cannot be read")
                }
                return text
            }
            return nil
        }
        var config = Kubeconfig(context: contextName, server: server)
        config.namespace = context["namespace"] as? String
        config.caPEM = try material("certificate-authority-data", "certificate-authority", in: cluster)
        config.insecureSkipTLSVerify = cluster["insecure-skip-tls-verify"] as? Bool ?? false
        let tokenFile = try material("", "tokenFile", in: user)?.trimmingCharacters(in: .whitespacesAndNewlines)
        config.token = (user["token"] as? String) ?? tokenFile
        config.clientCertificatePEM = try material("client-certificate-data", "client-certificate", in: user)
        config.clientKeyPEM = try material("client-key-data", "client-key", in: user)
        if config.clientCertificatePEM != nil, config.clientKeyPEM == nil {
            throw LoadError(description: "kubeconfig: a client certificate without its client key")
        }
        return config
    }

    init(context: String, server: String) {
        self.context = context
        self.server = server
    }

    /// Inside a pod: the API server from `KUBERNETES_SERVICE_HOST`/`_PORT`, the service
    /// account's CA and token (`tokenFile`, read again at each connection: projected tokens
    /// rotate) and namespace.
    package static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws(LoadError) -> Kubeconfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            throw LoadError(description: "not running in a pod (KUBERNETES_SERVICE_HOST is unset): give discovery.kubernetes.kubeconfig")
        }
        let port = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
        var config = Kubeconfig(context: "in-cluster", server: "https://\(host.contains(":") ? "[\(host)]" : host):\(port)")
        guard let ca = try? String(contentsOfFile: directory + "/ca.crt", encoding: .utf8) else {
            throw LoadError(description: "\(directory)/ca.crt cannot be read: is a service account token mounted?")
        }
        config.caPEM = ca
        config.tokenFile = directory + "/token"
        config.namespace = (try? String(contentsOfFile: directory + "/namespace", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        return config
    }

    /// The bearer token now: `token`, else the contents of `tokenFile`.
    package var currentToken: String? {
        if let token { return token }
        return tokenFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
