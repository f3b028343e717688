/// The serving path of a gateway, as it serves: listener → lanes with their policy → model pools
/// (how each finds its replicas, how it routes) → replicas (capacity, health, draining) →
/// fallback chains → telemetry endpoints. Made from a configuration (replicas as configured) or,
/// by the gateway's `GET /admin/describe`, from the configuration in force and the pools' live
/// replicas, so the picture cannot drift from what serves. Rendered as Mermaid text, SVG, or a
/// self-contained HTML page.
package struct ServingPath: Sendable, Equatable {
    package struct Replica: Sendable, Equatable {
        package var id: String
        package var url: String
        /// Capacity and engine, in a few words (`max 4`, `4 slots (props)`).
        package var detail: String
        /// `configured` (not live), or the pool's state: serving, draining, drained, unhealthy,
        /// ejected, cooling.
        package var state: String
        package var inflight: Int?

        package init(id: String, url: String, detail: String, state: String, inflight: Int? = nil) {
            self.id = id
            self.url = url
            self.detail = detail
            self.state = state
            self.inflight = inflight
        }
    }

    package struct Pool: Sendable, Equatable {
        package var model: String
        /// Where its replicas come from: configured, managed by this gateway, discovered, registered.
        package var source: String
        package var routing: String
        package var replicas: [Replica]
        package var fallback: [String]
    }

    package struct Lane: Sendable, Equatable {
        package var name: String
        package var policy: [String]
    }

    package var listener: [String]
    package var lanes: [Lane]
    package var pools: [Pool]
    package var telemetry: [String]

    /// `live`: a pool's replicas as the gateway sees them now, by model (nil: as configured).
    package init(config: GatewayConfig, live: [String: [Replica]]? = nil) {
        let server = config.server
        listener = [
            "listener \(server.host):\(server.port)",
            (server.tls == nil ? "http" : server.tls?.clientCAFile == nil ? "https" : "https, client certificates for admin")
                + (server.fastPath ? ", event-loop fast path" : ""),
        ]
        lanes = config.lanes.sorted { ($0.priority, $0.name) < ($1.priority, $1.name) }.map { lane in
            var policy = ["priority \(lane.priority)"]
            let queue = lane.queue.maxSize == 0 ? "queue unbounded" : "queue ≤ \(lane.queue.maxSize)"
            policy.append(queue + (lane.queue.timeout.map { ", \(lane.queue.timeoutAction.rawValue) after \($0.formatted)" } ?? ""))
            let slo = [("ttft", lane.slo.ttft), ("tpot", lane.slo.tpot), ("e2e", lane.slo.e2e)].compactMap { name, d in
                d.map { "\(name) \($0.formatted)" }
            }
            if !slo.isEmpty { policy.append("SLO " + slo.joined(separator: ", ")) }
            var traits: [String] = []
            if lane.minShare > 0 { traits.append("share ≥ \(Int((lane.minShare * 100).rounded()))%") }
            if let cap = lane.maxInflightShare { traits.append("share ≤ \(Int((cap * 100).rounded()))%") }
            if lane.preemptible { traits.append("preemptible") }
            if lane.sheddable { traits.append("shed first") }
            if !traits.isEmpty { policy.append(traits.joined(separator: ", ")) }
            return Lane(name: lane.name, policy: policy)
        }
        pools = config.models.map { model in
            var sources: [String] = []
            let listed = model.backends.filter { !$0.managed }
            if !listed.isEmpty { sources.append("configured") }
            if let managed = model.managed {
                switch managed.server {
                case .llamacpp(let s): sources.append("managed llama.cpp × \(managed.replicas) (\(s.modelPath), \(s.parallel) slots)")
                case .command: sources.append("managed command × \(managed.replicas)")
                }
            }
            if let discovery = model.discovery { sources.append("discovered \(discovery.label)") }
            let replicas =
                live?[model.name]
                ?? listed.enumerated().map { i, b in
                    Replica(
                        id: "\(model.name)-\(i)", url: b.url, detail: b.maxInflight.map { "max \($0)" } ?? "capacity discovered",
                        state: "configured")
                }
            return Pool(
                model: model.name, source: sources.isEmpty ? "registered only" : sources.joined(separator: " + "),
                routing: model.routing.policy.rawValue.replacingOccurrences(of: "_", with: " "), replicas: replicas,
                fallback: model.fallback)
        }
        telemetry = ["GET /metrics", "GET /healthz, /readyz", "GET /admin/backends, /admin/describe", "GET /openapi.json"]
    }

    // MARK: Mermaid

    /// `flowchart LR`, one node per listener, lane, replica and telemetry, a subgraph per pool;
    /// replicas are classed by state.
    package var mermaid: String {
        var out = ["flowchart LR"]
        func label(_ lines: [String]) -> String { "\"" + lines.map(Self.mermaidEscape).joined(separator: "<br/>") + "\"" }
        out.append("  listener[\(label(listener))]")
        out.append("  subgraph lanes [lanes]")
        for lane in lanes { out.append("    \(Self.id("lane", lane.name))[\(label([lane.name] + lane.policy))]") }
        out.append("  end")
        for lane in lanes { out.append("  listener --> \(Self.id("lane", lane.name))") }
        for pool in pools {
            let pid = Self.id("pool", pool.model)
            out.append("  subgraph \(pid) [\(label(["model \(pool.model)", pool.source, "routing: \(pool.routing)"]))]")
            if pool.replicas.isEmpty { out.append("    \(Self.id("none", pool.model))[\(label(["no replicas yet"]))]") }
            for r in pool.replicas {
                var lines = [r.id, r.url, r.detail, r.state]
                if let n = r.inflight { lines[3] += ", \(n) in flight" }
                out.append("    \(Self.id("replica", r.id))[\(label(lines))]:::\(Self.stateClass(r.state))")
            }
            out.append("  end")
            for lane in lanes { out.append("  \(Self.id("lane", lane.name)) --> \(pid)") }
        }
        for pool in pools {
            for (i, next) in pool.fallback.enumerated() {
                let from = i == 0 ? pool.model : pool.fallback[i - 1]
                out.append("  \(Self.id("pool", from)) -. \"fallback \(i + 1)\" .-> \(Self.id("pool", next))")
            }
        }
        out.append("  telemetry[\(label(telemetry))]")
        out.append("  listener -.- telemetry")
        for (name, style) in Self.styles { out.append("  classDef \(name) fill:\(style.fill),stroke:\(style.stroke)") }
        return out.joined(separator: "\n") + "\n"
    }

    static let styles: [(String, (fill: String, stroke: String))] = [
        ("configured", ("#eef2f7", "#5b6b80")), ("serving", ("#dcf5dc", "#2a7a2a")), ("closed", ("#fff3cd", "#a07800")),
        ("down", ("#fbdada", "#b02020")),
    ]

    static func stateClass(_ state: String) -> String {
        switch state {
        case "configured": "configured"
        case "serving": "serving"
        case "draining", "drained", "cooling": "closed"
        default: "down"
        }
    }

    static func id(_ kind: String, _ name: String) -> String {
        kind + "_" + String(name.unicodeScalars.map { ($0.properties.isAlphabetic || ("0"..."9").contains($0)) && $0.isASCII ? Character($0) : "_" })
    }

    static func mermaidEscape(_ text: String) -> String {
        text.replacingOccurrences(of: "\"", with: "#quot;").replacingOccurrences(of: "<", with: "#lt;").replacingOccurrences(of: ">", with: "#gt;")
    }

    // MARK: SVG and HTML

    /// Columns: listener and telemetry, lanes, pools with their replicas; edges as lines.
    package var svg: String {
        let lineHeight = 16.0, pad = 8.0, width = 250.0, gap = 70.0
        var shapes: [String] = []
        func box(_ x: Double, _ y: Double, _ lines: [String], fill: String, stroke: String, bold: Bool = false) -> Double {
            let h = Double(lines.count) * lineHeight + 2 * pad
            shapes.append(
                "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(width)\" height=\"\(h)\" rx=\"6\" fill=\"\(fill)\" stroke=\"\(stroke)\"/>")
            for (i, line) in lines.enumerated() {
                let weight = bold && i == 0 ? " font-weight=\"bold\"" : ""
                shapes.append(
                    "<text x=\"\(x + pad)\" y=\"\(y + pad + lineHeight * Double(i + 1) - 4)\"\(weight)>\(Self.xmlEscape(line))</text>")
            }
            return h
        }
        func edge(_ a: (Double, Double), _ b: (Double, Double), dashed: Bool = false, label: String? = nil) {
            shapes.append(
                "<line x1=\"\(a.0)\" y1=\"\(a.1)\" x2=\"\(b.0)\" y2=\"\(b.1)\" stroke=\"#7a8699\" marker-end=\"url(#arrow)\"\(dashed ? " stroke-dasharray=\"5 4\"" : "")/>"
            )
            if let label { shapes.append("<text x=\"\((a.0 + b.0) / 2 + 4)\" y=\"\((a.1 + b.1) / 2 - 4)\">\(Self.xmlEscape(label))</text>") }
        }
        let x0 = 20.0, x1 = x0 + width + gap, x2 = x1 + width + gap
        let style = Dictionary(Self.styles, uniquingKeysWith: { a, _ in a })
        let listenerHeight = box(x0, 20, listener, fill: "#ffffff", stroke: "#333333", bold: true)
        let listenerAnchor = (x0 + width, 20 + listenerHeight / 2)
        let telemetryY = 20 + listenerHeight + 40
        let telemetryHeight = box(x0, telemetryY, ["telemetry"] + telemetry, fill: "#f4f4f4", stroke: "#888888", bold: true)
        edge((x0 + width / 2, 20 + listenerHeight), (x0 + width / 2, telemetryY), dashed: true)
        var y = 20.0
        var laneAnchors: [(Double, Double)] = []
        for lane in lanes {
            let h = box(x1, y, [lane.name] + lane.policy, fill: "#eaf1fb", stroke: "#3d6fb6", bold: true)
            edge(listenerAnchor, (x1, y + h / 2))
            laneAnchors.append((x1 + width, y + h / 2))
            y += h + 16
        }
        var bottom = max(y, telemetryY + telemetryHeight)
        y = 20
        var poolAnchors: [String: (left: (Double, Double), right: (Double, Double))] = [:]
        for pool in pools {
            let top = y
            let head = box(x2, y, ["model \(pool.model)", pool.source, "routing: \(pool.routing)"], fill: "#ffffff", stroke: "#333333", bold: true)
            y += head + 6
            for r in pool.replicas {
                let s = style[Self.stateClass(r.state)] ?? ("#ffffff", "#333333")
                var lines = [r.id, r.url, r.detail, r.state]
                if let n = r.inflight { lines[3] += ", \(n) in flight" }
                y += box(x2 + 16, y, lines, fill: s.fill, stroke: s.stroke) + 6
            }
            for anchor in laneAnchors { edge(anchor, (x2, top + head / 2)) }
            poolAnchors[pool.model] = ((x2, top + head / 2), (x2 + width + 16, top + head / 2))
            y += 20
        }
        for pool in pools {
            for (i, next) in pool.fallback.enumerated() {
                let from = i == 0 ? pool.model : pool.fallback[i - 1]
                guard let a = poolAnchors[from]?.right, let b = poolAnchors[next]?.right else { continue }
                edge(a, (b.0 + 30, b.1), dashed: true, label: "fallback \(i + 1)")
            }
        }
        bottom = max(bottom, y) + 20
        let totalWidth = x2 + width + 120
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(totalWidth))" height="\(Int(bottom))" font-family="sans-serif" font-size="12">
            <defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#7a8699"/></marker></defs>
            \(shapes.joined(separator: "\n"))
            </svg>

            """
    }

    /// A page with the SVG and the Mermaid text (no script, no network).
    package func html(title: String) -> String {
        """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>\(Self.xmlEscape(title))</title>
        <style>body{font-family:sans-serif;margin:24px;color:#222}pre{background:#f6f8fa;padding:12px;overflow:auto}
        .legend span{display:inline-block;padding:2px 8px;margin-right:8px;border-radius:4px}</style></head>
        <body><h1>\(Self.xmlEscape(title))</h1>
        <p class="legend">\(Self.styles.map { "<span style=\"background:\($0.1.fill);border:1px solid \($0.1.stroke)\">\($0.0)</span>" }.joined())</p>
        \(svg)
        <h2>Mermaid</h2><pre>\(Self.xmlEscape(mermaid))</pre>
        </body></html>

        """
    }

    static func xmlEscape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}
