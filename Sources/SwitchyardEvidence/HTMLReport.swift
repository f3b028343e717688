import Foundation

/// A moment or a span to mark on the time charts: a fault's span is a shaded band, a moment
/// (`end` nil) a dashed line.
package struct TimelineMarker: Sendable {
    package var at: Double
    package var end: Double?
    package var label: String
    package init(at: Double, end: Double? = nil, label: String) {
        self.at = at
        self.end = end
        self.label = label
    }
}

/// A sampled series from outside the client (the gateway's queue depth from its /metrics).
package struct SampledSeries: Sendable {
    package var name: String
    package var points: [(t: Double, value: Double)]
    package init(name: String, points: [(t: Double, value: Double)]) {
        self.name = name
        self.points = points
    }
}

/// report.html: one self-contained file (inline CSS and SVG, no scripts, no network): per-lane
/// tables, TTFT and E2E CDFs, latency over time with markers, throughput and errors per second,
/// and sampled gateway series when given.
package enum HTMLReport {
    package static func render(
        manifest: Manifest, summaries: [LaneSummary], records: [RequestRecord],
        markers: [TimelineMarker] = [], sampled: [SampledSeries] = [], preamble: String = ""
    ) -> String {
        let lanes = summaries.map(\.lane)
        func color(_ lane: String) -> String {
            ChartLayout.laneColors[(lanes.firstIndex(of: lane) ?? 0) % ChartLayout.laneColors.count]
        }
        // One time axis for every chart over time, so faults line up.
        let timeEnd = max(
            records.compactMap { ($0.tLast ?? $0.tSend ?? $0.tSched).seconds }.max() ?? 0, markers.map { $0.end ?? $0.at }.max() ?? 0, 1)
        var body = ""
        body += "<h1>Switchyard evidence</h1>\n<p class=meta>\(escape(manifest.command.joined(separator: " ")))<br>"
        body += "version \(escape(manifest.version))\(manifest.gitCommit.map { ", commit \(escape(String($0.prefix(12))))" } ?? "") · "
        body +=
            "\(escape(manifest.machine.cpuModel)), \(manifest.machine.cores) cores, \(manifest.machine.memoryBytes >> 30) GiB, \(escape(manifest.machine.os))</p>\n"
        body += preamble
        for s in summaries { body += laneSection(s, color: color(s.lane)) }

        let measured = records.filter { !$0.warmup }
        func cdf(_ metric: (RequestRecord) -> Double?) -> [(String, String, [(Double, Double)])] {
            lanes.map { lane in
                let values = measured.filter { $0.lane == lane && $0.succeeded }.compactMap(metric).sorted()
                let n = Double(values.count)
                return (lane, color(lane), values.enumerated().map { ($0.element * 1000, Double($0.offset + 1) / n) })
            }
        }
        body += "<h2>Latency distributions</h2>\n<div class=row>"
        body += chart(title: "TTFT CDF", xLabel: "ms", yLabel: "fraction", series: cdf(\.ttft), yMax: 1, step: true)
        body += chart(title: "E2E CDF", xLabel: "ms", yLabel: "fraction", series: cdf(\.e2e), yMax: 1, step: true)
        var errorColor = 0
        body += "</div>\n<h2>Over time</h2>\n<div class=row>"
        let overTime = lanes.map { lane in
            (
                lane, color(lane),
                measured.filter { $0.lane == lane && $0.succeeded }
                    .compactMap { r in r.ttftSched.map { (r.tSched.seconds, $0 * 1000) } }.sorted { $0.0 < $1.0 }
            )
        }
        body += chart(
            title: "TTFT (from schedule) by send time", xLabel: "s", yLabel: "ms", series: overTime, markers: markers, xMax: timeEnd, dots: true)
        let buckets = max(1, Int(timeEnd.rounded(.up)))
        var perSecond: [(String, String, [(Double, Double)])] = []
        for lane in lanes {
            var ok = [Double](repeating: 0, count: buckets + 1)
            var failed = [Double](repeating: 0, count: buckets + 1)
            for r in records where r.lane == lane {
                let t = Int(((r.tLast ?? r.tSend ?? r.tSched).seconds).rounded(.down))
                if r.succeeded { ok[min(t, buckets)] += 1 } else { failed[min(t, buckets)] += 1 }
            }
            perSecond.append(("\(lane) ok/s", color(lane), ok.enumerated().map { (Double($0.offset), $0.element) }))
            if failed.contains(where: { $0 > 0 }) {
                let error = ChartLayout.errorColors[errorColor % ChartLayout.errorColors.count]
                errorColor += 1
                perSecond.append(("\(lane) errors/s", error, failed.enumerated().map { (Double($0.offset), $0.element) }))
            }
        }
        body += chart(
            title: "Completions and errors per second", xLabel: "s", yLabel: "req/s", series: perSecond, markers: markers, xMax: timeEnd,
            dashed: { $0.hasSuffix("errors/s") })
        if !sampled.isEmpty {
            // "queue <lane>": the lane's colour.
            let series = sampled.enumerated().map { i, s in
                let lane = lanes.first { s.name == "queue \($0)" }
                return (
                    s.name, lane.map(color) ?? ChartLayout.laneColors[(lanes.count + i) % ChartLayout.laneColors.count],
                    s.points.map { ($0.t, $0.value) }
                )
            }
            body += chart(title: "Gateway queue depth", xLabel: "s", yLabel: "requests", series: series, markers: markers, xMax: timeEnd)
        }
        body += "</div>\n"
        return page(title: "Switchyard evidence", body: body)
    }

    /// A self-contained page around `body`, in the evidence reports' style.
    package static func page(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang=en><head><meta charset=utf-8><title>\(escape(title))</title>
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1280px}
        h1{font-size:22px}h2{font-size:17px;margin-top:28px}.meta{color:#555;font-size:12px}
        table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
        td:first-child,th:first-child{text-align:left}.row{display:flex;flex-wrap:wrap;gap:16px}
        .pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}.warn{color:#9a6700}
        svg{background:#fff;border:1px solid #ddd}
        </style></head><body>
        \(body)
        </body></html>

        """
    }

    static func laneSection(_ s: LaneSummary, color: String) -> String {
        var out = "<h2><span style=\"color:\(color)\">■</span> Lane \(escape(s.lane))</h2>\n<p>"
        out += String(format: "Window %.1f s: %d scheduled, %d sent, %d succeeded, %d failed. ", s.window, s.scheduled, s.sent, s.succeeded, s.failed)
        if let offered = s.offeredRate { out += String(format: "Offered %.2f req/s, sent %.2f req/s. ", offered, s.sendRate) }
        out += String(format: "Throughput %.2f req/s, %.1f output tokens/s.", s.requestThroughput, s.outputTokenThroughput)
        if s.resent > 0 { out += " \(s.resent) resent after a reused connection was lost before any answer." }
        if let g = s.goodput, let a = s.attainment { out += String(format: " Goodput %.2f req/s, SLO attainment %.1f%%.", g, a * 100) }
        out +=
            "</p>\n<table><tr><th>metric (ms)</th><th>n</th><th>min</th><th>mean</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n"
        for (name, m) in s.metrics {
            let cells = [m.min, m.mean, m.p50, m.p90, m.p95, m.p99, m.p999, m.max].map { String(format: "<td>%.1f</td>", $0 * 1000) }.joined()
            out += "<tr><td>\(name)</td><td>\(m.n)</td>\(cells)</tr>\n"
        }
        out += "</table>\n"
        out +=
            s.invalid.isEmpty
            ? "<p class=pass>Valid run.</p>\n"
            : "<p class=warn>Not valid for a verdict:</p><ul>" + s.invalid.map { "<li>\(escape($0))</li>" }.joined() + "</ul>\n"
        if !s.errors.isEmpty { out += "<ul>" + s.errors.map { "<li>\($0.count)× \(escape($0.message))</li>" }.joined() + "</ul>\n" }
        return out
    }

    /// A line (or dot) chart: 1-2-5 ticks, the y unit along its axis, faults as shaded bands
    /// labelled above the plot (in rows that do not overlap), moments as dashed lines, and the
    /// legend below the plot.
    package static func chart(
        title: String, xLabel: String, yLabel: String, series: [(String, String, [(Double, Double)])],
        markers: [TimelineMarker] = [], yMax: Double? = nil, xMax: Double? = nil, step: Bool = false, dots: Bool = false,
        dashed: (String) -> Bool = { _ in false }
    ) -> String {
        let w = 600.0, plotHeight = 200.0, left = 64.0, right = 16.0
        let all = series.flatMap(\.2)
        let xTicks = ChartLayout.niceTicks(upTo: xMax ?? max(all.map(\.0).max() ?? 1, markers.map { $0.end ?? $0.at }.max() ?? 0, 1e-9))
        let yTicks = ChartLayout.niceTicks(upTo: yMax ?? max(all.map(\.1).max() ?? 1, 1e-9))
        let xTop = xTicks.last!, yTop = yTicks.last!
        let plotWidth = w - left - right
        func px(_ x: Double) -> Double { left + x / xTop * plotWidth }
        // Marker labels above the plot, in as many rows as they need.
        let labelBoxes = markers.map { m -> ClosedRange<Double> in
            let x = px(m.at)
            return x...(x + ChartLayout.width(of: m.label, fontSize: 10))
        }
        let labelRows = ChartLayout.rows(for: labelBoxes)
        let top = 30.0 + Double((labelRows.max() ?? -1) + 1) * 13
        // The legend below the x axis, flowed in rows.
        let legendWidths = series.map { 14 + ChartLayout.width(of: $0.0, fontSize: 11) }
        let legend = ChartLayout.flow(legendWidths, in: plotWidth)
        let bottom = 44.0 + Double((legend.map(\.row).max() ?? -1) + 1) * 16
        let h = top + plotHeight + bottom
        func py(_ y: Double) -> Double { top + plotHeight - y / yTop * plotHeight }
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=img aria-label=\"\(escape(title))\">"
        svg += "<text x=\"\(left)\" y=\"18\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        for m in markers {
            if let end = m.end {
                svg += String(
                    format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#D55E00\" fill-opacity=\"0.12\"/>", px(m.at), top,
                    max(1, px(end) - px(m.at)), plotHeight)
            } else {
                svg += String(
                    format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#D55E00\" stroke-dasharray=\"4 3\"/>", px(m.at), top,
                    px(m.at), top + plotHeight)
            }
        }
        for (m, row) in zip(markers, labelRows) {
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#A04000\">%@</text>", px(m.at), 30 + Double(row) * 13 + 8,
                escape(m.label))
        }
        let yStep = yTicks.count > 1 ? yTicks[1] : 1, xStep = xTicks.count > 1 ? xTicks[1] : 1
        for yv in yTicks {
            svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", left, py(yv), w - right, py(yv))
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%@</text>", left - 4, py(yv) + 3,
                ChartLayout.label(yv, step: yStep))
        }
        for xv in xTicks {
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%@</text>", px(xv), top + plotHeight + 14,
                ChartLayout.label(xv, step: xStep))
        }
        svg += String(
            format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>", left, top + plotHeight, w - right, top + plotHeight)
        svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>", left, top, left, top + plotHeight)
        svg += String(
            format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%@</text>", left + plotWidth / 2, top + plotHeight + 30,
            escape(xLabel))
        svg += String(
            format: "<text transform=\"translate(14 %.1f) rotate(-90)\" font-size=\"11\" text-anchor=\"middle\">%@</text>", top + plotHeight / 2,
            escape(yLabel))
        for ((name, color, points), (x, row)) in zip(series, legend) {
            let dash = dashed(name) ? " stroke-dasharray=\"5 3\"" : ""
            if !points.isEmpty {
                if dots {
                    var d = ""
                    for (x, y) in points { d += String(format: "M%.1f %.1fh0.01", px(x), py(min(y, yTop))) }
                    svg += "<path d=\"\(d)\" stroke=\"\(color)\" stroke-width=\"4\" stroke-linecap=\"round\" fill=\"none\"/>"
                } else {
                    var d = String(format: "M%.1f %.1f", px(points[0].0), py(step ? 0 : points[0].1))
                    for (x, y) in points {
                        if step { d += String(format: "H%.1f", px(x)) }
                        d += String(format: "L%.1f %.1f", px(x), py(min(y, yTop)))
                    }
                    svg += "<path d=\"\(d)\" stroke=\"\(color)\" stroke-width=\"1.5\"\(dash) fill=\"none\"/>"
                }
            }
            let ly = top + plotHeight + 44 + Double(row) * 16
            svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%@\"/>", left + x, ly - 9, color)
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%@</text>", left + x + 14, ly, escape(name))
        }
        return svg + "</svg>\n"
    }

    package static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
