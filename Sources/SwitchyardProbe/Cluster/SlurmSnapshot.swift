import Foundation
import SwitchyardCore

/// What Slurm believes: `scontrol show node -o` (or `--json`), `sinfo`, `gres.conf` and
/// `topology.conf` (tree or block form), with hostlist expressions expanded.
package struct SlurmSnapshot: Sendable {
    package struct Node: Sendable, Equatable {
        package var name: String
        /// `IDLE`, `DRAIN`, `DOWN`, `NOT_RESPONDING`… (the `+`-joined flags split).
        package var states: [String]
        package var reason: String?
        /// `gpu:h100:8(S:0-1)` → (gpu, h100, 8).
        package var gres: [GRES]
        package var partitions: [String]
        package var fields: [String: String]
    }

    package struct GRES: Sendable, Equatable {
        package var name: String
        package var type: String?
        package var count: Int
        package var cores: String?
        /// Device files (`/dev/nvidia[0-3]` expanded).
        package var files: [String] = []
    }

    package struct GresLine: Sendable, Equatable {
        package var nodes: [String]
        package var gres: GRES
    }

    package var nodes: [Node] = []
    package var gresConf: [GresLine]?
    /// Switch or block name → its nodes; nil when there is no topology.conf.
    package var topology: [String: [String]]?
    /// From `sinfo`: partition → its availability (`up`, `down`, `drain`, `inact`); nil without sinfo.
    package var partitions: [String: String]?
    package var sources: [String] = []

    package init() {}

    package struct ParseError: Error, CustomStringConvertible {
        package let description: String
        package init(description: String) { self.description = description }
    }

    // MARK: Files

    /// Reads what `switchyard cluster capture` writes: `scontrol-show-node.txt` or `.json`,
    /// optional `gres.conf` and `topology.conf`.
    package static func load(directory: String) throws(ParseError) -> SlurmSnapshot {
        var s = SlurmSnapshot()
        func read(_ name: String) -> String? {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
            s.sources.append(path)
            return text
        }
        if let json = read("scontrol-show-node.json") {
            s.nodes = try parseNodesJSON(json)
        } else if let text = read("scontrol-show-node.txt") {
            s.nodes = parseNodes(text)
        } else {
            throw ParseError(description: "\(directory): no scontrol-show-node.txt (scontrol show node -o) or scontrol-show-node.json")
        }
        if let text = read("gres.conf") { s.gresConf = try parseGresConf(text) }
        if let text = read("topology.conf") { s.topology = try parseTopology(text) }
        if let text = read("sinfo.txt") { s.partitions = parseSinfo(text) }
        return s
    }

    // MARK: scontrol show node

    /// `scontrol show node -o`: one node per line, `Key=value` pairs; values may hold spaces
    /// (`OS=Linux 5.15…`, `Reason=NHC: … [root@…]`).
    package static func parseNodes(_ text: String) -> [Node] {
        text.split(separator: "\n").compactMap { line in
            var fields: [String: String] = [:]
            var key: String?
            for token in line.split(separator: " ", omittingEmptySubsequences: false) {
                if let eq = token.firstIndex(of: "="), token[..<eq].allSatisfy({ $0.isLetter || $0 == "_" }), !token[..<eq].isEmpty {
                    key = String(token[..<eq])
                    fields[key!] = String(token[token.index(after: eq)...])
                } else if let k = key {
                    fields[k, default: ""] += " " + token
                }
            }
            for (k, v) in fields { fields[k] = v.trimmingCharacters(in: .whitespaces) }
            guard let name = fields["NodeName"] else { return nil }
            var reason = fields["Reason"]?.trimmingCharacters(in: .whitespaces)
            if let r = reason, let bracket = r.range(of: " [", options: .backwards), r.hasSuffix("]") { reason = String(r[..<bracket.lowerBound]) }
            return Node(
                name: name, states: (fields["State"] ?? "").split(separator: "+").map { String($0).uppercased() },
                reason: reason.flatMap { $0.isEmpty || $0 == "(null)" ? nil : $0 }, gres: parseGres(fields["Gres"] ?? ""),
                partitions: (fields["Partitions"] ?? "").split(separator: ",").map(String.init), fields: fields)
        }
    }

    /// `scontrol show node --json` (Slurm 21.08+: `{"nodes":[{"name","state":[…] or "…","reason","gres","partitions"}]}`).
    package static func parseNodesJSON(_ text: String) throws(ParseError) -> [Node] {
        guard let json = try? JSONParser.parse(text), let list = json["nodes"]?.arrayValue else {
            throw ParseError(description: "scontrol JSON: no nodes array")
        }
        return list.map { n in
            let states: [String] =
                n["state"]?.arrayValue?.compactMap(\.stringValue) ?? (n["state"]?.stringValue ?? "").split(separator: "+").map(String.init)
            let flags = n["state_flags"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let reason = n["reason"]?.stringValue
            return Node(
                name: n["name"]?.stringValue ?? "?", states: (states + flags).map { $0.uppercased() },
                reason: reason.flatMap { $0.isEmpty ? nil : $0 }, gres: parseGres(n["gres"]?.stringValue ?? ""),
                partitions: n["partitions"]?.arrayValue?.compactMap(\.stringValue) ?? [], fields: [:])
        }
    }

    /// `gpu:h100:8(S:0-1),gpu:a100:2` → GRES entries (`(null)` → none).
    package static func parseGres(_ text: String) -> [GRES] {
        guard !text.isEmpty, text != "(null)" else { return [] }
        return splitTopLevel(text).compactMap { item in
            var spec = item
            if let paren = spec.firstIndex(of: "(") { spec = String(spec[..<paren]) }
            let parts = spec.split(separator: ":").map(String.init)
            guard let name = parts.first else { return nil }
            switch parts.count {
            case 1: return GRES(name: name, type: nil, count: 1)
            case 2: return Int(parts[1]).map { GRES(name: name, type: nil, count: $0) } ?? GRES(name: name, type: parts[1], count: 1)
            default: return GRES(name: name, type: parts[1], count: Int(parts[2]) ?? 0)
            }
        }
    }

    // MARK: sinfo

    /// sinfo's default table (`PARTITION AVAIL TIMELIMIT NODES STATE NODELIST`): each partition's
    /// AVAIL (the default partition's `*` dropped).
    package static func parseSinfo(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let columns = line.split(separator: " ")
            guard columns.count >= 2 else { continue }
            let name = columns[0].hasSuffix("*") ? String(columns[0].dropLast()) : String(columns[0])
            // A partition appears once per node state; any line says its availability.
            out[name] = String(columns[1])
        }
        return out
    }

    // MARK: gres.conf

    package static func parseGresConf(_ text: String) throws(ParseError) -> [GresLine] {
        var out: [GresLine] = []
        for (number, line, f) in configLines(text) {
            guard let name = f["name"] else {
                if f["autodetect"] != nil { continue }
                throw ParseError(description: "gres.conf line \(number): no Name= in '\(line)'")
            }
            let files = try f["file"].map { t throws(ParseError) in try Hostlist.expand(t) } ?? []
            let count = f["count"].flatMap { Int($0) } ?? (files.isEmpty ? 1 : files.count)
            let nodes = try f["nodename"].map { t throws(ParseError) in try Hostlist.expand(t) } ?? ["*"]
            out.append(GresLine(nodes: nodes, gres: GRES(name: name, type: f["type"], count: count, cores: f["cores"], files: files)))
        }
        return out
    }

    /// A Slurm config file's lines without comments and blanks, each with its `Key=value` pairs
    /// (keys lowercased).
    static func configLines(_ text: String) -> [(number: Int, line: String, fields: [String: String])] {
        text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { i, raw in
            let line =
                raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?.trimmingCharacters(in: .whitespaces)
                ?? ""
            guard !line.isEmpty else { return nil }
            var fields: [String: String] = [:]
            for token in line.split(separator: " ") {
                let kv = token.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { fields[kv[0].lowercased()] = String(kv[1]) }
            }
            return (i + 1, line, fields)
        }
    }

    /// The GRES gres.conf gives a node, by name and type.
    package func configuredGres(for node: String) -> [GRES]? {
        guard let gresConf else { return nil }
        return gresConf.filter { $0.nodes.contains(node) || $0.nodes == ["*"] }.map(\.gres)
    }

    // MARK: topology.conf

    /// Tree (`SwitchName=s0 Nodes=gpu[001-008]`, `SwitchName=s2 Switches=s[0-1]`) or block
    /// (`BlockName=b1 Nodes=…`, `BlockSizes=…`) form → leaf switch/block → nodes.
    package static func parseTopology(_ text: String) throws(ParseError) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for (_, _, f) in configLines(text) {
            guard let name = f["switchname"] ?? f["blockname"], let nodes = f["nodes"] else { continue }
            out[name, default: []] += try Hostlist.expand(nodes)
        }
        return out
    }

    /// Splits at commas outside brackets.
    static func splitTopLevel(_ text: String) -> [String] {
        var parts: [String] = []
        var depth = 0
        var current = ""
        for ch in text {
            if ch == "[" || ch == "(" { depth += 1 }
            if ch == "]" || ch == ")" { depth -= 1 }
            if ch == ",", depth == 0 {
                parts.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        if !current.isEmpty { parts.append(current) }
        return parts
    }
}

/// Slurm hostlist expressions: `gpu[001-016,020]`, `rack[1-2]-n[1-2]`, `a,b[1-3]`.
package enum Hostlist {
    package static func expand(_ text: String) throws(SlurmSnapshot.ParseError) -> [String] {
        var out: [String] = []
        for part in SlurmSnapshot.splitTopLevel(text) { out += try expandOne(part) }
        return out
    }

    static func expandOne(_ text: String) throws(SlurmSnapshot.ParseError) -> [String] {
        guard let open = text.firstIndex(of: "[") else { return [text] }
        guard let close = text[open...].firstIndex(of: "]") else { throw SlurmSnapshot.ParseError(description: "unbalanced [ in hostlist '\(text)'") }
        let prefix = String(text[..<open])
        let rest = try expandOne(String(text[text.index(after: close)...]))
        var values: [String] = []
        for range in text[text.index(after: open)..<close].split(separator: ",") {
            let bounds = range.split(separator: "-", maxSplits: 1)
            if bounds.count == 2, let lo = Int(bounds[0]), let hi = Int(bounds[1]), lo <= hi, hi - lo < 100_000 {
                let width = bounds[0].count
                for n in lo...hi {
                    let digits = String(n)
                    values.append(String(repeating: "0", count: max(0, width - digits.count)) + digits)
                }
            } else if bounds.count == 1 {
                values.append(String(bounds[0]))
            } else {
                throw SlurmSnapshot.ParseError(description: "bad range '\(range)' in hostlist '\(text)'")
            }
        }
        return values.flatMap { v in rest.map { prefix + v + $0 } }
    }
}
