import Foundation

/// Where a secret in the configuration comes from: `${ENV_VAR}` or `file:/path`, never the
/// YAML itself (a ConfigMap is not a Secret; a config file ends up in Git and in
/// `GET /admin/config`).
///
/// ```yaml
/// admin: { token: "${SWITCHYARD_ADMIN_TOKEN}" }       # or file:/run/secrets/admin-token
/// ```
package struct SecretSource: Sendable {
    package var environment: [String: String]
    /// Reads a secret file; nil when it cannot be read.
    package var readFile: @Sendable (String) -> String?

    package init(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        readFile: @escaping @Sendable (String) -> String? = { try? String(contentsOfFile: $0, encoding: .utf8) }
    ) {
        self.environment = environment
        self.readFile = readFile
    }

    /// The secret a reference names, or why it cannot be had.
    package func resolve(_ reference: String) -> Result<String, SecretError> {
        if reference.hasPrefix("${"), reference.hasSuffix("}"), reference.count > 3 {
            let name = String(reference.dropFirst(2).dropLast())
            guard let value = environment[name], !value.isEmpty else { return .failure(.unsetVariable(name)) }
            return .success(value)
        }
        if reference.hasPrefix("file:") {
            let path = String(reference.dropFirst(5))
            guard let text = readFile(path) else { return .failure(.unreadableFile(path)) }
            let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !value.isEmpty else { return .failure(.unreadableFile(path)) }
            return .success(value)
        }
        return .failure(.literal)
    }
}

package enum SecretError: Error, Sendable, Equatable, CustomStringConvertible {
    case literal
    case unsetVariable(String)
    case unreadableFile(String)

    package var description: String {
        switch self {
        case .literal: "a secret is not accepted in the YAML itself; give it as ${ENV_VAR} or file:/path (e.g. a mounted Kubernetes Secret)"
        case .unsetVariable(let name): "environment variable \(name) is not set (or empty)"
        case .unreadableFile(let path): "secret file \(path) cannot be read (or is empty)"
        }
    }
}
