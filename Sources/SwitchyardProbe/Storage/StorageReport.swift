import Foundation
import SwitchyardCore

/// One measured phase of ``StorageProbe``.
package struct StorageResult: Sendable, Equatable {
    /// Stable id (JSON key, comparison).
    package var name: String
    package var label: String
    package var value: Double
    /// MB/s, IOPS or ops/s: higher is better for each.
    package var unit: String
    package var bytes: Int64
    package var seconds: Double
    /// Stopped by the time limit before its planned size or count.
    package var truncated: Bool
    package var p50: Double?
    package var p99: Double?
}

/// What the storage probe measured on one path: tables, Markdown and JSON like `topo`, and
/// comparable across mounts (``StorageComparison``).
package struct StorageReport: Sendable, Equatable {
    package struct Settings: Sendable, Equatable {
        package var bytes: Int64
        package var streams: Int
        package var files: Int
        package var randomReads: Int

        init(_ s: StorageProbe.Settings) {
            bytes = s.bytes
            streams = s.streams
            files = s.files
            randomReads = s.randomReads
        }

        package init(bytes: Int64, streams: Int, files: Int, randomReads: Int) {
            self.bytes = bytes
            self.streams = streams
            self.files = files
            self.randomReads = randomReads
        }
    }

    /// A managed replica's measured cold start, beside the raw read of a model-sized file.
    package struct EngineLoad: Sendable, Equatable {
        package var replica: String
        package var loadSeconds: Double

        package init(replica: String, loadSeconds: Double) {
            self.replica = replica
            self.loadSeconds = loadSeconds
        }
    }

    package var path: String
    package var filesystem: String?
    package var settings: Settings
    package var results: [StorageResult] = []
    package var engineLoads: [EngineLoad] = []

    /// Seconds the one-stream model load needs for the model-sized file.
    package var rawLoadSeconds: Double? { results.first { $0.name == "model_load_single" }.map { $0.seconds } }

    package var json: JSONValue {
        func num(_ v: Double?) -> JSONValue { v.map { .number(String(format: "%.6g", $0)) } ?? .null }
        return .object([
            ("path", .string(path)), ("filesystem", filesystem.map(JSONValue.string) ?? .null),
            (
                "settings",
                .object([
                    ("bytes", .number(Int(settings.bytes))), ("streams", .number(settings.streams)), ("files", .number(settings.files)),
                    ("random_reads", .number(settings.randomReads)),
                ])
            ),
            (
                "results",
                .array(
                    results.map { r in
                        .object([
                            ("name", .string(r.name)), ("label", .string(r.label)), ("value", num(r.value)), ("unit", .string(r.unit)),
                            ("bytes", .number(Int(r.bytes))), ("seconds", num(r.seconds)), ("truncated", .bool(r.truncated)),
                            ("p50_s", num(r.p50)), ("p99_s", num(r.p99)),
                        ])
                    })
            ),
            ("engine_loads", .array(engineLoads.map { .object([("replica", .string($0.replica)), ("load_seconds", num($0.loadSeconds))]) })),
        ])
    }

    package static func decode(_ json: JSONValue, source: String) throws -> StorageReport {
        guard let path = json["path"]?.stringValue, let results = json["results"]?.arrayValue, let s = json["settings"] else {
            throw StorageProbe.Failure(description: "\(source): not a storage probe report (path, settings and results are needed)")
        }
        var report = StorageReport(
            path: path, filesystem: json["filesystem"]?.stringValue,
            settings: Settings(
                bytes: Int64(s["bytes"]?.intValue ?? 0), streams: s["streams"]?.intValue ?? 0, files: s["files"]?.intValue ?? 0,
                randomReads: s["random_reads"]?.intValue ?? 0))
        for r in results {
            guard let name = r["name"]?.stringValue, let value = r["value"]?.doubleValue else {
                throw StorageProbe.Failure(description: "\(source): a result without name or value")
            }
            report.results.append(
                StorageResult(
                    name: name, label: r["label"]?.stringValue ?? name, value: value, unit: r["unit"]?.stringValue ?? "",
                    bytes: Int64(r["bytes"]?.intValue ?? 0), seconds: r["seconds"]?.doubleValue ?? 0, truncated: r["truncated"]?.boolValue ?? false,
                    p50: r["p50_s"]?.doubleValue, p99: r["p99_s"]?.doubleValue))
        }
        return report
    }

    package func rows() -> [[String]] {
        var rows = results.map { r -> [String] in
            var detail = String(format: "%.2f s", r.seconds)
            if let p50 = r.p50, let p99 = r.p99 { detail += String(format: ", p50 %.3f ms, p99 %.3f ms", p50 * 1000, p99 * 1000) }
            if r.truncated { detail += ", stopped at the time limit" }
            return [r.label, String(format: "%.1f %@", r.value, r.unit), detail]
        }
        if let raw = rawLoadSeconds {
            for e in engineLoads {
                rows.append([
                    "cold start of \(e.replica)", String(format: "%.2f s", e.loadSeconds),
                    String(
                        format: "raw read of a %@ file: %.2f s (%@)", StorageProbe.size(settings.bytes), raw,
                        e.loadSeconds > 2 * raw ? "the engine, not storage, bounds it" : "storage is a large part of it"),
                ])
            }
        }
        return rows
    }

    package func table() -> String {
        Self.render(
            ["phase", "result", "detail"], rows(), markdown: false, title: "storage probe of \(path) (\(filesystem ?? "filesystem unknown"))")
    }

    package func markdown() -> String {
        Self.render(
            ["phase", "result", "detail"], rows(), markdown: true, title: "Storage probe of `\(path)` (\(filesystem ?? "filesystem unknown"))")
    }

    static func render(_ head: [String], _ rows: [[String]], markdown: Bool, title: String) -> String {
        if markdown {
            return "## \(title)\n\n| " + head.joined(separator: " | ") + " |\n|" + head.map { _ in " --- |" }.joined() + "\n"
                + rows.map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n") + "\n"
        }
        let all = [head] + rows
        let widths = head.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
        return title + "\n"
            + all.map { row in row.enumerated().map { $1.padding(toLength: widths[$0] + 2, withPad: " ", startingAt: 0) }.joined() }
            .joined(separator: "\n") + "\n"
    }
}

