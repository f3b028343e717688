import Foundation

/// Kubernetes resource quantities (`7880620Ki`, `1k`, `500m`, `2Gi`, `1e3`) as numbers.
package enum Quantity {
    private static let suffixes: [(String, Double)] = [
        ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776), ("Pi", 1_125_899_906_842_624),
        ("Ei", 1_152_921_504_606_846_976), ("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9),
        ("T", 1e12), ("P", 1e15), ("E", 1e18),
    ]

    package static func parse(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard !t.isEmpty else { return nil }
        for (suffix, factor) in suffixes where t.hasSuffix(suffix) {
            guard let n = Double(t.dropLast(suffix.count)) else { return nil }
            return n * factor
        }
        return Double(t)
    }
}
