import Foundation

/// The layout decisions of report.html's charts, as pure functions: "nice" 1-2-5 ticks, their
/// labels, label rows that do not overlap, and the colours.
package enum ChartLayout {
    /// Okabe–Ito, distinguishable with the common colour-vision deficiencies. A lane keeps its
    /// colour in every chart (its index among the lanes).
    package static let laneColors = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442"]
    /// Error series: colours no lane uses (and drawn dashed).
    package static let errorColors = ["#D55E00", "#000000", "#882255", "#7F7F7F"]

    /// Ticks from 0 in steps of 1, 2 or 5 × 10ⁿ, about `count` intervals, the last at or above
    /// `max`: 6401 → 0, 2000, 4000, 6000, 8000; 1.6 → 0, 0.5, 1, 1.5, 2.
    package static func niceTicks(upTo max: Double, count: Int = 5) -> [Double] {
        guard max > 0, max.isFinite else { return [0, 1] }
        let step = niceStep(max / Double(count))
        let n = Int((max / step - 1e-9).rounded(.up))
        // i × step, rounded to the step's decimals (0.6, not 0.6000000000000001).
        let scale = step >= 1 ? 1 : pow(10, (-log10(step) - 1e-9).rounded(.up))
        return (0...Swift.max(1, n)).map { (Double($0) * step * scale).rounded() / scale }
    }

    /// The 1-2-5 step at or above `raw`.
    package static func niceStep(_ raw: Double) -> Double {
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        for factor in [1.0, 2, 5, 10] where factor * magnitude >= raw * (1 - 1e-9) { return factor * magnitude }
        return 10 * magnitude
    }

    /// A tick's label with as many decimals as its step needs: 2000, 0.5, 0.25 — never 2134.
    package static func label(_ value: Double, step: Double) -> String {
        let decimals = step >= 1 ? 0 : Int((-log10(step) - 1e-9).rounded(.up))
        return String(format: "%.\(decimals)f", value)
    }

    /// The width of a label at `fontSize` (an estimate: 0.6 em per character).
    package static func width(of text: String, fontSize: Double) -> Double {
        Double(text.count) * fontSize * 0.6
    }

    /// Places boxes (horizontal extents) in rows: each goes in the first row where it overlaps no
    /// box already there (with `gap` between). Returns each box's row.
    package static func rows(for boxes: [ClosedRange<Double>], gap: Double = 4) -> [Int] {
        var rows: [[ClosedRange<Double>]] = []
        return boxes.map { box in
            let padded = (box.lowerBound - gap)...(box.upperBound + gap)
            if let row = rows.firstIndex(where: { $0.allSatisfy { !$0.overlaps(padded) } }) {
                rows[row].append(box)
                return row
            }
            rows.append([box])
            return rows.count - 1
        }
    }

    /// Legend items flowed left to right in `width`, wrapping: each item's (x, row).
    package static func flow(_ widths: [Double], in width: Double, gap: Double = 16) -> [(x: Double, row: Int)] {
        var x = 0.0
        var row = 0
        return widths.map { w in
            if x > 0, x + w > width {
                x = 0
                row += 1
            }
            defer { x += w + gap }
            return (x, row)
        }
    }
}
