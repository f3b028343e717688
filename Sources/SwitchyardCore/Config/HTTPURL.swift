/// A parsed `http://` or `https://` URL: enough to reach a backend and join paths onto it.
package struct HTTPURL: Sendable, Equatable, CustomStringConvertible {
    package var scheme: String
    package var host: String
    package var port: Int
    /// Path without a trailing slash ("" for the root).
    package var path: String

    package init?(_ text: String) {
        let lower = text.lowercased()
        let rest: Substring
        if lower.hasPrefix("http://") {
            scheme = "http"
            rest = text.dropFirst(7)
        } else if lower.hasPrefix("https://") {
            scheme = "https"
            rest = text.dropFirst(8)
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.isEmpty, !authority.contains("@"), !authority.contains(" ") else { return nil }
        var pathPart = String(rest[authorityEnd...])
        if pathPart.contains("?") || pathPart.contains("#") || pathPart.contains(" ") { return nil }
        while pathPart.hasSuffix("/") { pathPart.removeLast() }
        path = pathPart
        let defaultPort = scheme == "https" ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.isEmpty {
                port = defaultPort
            } else if after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) {
                port = p
            } else {
                return nil
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
        } else {
            host = String(authority)
            port = defaultPort
        }
        guard !host.isEmpty else { return nil }
    }

    /// `scheme://host:port`
    package var origin: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(h):\(port)"
    }

    package var description: String { origin + path }

    /// Joins an endpoint such as `/chat/completions` onto the base path.
    package func appending(_ endpoint: String) -> String {
        origin + path + (endpoint.hasPrefix("/") ? endpoint : "/" + endpoint)
    }
}
