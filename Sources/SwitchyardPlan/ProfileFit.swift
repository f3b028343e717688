import Foundation
import SwitchyardCore

/// Fits a ``ReplicaProfile`` to measured requests (a bench bundle's `requests.jsonl`, taken
/// straight at the model server or through a gateway whose queue it then leaves out).
package enum ProfileFit {
    /// One measured request: client times in seconds from the run's start.
    package struct Observation: Sendable {
        package var send: Double
        package var first: Double
        package var last: Double
        package var prompt: Int
        package var output: Int
        /// Which run (bundle) it belongs to: each run's clock starts at zero, so requests in
        /// flight are counted within a run.
        package var run: Int
        package init(send: Double, first: Double, last: Double, prompt: Int, output: Int, run: Int = 0) {
            self.run = run
            self.send = send
            self.first = first
            self.last = last
            self.prompt = prompt
            self.output = output
        }
    }

    /// - Parameters:
    ///   - slots: requests a replica runs at once (llama.cpp `/props` `total_slots`); requests
    ///     that found more in flight at their send waited in a queue, so their TTFT is left out.
    ///   - source: names the evidence (bundle folders) in every number's source.
    package static func fit(
        _ all: [Observation], slots: Int, name: String, source: String, accelerator: String = "cpu", gpusPerReplica: Int = 0
    ) throws -> ReplicaProfile {
        let usable = all.filter { $0.first >= $0.send && $0.last >= $0.first && $0.prompt > 0 && $0.output >= 2 }
        guard usable.count >= 20 else {
            throw PlanError(
                "\(source): \(usable.count) streamed requests with first and last token times and token counts; a fit needs at least 20 (run bench with --stream and enough requests)"
            )
        }
        var sends: [Int: [Double]] = [:], firsts: [Int: [Double]] = [:], lasts: [Int: [Double]] = [:]
        for o in usable {
            sends[o.run, default: []].append(o.send)
            firsts[o.run, default: []].append(o.first)
            lasts[o.run, default: []].append(o.last)
        }
        for run in sends.keys {
            sends[run]!.sort()
            firsts[run]!.sort()
            lasts[run]!.sort()
        }
        // Requests of the same run in service at t (sent, not finished), from its sorted lists.
        func inService(_ t: Double, _ run: Int) -> Int { upperBound(sends[run]!, t) - upperBound(lasts[run]!, t) }
        // … and those still before their first token (prefilling or waiting to).
        func inPrefill(_ t: Double, _ run: Int) -> Int { upperBound(sends[run]!, t) - upperBound(firsts[run]!, t) }

        // Decode: TPOT against the requests in flight at the middle of the decode, less the time
        // the replica spent prefilling others meanwhile (serial prefill holds decoding up; the
        // simulator adds that back from its own prefills).
        let prefilling = Dictionary(grouping: usable, by: \.run).mapValues { Intervals($0.map { ($0.send, $0.first) }) }
        var decode: [(k: Double, y: Double)] = []
        for o in usable {
            let k = min(slots, max(1, inService((o.first + o.last) / 2, o.run)))
            let held = prefilling[o.run]!.covered(from: o.first, to: o.last)
            decode.append((Double(k - 1), max(0, o.last - o.first - held) / Double(o.output - 1)))
        }
        // Prefill: TTFT of requests that found a free slot and no other prompt before its first
        // token (prefill is serial: a prompt behind another waits for it, which the simulator
        // models, so such a wait is not prefill time), against prompt and requests in flight.
        var prefill: [(p: Double, k: Double, y: Double)] = []
        for o in usable {
            let k = inService(o.send, o.run)
            if k <= slots, inPrefill(o.send, o.run) <= 1 { prefill.append((Double(o.prompt), Double(max(0, k - 1)), o.first - o.send)) }
        }
        guard prefill.count >= 10 else {
            throw PlanError(
                "\(source): only \(prefill.count) requests found a free slot (at most \(slots) in flight when sent) and no other prompt being prefilled: the load was too high throughout; add a run with fewer clients"
            )
        }
        let measured = "measured: \(source)"
        let tpotFit = linear(decode.map { [$0.k] }, decode.map(\.y))
        let prompts = prefill.map(\.p)
        let promptSpread = (prompts.max() ?? 0) / max(1, prompts.min() ?? 1)
        var notes = [
            "\(usable.count) requests (\(prefill.count) found a free slot and no prompt ahead); \(slots) slots; prefill serial",
            String(format: "TPOT fit: R² %.2f over 1–%d in flight", tpotFit.r2, slots),
        ]
        let ttftFit: (coefficients: [Double], r2: Double)
        let perToken: Sourced
        if promptSpread >= 1.5 {
            ttftFit = linear(prefill.map { [$0.p, $0.k] }, prefill.map(\.y))
            perToken = Sourced(ttftFit.coefficients[1], "\(measured) (prompts \(Int(prompts.min()!))–\(Int(prompts.max()!)) tokens)")
            notes.append(String(format: "TTFT fit: R² %.2f", ttftFit.r2))
        } else {
            let fit = linear(prefill.map { [$0.k] }, prefill.map(\.y))
            ttftFit = (coefficients: [fit.coefficients[0], 0, fit.coefficients[1]], r2: fit.r2)
            perToken = Sourced(
                0,
                "assumption: every prompt in the evidence had \(Int(prompts.min()!))–\(Int(prompts.max()!)) tokens, so TTFT's dependence on prompt length was not measured (it is in the base)"
            )
            notes.append(String(format: "TTFT fit: R² %.2f (prompt length not varied)", fit.r2))
        }
        var profile = ReplicaProfile(
            name: name, gpusPerReplica: gpusPerReplica, accelerator: accelerator,
            slots: Sourced(Double(slots), "given: the engine's slot count"),
            ttftBase: Sourced(ttftFit.coefficients[0], measured), ttftPerPromptToken: perToken,
            ttftPerConcurrent: Sourced(ttftFit.coefficients[2], measured),
            tpotBase: Sourced(tpotFit.coefficients[0], measured), tpotPerConcurrent: Sourced(tpotFit.coefficients[1], measured),
            notes: notes)
        // The spread: measured over fitted, as percentiles.
        profile.ttftSpread = .quantiles(
            percentiles(prefill.map { $0.y / max(1e-6, profile.ttft(prompt: Int($0.p), inflight: Int($0.k) + 1)) }))
        profile.tpotSpread = .quantiles(percentiles(decode.map { $0.y / max(1e-6, profile.tpot(inflight: Int($0.k) + 1)) }))
        // A first token far sooner than prefill allows: the engine had the prompt cached (the same
        // prompts sent again, e.g. runs with the same seed), which makes every prompt look cheap.
        let cached = prefill.filter { $0.y < 0.25 * profile.ttft(prompt: Int($0.p), inflight: Int($0.k) + 1) }.count
        if cached * 20 > prefill.count {
            profile.notes.append(
                "warning: \(cached) of \(prefill.count) requests had their first token in under a quarter of the fitted time: prompt-cache hits? (repeated prompts, e.g. runs with the same --seed); the fit is then optimistic"
            )
        }
        return profile
    }

    /// Ordinary least squares of `y` on an intercept and `x`; coefficients below zero (noise
    /// against a time that cannot be negative), the intercept included, are set to zero and the
    /// rest refitted.
    package static func linear(_ x: [[Double]], _ y: [Double]) -> (coefficients: [Double], r2: Double) {
        let width = (x.first?.count ?? 0) + 1
        var active = Array(repeating: true, count: width)
        var beta = Array(repeating: 0.0, count: width)
        for _ in 0..<width {
            let columns = (0..<width).filter { active[$0] }
            let rows = x.map { row in columns.map { $0 == 0 ? 1 : row[$0 - 1] } }
            let solved = solve(rows, y) ?? Array(repeating: 0, count: columns.count)
            beta = Array(repeating: 0, count: width)
            for (i, c) in columns.enumerated() { beta[c] = solved[i] }
            // The intercept too: a fixed time below zero is noise as much as a negative slope.
            guard let negative = (0..<width).first(where: { active[$0] && beta[$0] < 0 }) else { break }
            active[negative] = false
        }
        let mean = y.reduce(0, +) / Double(max(1, y.count))
        var ssRes = 0.0, ssTot = 0.0
        for (row, v) in zip(x, y) {
            let fitted = beta[0] + zip(row, beta.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 }
            ssRes += (v - fitted) * (v - fitted)
            ssTot += (v - mean) * (v - mean)
        }
        return (beta, ssTot > 0 ? max(0, 1 - ssRes / ssTot) : 1)
    }

    /// Least squares by the normal equations (a handful of columns); nil when singular.
    static func solve(_ rows: [[Double]], _ y: [Double]) -> [Double]? {
        let n = rows.first?.count ?? 0
        guard n > 0 else { return [] }
        var a = Array(repeating: Array(repeating: 0.0, count: n + 1), count: n)
        for (row, v) in zip(rows, y) {
            for i in 0..<n {
                for j in 0..<n { a[i][j] += row[i] * row[j] }
                a[i][n] += row[i] * v
            }
        }
        for col in 0..<n {
            let pivot = (col..<n).max { abs(a[$0][col]) < abs(a[$1][col]) }!
            guard abs(a[pivot][col]) > 1e-12 else {
                // A column without variance: drop it (coefficient 0) by fixing its equation.
                for j in 0...n { a[col][j] = j == col ? 1 : 0 }
                for i in 0..<n where i != col { a[i][col] = 0 }
                continue
            }
            a.swapAt(col, pivot)
            for i in 0..<n where i != col {
                let f = a[i][col] / a[col][col]
                if f != 0 { for j in col...n { a[i][j] -= f * a[col][j] } }
            }
        }
        return (0..<n).map { a[$0][n] / a[$0][$0] }
    }

    /// Percentiles 0, 1, …, 100 of the values.
    static func percentiles(_ values: [Double]) -> [Double] {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return [1, 1] }
        return (0...100).map { p in
            let x = Double(p) / 100 * Double(sorted.count - 1)
            let i = Int(x)
            return i + 1 < sorted.count ? sorted[i] + (sorted[i + 1] - sorted[i]) * (x - Double(i)) : sorted[i]
        }
    }

    /// The union of time intervals, and how much of a span it covers.
    struct Intervals {
        var starts: [Double] = []
        var ends: [Double] = []
        /// Covered length before each merged interval.
        var before: [Double] = []

        init(_ spans: [(Double, Double)]) {
            for (a, b) in spans.sorted(by: { $0.0 < $1.0 }) where b > a {
                if let last = ends.last, a <= last {
                    ends[ends.count - 1] = max(last, b)
                } else {
                    before.append((before.last ?? 0) + ((ends.last ?? 0) - (starts.last ?? 0)))
                    starts.append(a)
                    ends.append(b)
                }
            }
        }

        /// Covered length of [0, t].
        func covered(upTo t: Double) -> Double {
            let i = upperBound(starts, t)
            guard i > 0 else { return 0 }
            return before[i - 1] + min(t, ends[i - 1]) - starts[i - 1]
        }

        func covered(from a: Double, to b: Double) -> Double { b > a ? covered(upTo: b) - covered(upTo: a) : 0 }
    }

    /// Elements ≤ t in a sorted array.
    static func upperBound(_ a: [Double], _ t: Double) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if a[mid] <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