/// Storage probe reports side by side: the storage decision record (local NVMe, a shared
/// filesystem, an object-store fuse mount on the same workload).
package enum StorageComparison {
    package static func rows(_ reports: [StorageReport]) -> [[String]] {
        var names: [String] = []
        for r in reports { for x in r.results where !names.contains(x.name) { names.append(x.name) } }
        return names.map { name in
            let label = reports.lazy.compactMap { $0.results.first { $0.name == name }?.label }.first ?? name
            let values = reports.map { $0.results.first { $0.name == name } }
            let best = values.compactMap { $0?.value }.max()
            return [label]
                + values.map { v in
                    guard let v else { return "unknown (not measured)" }
                    let mark = v.value == best && reports.count > 1 ? " (best)" : ""
                    return String(format: "%.1f %@", v.value, v.unit) + mark + (v.truncated ? " (time limit)" : "")
                }
        }
    }

    package static func table(_ reports: [StorageReport], markdown: Bool) -> String {
        let head = ["phase"] + reports.map { "\($0.path)" + ($0.filesystem.map { " (\($0))" } ?? "") }
        var notes = ""
        let sizes = Set(reports.map(\.settings.bytes))
        if sizes.count > 1 {
            notes =
                "\nwarning: the reports used different sizes (\(sizes.sorted().map(StorageProbe.size).joined(separator: ", "))): compare like with like\n"
        }
        return StorageReport.render(head, rows(reports), markdown: markdown, title: "storage comparison") + notes
    }
}
