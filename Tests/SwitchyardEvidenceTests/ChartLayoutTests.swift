import Foundation
import Testing

@testable import SwitchyardEvidence

/// report.html's chart layout: ticks people read at a glance, labels that never overlap.
@Suite struct ChartLayoutTests {
    @Test func ticksAreNiceOneTwoFiveSteps() {
        #expect(ChartLayout.niceTicks(upTo: 6401) == [0, 2000, 4000, 6000, 8000])
        #expect(ChartLayout.niceTicks(upTo: 1.6) == [0, 0.5, 1, 1.5, 2])
        #expect(ChartLayout.niceTicks(upTo: 1) == [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(ChartLayout.niceTicks(upTo: 30) == [0, 10, 20, 30])
        #expect(ChartLayout.niceTicks(upTo: 0) == [0, 1])
        for max in [0.003, 0.7, 1.0, 7.3, 42, 999, 12345, 1e7] {
            let ticks = ChartLayout.niceTicks(upTo: max)
            #expect(ticks.first == 0 && ticks.last! >= max && ticks.count >= 2 && ticks.count <= 11, "\(max): \(ticks)")
            let step = ticks[1]
            let mantissa = step / pow10(step)
            #expect([1, 2, 5].contains { abs(mantissa - $0) < 1e-9 }, "step \(step) for \(max)")
            #expect(ticks.dropFirst(2).enumerated().allSatisfy { abs($0.element - ticks[$0.offset + 1] - step) < step * 1e-9 })
        }
    }

    func pow10(_ v: Double) -> Double { Foundation.pow(10, Foundation.log10(v).rounded(.down)) }

    @Test func tickLabelsCarryOnlyTheDecimalsTheStepNeeds() {
        #expect(ChartLayout.label(2000, step: 2000) == "2000")
        #expect(ChartLayout.label(1.5, step: 0.5) == "1.5")
        #expect(ChartLayout.label(1, step: 0.5) == "1.0")
        #expect(ChartLayout.label(0.4, step: 0.2) == "0.4")
        #expect(ChartLayout.label(0.05, step: 0.05) == "0.05")
    }

    @Test func labelsThatWouldOverlapGoToAnotherRow() {
        let boxes: [ClosedRange<Double>] = [0...50, 30...80, 100...140, 60...90, 85...95]
        let rows = ChartLayout.rows(for: boxes)
        #expect(rows == [0, 1, 0, 0, 1])
        // No two boxes in one row overlap (with the gap).
        for i in boxes.indices {
            for j in boxes.indices where i < j && rows[i] == rows[j] {
                #expect(!((boxes[i].lowerBound - 4)...(boxes[i].upperBound + 4)).overlaps(boxes[j]), "\(boxes[i]) and \(boxes[j])")
            }
        }
    }

    @Test func legendItemsWrapWithinTheWidth() {
        let placed = ChartLayout.flow([100, 100, 100, 100], in: 250)
        #expect(placed.map(\.row) == [0, 0, 1, 1])
        #expect(placed.map(\.x) == [0, 116, 0, 116])
    }

    @Test func aLaneKeepsItsColourAndErrorsGetOthers() {
        #expect(Set(ChartLayout.laneColors).isDisjoint(with: ChartLayout.errorColors))
        #expect(Set(ChartLayout.laneColors).count == ChartLayout.laneColors.count)
    }
}
