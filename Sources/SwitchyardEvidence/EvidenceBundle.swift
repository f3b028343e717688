import Foundation
import SwitchyardCore

/// Where and how a run was made: enough to repeat it and to compare two bundles fairly.
package struct Manifest: Sendable {
    package var tool = "switchyard"
    package var version: String
    package var command: [String]
    package var gitCommit: String?
    /// SHA-256 of the spec or of the effective options.
    package var specHash: String
    package var startedAt: Date
    package var machine: Machine

    package struct Machine: Sendable {
        package var cpuModel: String
        package var cores: Int
        package var memoryBytes: UInt64
        package var os: String
        package var hostname: String

        /// This host, from /proc/cpuinfo, /etc/os-release and the process info.
        package static func current() -> Machine {
            let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
            let model =
                cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?
                .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown"
            let release = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
            let os =
                release.split(separator: "\n").first { $0.hasPrefix("PRETTY_NAME=") }
                .map { String($0.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) } ?? "unknown"
            return Machine(
                cpuModel: model, cores: ProcessInfo.processInfo.activeProcessorCount,
                memoryBytes: ProcessInfo.processInfo.physicalMemory, os: os, hostname: ProcessInfo.processInfo.hostName)
        }
    }

    package init(version: String, command: [String], gitCommit: String?, specHash: String, startedAt: Date = Date(), machine: Machine = .current()) {
        self.version = version
        self.command = command
        self.gitCommit = gitCommit
        self.specHash = specHash
        self.startedAt = startedAt
        self.machine = machine
    }

    /// The commit of the git checkout at `directory`, when there is one.
    package static func gitCommit(in directory: String = FileManager.default.currentDirectoryPath) -> String? {
        var url = URL(fileURLWithPath: directory)
        for _ in 0..<8 {
            let head = url.appendingPathComponent(".git/HEAD")
            if let text = try? String(contentsOf: head, encoding: .utf8) {
                let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
                guard line.hasPrefix("ref: ") else { return line }
                let ref = String(line.dropFirst(5))
                if let commit = try? String(contentsOf: url.appendingPathComponent(".git/" + ref), encoding: .utf8) {
                    return commit.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                let packed = (try? String(contentsOf: url.appendingPathComponent(".git/packed-refs"), encoding: .utf8)) ?? ""
                return packed.split(separator: "\n").first { $0.hasSuffix(" " + ref) }.map { String($0.prefix(40)) }
            }
            url.deleteLastPathComponent()
        }
        return nil
    }

    package var json: JSONValue {
        .object([
            ("tool", .string(tool)), ("version", .string(version)), ("command", .array(command.map(JSONValue.string))),
            ("git_commit", gitCommit.map(JSONValue.string) ?? .null), ("spec_sha256", .string(specHash)),
            ("started_at", .string(ISO8601DateFormatter().string(from: startedAt))),
            (
                "machine",
                .object([
                    ("cpu_model", .string(machine.cpuModel)), ("cores", .number(machine.cores)),
                    ("memory_bytes", .number(String(machine.memoryBytes))), ("os", .string(machine.os)),
                    ("hostname", .string(machine.hostname)),
                ])
            ),
        ])
    }
}

/// Writes an evidence bundle: manifest.json, requests.jsonl, summary.json, report.md, report.html.
package enum EvidenceBundle {
    package static func write(
        to directory: String, manifest: Manifest, records: [RequestRecord], summaries: [LaneSummary],
        extra: [(String, JSONValue)] = [], markers: [TimelineMarker] = [], sampled: [SampledSeries] = [],
        markdownPreamble: String = "", htmlPreamble: String = ""
    ) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func put(_ name: String, _ text: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: directory).appendingPathComponent(name))
        }
        try put("manifest.json", pretty(manifest.json) + "\n")
        var lines = ""
        lines.reserveCapacity(records.count * 400)
        for record in records {
            lines += record.json.serializedString
            lines += "\n"
        }
        try put("requests.jsonl", lines)
        let summary = JSONValue.object([("lanes", .array(summaries.map(\.json)))] + extra)
        try put("summary.json", pretty(summary) + "\n")
        try put("report.md", Report.markdown(manifest: manifest, summaries: summaries, preamble: markdownPreamble))
        try put(
            "report.html",
            HTMLReport.render(
                manifest: manifest, summaries: summaries, records: records, markers: markers, sampled: sampled,
                preamble: htmlPreamble))
    }

    /// JSON with one key per line at the top levels (diff-friendly), compact below.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        guard case .object(let fields) = value, !fields.isEmpty, indent.count < 4 else { return value.serializedString }
        let inner = indent + "  "
        let body = fields.map { "\(inner)\(JSONValue.string($0.0).serializedString): \(pretty($0.1, indent: inner))" }.joined(separator: ",\n")
        return "{\n\(body)\n\(indent)}"
    }
}

/// The human-readable report.
package enum Report {
    package static func markdown(manifest: Manifest, summaries: [LaneSummary], preamble: String = "") -> String {
        var out = "# Switchyard evidence\n\n" + preamble
        out += "- command: `\(manifest.command.joined(separator: " "))`\n"
        out +=
            "- version \(manifest.version)\(manifest.gitCommit.map { ", commit \($0.prefix(12))" } ?? ""); spec sha256 \(manifest.specHash.prefix(16))…\n"
        out +=
            "- machine: \(manifest.machine.cpuModel), \(manifest.machine.cores) cores, \(manifest.machine.memoryBytes >> 30) GiB, \(manifest.machine.os)\n\n"
        for s in summaries {
            out += "## Lane `\(s.lane)`\n\n"
            out += String(
                format: "Window %.1f s: %d scheduled, %d sent, %d succeeded, %d failed. ", s.window, s.scheduled, s.sent, s.succeeded, s.failed)
            if let offered = s.offeredRate { out += String(format: "Offered %.2f req/s, sent %.2f req/s. ", offered, s.sendRate) }
            out += String(format: "Throughput %.2f req/s, %.1f output tokens/s.", s.requestThroughput, s.outputTokenThroughput)
            if let goodput = s.goodput, let attainment = s.attainment {
                out += String(format: " Goodput %.2f req/s, SLO attainment %.1f%%.", goodput, attainment * 100)
            }
            out += "\n\n| metric (ms) | n | min | mean | p50 | p90 | p95 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|---|---|\n"
            for (name, m) in s.metrics {
                let cells = [m.min, m.mean, m.p50, m.p90, m.p95, m.p99, m.p999, m.max].map { String(format: "%.1f", $0 * 1000) }
                out += "| \(name) | \(m.n) | " + cells.joined(separator: " | ") + " |\n"
            }
            out += "\n"
            out += s.invalid.isEmpty ? "Validity: OK.\n" : "**Not valid for a verdict:**\n" + s.invalid.map { "- \($0)\n" }.joined()
            if !s.errors.isEmpty {
                out += "\nErrors:\n" + s.errors.map { "- \($0.count)× \($0.message)\n" }.joined()
            }
            out += "\n"
        }
        return out
    }
}
