import Foundation
import Yams

/// Reads typed values out of a YAML node tree, recording every problem with its path instead of
/// stopping at the first, so `config check` can list them all at once.
package struct YAMLReader {
    package var issues: [ConfigIssue] = []
    /// Where `${ENV}` and `file:` references to secrets are looked up.
    package var secrets = SecretSource()

    package init(secrets: SecretSource = SecretSource()) { self.secrets = secrets }

    /// The document's root node (nil when empty), or the parse error as a config issue.
    package static func compose(_ text: String) throws(ConfigError) -> Node? {
        do {
            return try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(issues: [ConfigIssue(path: "", message: "not valid YAML: \(error)")])
        }
    }

    /// A secret given by reference (see ``SecretSource``), resolved; nil after reporting why not.
    package mutating func secret(_ node: Node, _ path: String) -> String? {
        guard let reference = string(node, path) else { return nil }
        switch secrets.resolve(reference) {
        case .success(let value): return value
        case .failure(let error):
            fail(path, error.description, node)
            return nil
        }
    }

    /// A path to a file this process can read (a certificate, a key, a CA bundle).
    package mutating func readableFile(_ node: Node, _ path: String) -> String? {
        guard let file = string(node, path) else { return nil }
        guard FileManager.default.isReadableFile(atPath: file) else {
            fail(path, "cannot read '\(file)'", node)
            return nil
        }
        return file
    }

    package mutating func fail(_ path: String, _ message: String, _ node: Node?) {
        issues.append(ConfigIssue(path: path, message: message, line: node.map { $0.mark?.line ?? 0 }.flatMap { $0 > 0 ? $0 : nil }))
    }

    /// The mapping's entries, after reporting keys outside `allowed`.
    package mutating func mapping(_ node: Node, _ path: String, allowed: [String]) -> [String: Node]? {
        guard case .mapping(let mapping) = node else {
            fail(path, "expected a mapping with fields \(allowed.joined(separator: ", "))", node)
            return nil
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                fail(path, "keys must be strings", keyNode)
                continue
            }
            let childPath = path.isEmpty ? key : "\(path).\(key)"
            if !allowed.contains(key) {
                fail(childPath, "unknown field; allowed: \(allowed.joined(separator: ", "))", keyNode)
                continue
            }
            result[key] = value
        }
        return result
    }

    package mutating func sequence(_ node: Node, _ path: String) -> [Node]? {
        guard case .sequence(let seq) = node else {
            fail(path, "expected a list", node)
            return nil
        }
        return Array(seq)
    }

    package mutating func string(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let scalar) = node, !scalar.string.isEmpty else {
            fail(path, "expected a non-empty string", node)
            return nil
        }
        return scalar.string
    }

    package mutating func int(_ node: Node, _ path: String, min: Int, max: Int = .max) -> Int? {
        guard case .scalar(let scalar) = node, let value = Int(scalar.string) else {
            fail(path, "expected an integer, got '\(node.scalar?.string ?? "a collection")'", node)
            return nil
        }
        guard value >= min, value <= max else {
            fail(path, "must be between \(min) and \(max == .max ? "∞" : String(max)), got \(value)", node)
            return nil
        }
        return value
    }

    package mutating func double(_ node: Node, _ path: String, min: Double, max: Double = .infinity, exclusiveMin: Bool = false) -> Double? {
        guard case .scalar(let scalar) = node, let value = Double(scalar.string), value.isFinite else {
            fail(path, "expected a number, got '\(node.scalar?.string ?? "a collection")'", node)
            return nil
        }
        guard exclusiveMin ? value > min : value >= min, value <= max else {
            fail(path, "must be \(exclusiveMin ? ">" : "≥") \(min)\(max.isFinite ? " and ≤ \(max)" : ""), got \(value)", node)
            return nil
        }
        return value
    }

    package mutating func bool(_ node: Node, _ path: String) -> Bool? {
        guard case .scalar(let scalar) = node else {
            fail(path, "expected true or false", node)
            return nil
        }
        switch scalar.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            fail(path, "expected true or false, got '\(scalar.string)'", node)
            return nil
        }
    }

    package mutating func duration(_ node: Node, _ path: String, allowZero: Bool = false) -> Duration? {
        guard case .scalar(let scalar) = node, let value = Duration.parse(scalar.string) else {
            fail(path, "expected a duration such as 250ms, 2s or 5m, got '\(node.scalar?.string ?? "a collection")'", node)
            return nil
        }
        if !allowZero, value == .zero {
            fail(path, "must be greater than zero", node)
            return nil
        }
        return value
    }

    package mutating func httpURL(_ node: Node, _ path: String) -> String? {
        guard let text = string(node, path) else { return nil }
        guard HTTPURL(text) != nil else {
            fail(path, "not a valid http(s) URL: '\(text)'", node)
            return nil
        }
        return text
    }

    package mutating func oneOf<T: RawRepresentable & CaseIterable>(_ node: Node, _ path: String, _: T.Type) -> T? where T.RawValue == String {
        guard let text = string(node, path) else { return nil }
        guard let value = T(rawValue: text) else {
            fail(path, "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'", node)
            return nil
        }
        return value
    }
}
