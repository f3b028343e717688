/// `nvidia-smi topo -m`: the link class between every pair of GPUs and NICs.
package struct NvidiaTopoMatrix: Sendable, Equatable, Codable {
    /// Row/column names in order, NICs under their device names (`mlx5_0`) when a legend maps them.
    package var devices: [String]
    /// `links[a][b]` = `X`, `SYS`, `NODE`, `PHB`, `PXB`, `PIX`, `NV18`, …
    package var links: [String: [String: String]]
    package var cpuAffinity: [String: String]
    package var numaAffinity: [String: String]

    package var gpus: [String] { devices.filter { $0.hasPrefix("GPU") } }
    package var nics: [String] { devices.filter { !$0.hasPrefix("GPU") } }

    package func link(_ a: String, _ b: String) -> String? { links[a]?[b] }

    package struct ParseError: Error, CustomStringConvertible {
        package var description: String
    }

    /// Parses both layouts: newer (`NIC0` columns plus a `NIC Legend`) and older (`mlx5_0` columns).
    /// Columns are found by header name.
    package static func parse(_ text: String) throws -> NvidiaTopoMatrix {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { stripANSI(String($0)) }
        guard let headerIndex = lines.firstIndex(where: { $0.contains("\t") && $0.contains("GPU0") }) else {
            throw ParseError(description: "no header line with GPU0 found")
        }
        let header = lines[headerIndex].split(separator: "\t", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let columns = Array(header.dropFirst())
        guard let firstMeta = columns.firstIndex(where: { $0.contains("Affinity") || $0.contains("NUMA ID") }) ?? Optional(columns.count) else {
            throw ParseError(description: "header has no device columns")
        }
        let deviceColumns = Array(columns[..<firstMeta]).filter { !$0.isEmpty }
        let cpuColumn = columns.firstIndex(of: "CPU Affinity")
        let numaColumn = columns.firstIndex(of: "NUMA Affinity")

        var legend: [String: String] = [:]
        for line in lines where line.trimmingCharacters(in: .whitespaces).hasPrefix("NIC") && line.contains(":") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, !parts[1].isEmpty, !parts[1].contains(" ") { legend[parts[0]] = parts[1] }
        }
        func name(_ raw: String) -> String { legend[raw] ?? raw }

        var links: [String: [String: String]] = [:]
        var cpu: [String: String] = [:]
        var numa: [String: String] = [:]
        for line in lines[(headerIndex + 1)...] {
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("Legend") { break }
            let cells = line.split(separator: "\t", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let rowName = cells.first, !rowName.isEmpty else { continue }
            let values = Array(cells.dropFirst())
            var row: [String: String] = [:]
            for (i, column) in deviceColumns.enumerated() where i < values.count {
                row[name(column)] = values[i]
            }
            links[name(rowName)] = row
            if let c = cpuColumn, c < values.count { cpu[name(rowName)] = values[c] }
            if let n = numaColumn, n < values.count { numa[name(rowName)] = values[n] }
        }
        guard !links.isEmpty else { throw ParseError(description: "no matrix rows after the header") }
        return NvidiaTopoMatrix(devices: deviceColumns.map(name), links: links, cpuAffinity: cpu, numaAffinity: numa)
    }

    static func stripANSI(_ s: String) -> String {
        var out = ""
        var inEscape = false
        for ch in s {
            if inEscape {
                if ch.isLetter { inEscape = false }
                continue
            }
            if ch == "\u{1B}" {
                inEscape = true
                continue
            }
            out.append(ch)
        }
        return out
    }
}
