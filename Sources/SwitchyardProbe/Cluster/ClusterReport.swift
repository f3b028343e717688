import Foundation

/// The output of `switchyard cluster …`: what was read, a summary, and the checks in `topo`'s
/// shape (`checks[]` with `id`, `status`, `subject`, `message`, `evidence`, `fix`).
package struct ClusterReport: Sendable, Codable, Equatable {
    /// `k8s`, `slurm`, `slurm+k8s` or `hosts`.
    package var scope: String
    package var sources: [String]
    package var summary: Summary
    package var checks: [CheckResult]

    package struct Summary: Sendable, Codable, Equatable {
        /// What was checked: nodes, pods, NADs, Slurm nodes, hosts…
        package var counts: [String: Int]
        package var pass: Int
        package var warn: Int
        package var fail: Int
    }

    package init(scope: String, sources: [String], counts: [String: Int], checks: [CheckResult]) {
        self.scope = scope
        self.sources = sources
        self.checks = checks
        summary = Summary(
            counts: counts, pass: checks.filter { $0.status == .pass }.count, warn: checks.filter { $0.status == .warn }.count,
            fail: checks.filter { $0.status == .fail }.count)
    }

    package func json() -> String {
        String(decoding: (try? TopoReport.encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    package var table: String {
        var out = ["\(scope): " + summary.counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "), ""]
        out.append(TopoRenderer.row(["STATUS", "CHECK", "SUBJECT", "MESSAGE"]))
        for c in checks.sorted(by: TopoRenderer.order) {
            out.append(TopoRenderer.row([c.status.rawValue.uppercased(), c.id, c.subject, c.message]))
            if c.status != .pass {
                for e in c.evidence { out.append("        evidence: \(e.source) = \(e.value)") }
                if let hint = c.hint { out.append("        fix: \(hint)") }
            }
        }
        out.append("")
        out.append("\(summary.pass) passed, \(summary.warn) warnings, \(summary.fail) failed")
        return out.joined(separator: "\n")
    }

    package var markdown: String {
        var out = [
            "## Cluster check: \(scope)", "", summary.counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "), "",
        ]
        out.append("| status | check | subject | message | evidence | fix |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        for c in checks.sorted(by: TopoRenderer.order) {
            let evidence = c.evidence.map { "`\($0.source)` = `\($0.value)`" }.joined(separator: "<br>")
            out.append(
                "| \(c.status.rawValue.uppercased()) | `\(c.id)` | \(TopoRenderer.escape(c.subject)) | \(TopoRenderer.escape(c.message)) | \(evidence) | \(TopoRenderer.escape(c.hint ?? "")) |"
            )
        }
        out.append("")
        out.append("\(summary.pass) passed, \(summary.warn) warnings, \(summary.fail) failed")
        return out.joined(separator: "\n")
    }
}
