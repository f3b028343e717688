/// Human-readable forms of a ``TopoReport``: an aligned table for terminals, Markdown for reports.
package enum TopoRenderer {
    package static func table(_ r: TopoReport) -> String {
        var out: [String] = []
        let s = r.summary
        out.append(
            "host \(r.host.hostname): \(s.numaNodes) NUMA node\(s.numaNodes == 1 ? "" : "s"), \(s.gpus) GPU\(s.gpus == 1 ? "" : "s")\(s.gpuProduct.map { " (\($0))" } ?? ""), \(s.rdmaNics) RDMA NIC\(s.rdmaNics == 1 ? "" : "s")\(s.nicRateGbps.map { " @ \(Int($0)) Gb/s" } ?? ""), driver \(s.driverVersion ?? "-")"
        )
        if !r.host.gpus.isEmpty {
            out.append("")
            out.append(row(["GPU", "NUMA", "LINK", "NEAREST NIC", "PATH"]))
            for g in r.host.gpus {
                out.append(row([g.address, g.numaNode.map(String.init) ?? "-", g.link, g.nearestRdmaNic ?? "-", g.nearestPath?.rawValue ?? "-"]))
            }
        }
        if !r.host.nics.isEmpty {
            out.append("")
            out.append(row(["NIC", "RDMA", "NETDEV", "NUMA", "LINK"]))
            for n in r.host.nics {
                out.append(row([n.address, n.rdmaDevice ?? "-", n.interfaces.joined(separator: ","), n.numaNode.map(String.init) ?? "-", n.link]))
            }
        }
        out.append("")
        out.append(row(["INTERFACE", "MTU", "SPEED", "STATE", "PCI"]))
        for i in r.host.interfaces {
            out.append(
                row([i.name, i.mtu.map(String.init) ?? "-", i.speedMbps.map { "\($0) Mb/s" } ?? "-", i.operState ?? "-", i.pciAddress ?? "virtual"]))
        }
        out.append("")
        out.append(row(["STATUS", "CHECK", "SUBJECT", "MESSAGE"]))
        for c in r.checks.sorted(by: order) {
            out.append(row([c.status.rawValue.uppercased(), c.id, c.subject, c.message]))
            if c.status != .pass {
                for e in c.evidence { out.append("        evidence: \(e.source) = \(e.value)") }
                if let hint = c.hint { out.append("        fix: \(hint)") }
            }
        }
        out.append("")
        out.append("\(s.pass) passed, \(s.warn) warnings, \(s.fail) failed")
        return out.joined(separator: "\n")
    }

    package static func markdown(_ r: TopoReport) -> String {
        var out: [String] = []
        let s = r.summary
        out.append("## Host \(r.host.hostname)")
        out.append("")
        out.append("| NUMA nodes | GPUs | product | RDMA NICs | rate | fabric MTU | driver |")
        out.append("| --- | --- | --- | --- | --- | --- | --- |")
        out.append(
            "| \(s.numaNodes) | \(s.gpus) | \(s.gpuProduct ?? "-") | \(s.rdmaNics) | \(s.nicRateGbps.map { "\(Int($0)) Gb/s" } ?? "-") | \(s.fabricMtu.map(String.init) ?? "-") | \(s.driverVersion ?? "-") |"
        )
        out.append("")
        out.append("| status | check | subject | message | evidence | fix |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        for c in r.checks.sorted(by: order) {
            let evidence = c.evidence.map { "`\($0.source)` = `\($0.value)`" }.joined(separator: "<br>")
            out.append(
                "| \(c.status.rawValue.uppercased()) | `\(c.id)` | \(c.subject) | \(escape(c.message)) | \(evidence) | \(escape(c.hint ?? "")) |")
        }
        out.append("")
        out.append("\(s.pass) passed, \(s.warn) warnings, \(s.fail) failed")
        return out.joined(separator: "\n")
    }

    static func order(_ a: CheckResult, _ b: CheckResult) -> Bool {
        a.status != b.status ? a.status > b.status : (a.id, a.subject) < (b.id, b.subject)
    }

    static func escape(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

    static let widths = [14, 20, 18, 10, 0]

    static func row(_ cells: [String]) -> String {
        var line = ""
        for (i, cell) in cells.enumerated() {
            let w = i < widths.count ? widths[i] : 0
            line += w > 0 && cell.count < w ? cell + String(repeating: " ", count: w - cell.count) : cell + (i < cells.count - 1 ? "  " : "")
        }
        return line
    }
}
