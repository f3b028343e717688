import Foundation
import SwitchyardCore

/// `switchyard bench compare A B`: the metrics of two bundles side by side, lane by lane.
package enum BundleCompare {
    package struct CompareError: Error, CustomStringConvertible {
        package let description: String
    }

    static func load(_ directory: String) throws(CompareError) -> JSONValue {
        let path = directory + "/summary.json"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CompareError(description: "\(directory): no summary.json (is it an evidence bundle?)")
        }
        do {
            return try JSONParser.parse(Array(text.utf8))
        } catch {
            throw CompareError(description: "\(path): not valid JSON: \(error)")
        }
    }

    /// One row per lane and figure: A, B, B − A and B / A.
    package static func compare(_ a: String, _ b: String) throws(CompareError) -> String {
        let left = try load(a), right = try load(b)
        let lanesA = left["lanes"]?.arrayValue ?? [], lanesB = right["lanes"]?.arrayValue ?? []
        var lines: [String] = ["A: \(a)", "B: \(b)", ""]
        func row(_ name: String, _ x: Double?, _ y: Double?, scale: Double = 1, unit: String = "") -> String {
            func f(_ v: Double?) -> String { v.map { String(format: "%.3f%@", $0 * scale, unit) } ?? "-" }
            var delta = "-", ratio = "-"
            if let x, let y {
                delta = String(format: "%+.3f%@", (y - x) * scale, unit)
                if x != 0 { ratio = String(format: "%.2f", y / x) }
            }
            return [name, f(x), f(y), delta, ratio].enumerated().map { i, s in
                s.padding(toLength: i == 0 ? 30 : 14, withPad: " ", startingAt: 0)
            }.joined()
        }
        let names = lanesA.compactMap { $0["lane"]?.stringValue } + lanesB.compactMap { $0["lane"]?.stringValue }
        var seen: Set<String> = []
        for lane in names where seen.insert(lane).inserted {
            let x = lanesA.first { $0["lane"]?.stringValue == lane }, y = lanesB.first { $0["lane"]?.stringValue == lane }
            lines.append("lane \(lane)" + (x == nil ? " (only in B)" : y == nil ? " (only in A)" : ""))
            lines.append(
                ["figure", "A", "B", "B − A", "B / A"].enumerated().map { i, s in s.padding(toLength: i == 0 ? 30 : 14, withPad: " ", startingAt: 0) }
                    .joined())
            for key in ["request_throughput", "output_token_throughput", "goodput", "attainment", "succeeded", "failed"] {
                lines.append(row(key, x?[key]?.doubleValue, y?[key]?.doubleValue))
            }
            for metric in LaneSummary.metricNames {
                for p in ["p50", "p99"] {
                    lines.append(
                        row(
                            "\(metric) \(p)", x?["metrics"]?[metric]?[p]?.doubleValue, y?["metrics"]?[metric]?[p]?.doubleValue, scale: 1000,
                            unit: "ms"))
                }
            }
            for (side, s) in [("A", x), ("B", y)] where s?["valid"]?.boolValue == false {
                lines.append("  \(side) not valid: " + (s?["invalid_reasons"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: "; "))
            }
            lines.append("")
        }
        return lines.joined(separator: "\n")
    }
}
