import Foundation
import SwitchyardCore

/// What `kubectl get nodes,pods,network-attachment-definitions -A -o json` shows: read from dump
/// files (one per kind or one `List`) or from the live API.
package struct KubeSnapshot: Sendable {
    package var nodes: [JSONValue] = []
    package var pods: [JSONValue] = []
    package var nads: [JSONValue] = []
    /// Files read, for the report.
    package var sources: [String] = []

    package init() {}

    package struct LoadError: Error, CustomStringConvertible {
        package let description: String
    }

    /// Every `*.json` file in `directory`.
    package static func load(directory: String) throws(LoadError) -> KubeSnapshot {
        var snapshot = KubeSnapshot()
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        guard !files.isEmpty else { throw LoadError(description: "\(directory): no kubectl JSON dumps (*.json) found") }
        for file in files {
            let path = (directory as NSString).appendingPathComponent(file)
            guard let data = FileManager.default.contents(atPath: path) else { throw LoadError(description: "\(path): cannot be read") }
            do {
                try snapshot.add(JSONParser.parse(Array(data)), hint: file)
            } catch let error as LoadError {
                throw error
            } catch {
                throw LoadError(description: "\(path): not JSON: \(error)")
            }
            snapshot.sources.append(path)
        }
        return snapshot
    }

    /// Adds a `List` (kubectl's `-o json` of several objects) or one object; `hint` (a file
    /// name such as `nodes.json`) names the kind of items that do not say it.
    package mutating func add(_ json: JSONValue, hint: String = "") throws(LoadError) {
        if let items = json["items"]?.arrayValue {
            let listKind = json["kind"]?.stringValue ?? ""
            for item in items {
                var kind = item["kind"]?.stringValue ?? String(listKind.dropLast(listKind.hasSuffix("List") ? 4 : 0))
                if kind.isEmpty { kind = Self.kind(fromFile: hint) }
                append(item, kind: kind)
            }
        } else if let kind = json["kind"]?.stringValue {
            append(json, kind: kind)
        } else {
            throw LoadError(description: "\(hint): neither a kubectl List nor an object with a kind")
        }
    }

    private mutating func append(_ item: JSONValue, kind: String) {
        switch kind {
        case "Node": nodes.append(item)
        case "Pod": pods.append(item)
        case "NetworkAttachmentDefinition": nads.append(item)
        default: break
        }
    }

    static func kind(fromFile name: String) -> String {
        let lower = name.lowercased()
        if lower.hasPrefix("node") { return "Node" }
        if lower.hasPrefix("pod") { return "Pod" }
        if lower.hasPrefix("network-attachment") || lower.hasPrefix("nad") { return "NetworkAttachmentDefinition" }
        return ""
    }
}

/// Accessors for the Kubernetes objects the checks read.
extension JSONValue {
    var name: String { self["metadata"]?["name"]?.stringValue ?? "?" }
    var namespace: String { self["metadata"]?["namespace"]?.stringValue ?? "default" }
    var qualifiedName: String { "\(namespace)/\(name)" }
    func annotation(_ key: String) -> String? { self["metadata"]?["annotations"]?[key]?.stringValue }
    func label(_ key: String) -> String? { self["metadata"]?["labels"]?[key]?.stringValue }
    var labels: [(String, JSONValue)] {
        if case .object(let fields)? = self["metadata"]?["labels"] { return fields }
        return []
    }
    /// `status.allocatable[resource]` of a node, as a number.
    func allocatable(_ resource: String) -> Double? { self["status"]?["allocatable"]?[resource]?.stringValue.flatMap(Quantity.parse) }
}

/// A network a pod asks for in `k8s.v1.cni.cncf.io/networks`.
package struct PodNetwork: Sendable, Equatable {
    package var namespace: String
    package var name: String
    package var interface: String?

    package var qualified: String { "\(namespace)/\(name)" }

    /// The comma form (`net1, other/net2@eth1`) or the JSON form
    /// (`[{"name":"net1","namespace":"ns","interface":"eth1"}]`); names without a namespace are in
    /// the pod's. Nil when the annotation is not readable.
    package static func parse(_ text: String, podNamespace: String) -> [PodNetwork]? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("[") {
            guard let list = (try? JSONParser.parse(trimmed))?.arrayValue else { return nil }
            var out: [PodNetwork] = []
            for item in list {
                guard let name = item["name"]?.stringValue else { return nil }
                out.append(
                    PodNetwork(namespace: item["namespace"]?.stringValue ?? podNamespace, name: name, interface: item["interface"]?.stringValue))
            }
            return out
        }
        return trimmed.split(separator: ",").map { part in
            var entry = part.trimmingCharacters(in: .whitespaces)
            var interface: String?
            if let at = entry.firstIndex(of: "@") {
                interface = String(entry[entry.index(after: at)...])
                entry = String(entry[..<at])
            }
            let pieces = entry.split(separator: "/", maxSplits: 1).map(String.init)
            return pieces.count == 2
                ? PodNetwork(namespace: pieces[0], name: pieces[1], interface: interface)
                : PodNetwork(namespace: podNamespace, name: entry, interface: interface)
        }.filter { !$0.name.isEmpty }
    }
}
