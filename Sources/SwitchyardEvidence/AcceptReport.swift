import SwitchyardCore

/// The verdict parts of an acceptance bundle: JSON, Markdown and HTML.
package enum AcceptReport {
    package static func json(_ result: AcceptRunner.Result) -> [(String, JSONValue)] {
        func num(_ v: Double?) -> JSONValue { v.map { .number(String(format: "%.3f", $0)) } ?? .null }
        let verdicts = JSONValue.array(
            result.verdicts.map { v in
                .object([
                    ("lane", .string(v.lane)), ("verdict", .string(v.outcome.rawValue)), ("reasons", .array(v.reasons.map(JSONValue.string))),
                    (
                        "recoveries",
                        .array(
                            v.recoveries.map { r in
                                .object([
                                    ("phase", .string(r.phase)), ("fault", .string(r.fault)), ("lifted_at_s", num(r.liftedAt)),
                                    ("recovery_s", num(r.seconds)), ("pre_fault_goodput", num(r.preFaultGoodput)),
                                    ("during_fault", .number(r.duringFault)), ("hurt", .number(r.hurt)), ("resent", .number(r.resent)),
                                    (
                                        "gateway",
                                        r.gateway.map {
                                            .object([
                                                ("retries", .number($0.retries)), ("fallbacks", .number($0.fallbacks)),
                                                ("ejections", .number($0.ejections)), ("upstream_errors", .number($0.upstreamErrors)),
                                            ])
                                        } ?? .null
                                    ),
                                ])
                            })
                    ),
                ])
            })
        let phases = JSONValue.array(
            result.phases.map { p in
                .object([
                    ("name", .string(p.name)), ("start_s", num(p.start)), ("end_s", num(p.end)),
                    ("fault", p.fault.map { .string($0.label) } ?? .null),
                    ("judged", .bool(p.judged)),
                ])
            })
        var fields: [(String, JSONValue)] = [("verdicts", verdicts), ("phases", phases)]
        if !result.chaosCounts.isEmpty {
            fields.append(("chaos_proxy", .object(result.chaosCounts.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) })))
        }
        return fields
    }

    package static func markdown(_ result: AcceptRunner.Result) -> String {
        var out = "## Verdicts\n\n"
        for v in result.verdicts {
            out += "- **\(v.lane): \(v.outcome.rawValue)**\n" + v.reasons.map { "  - \($0)\n" }.joined()
        }
        out +=
            "\nPhases: "
            + result.phases.map { p in
                String(format: "%@ %.0f–%.0f s%@%@", p.name, p.start, p.end, p.fault.map { " (\($0.label))" } ?? "", p.judged ? "" : " (not judged)")
            }.joined(separator: "; ") + ".\n\n"
        return out
    }

    package static func html(_ result: AcceptRunner.Result) -> String {
        var out = "<h2>Verdicts</h2>\n"
        for v in result.verdicts {
            let cls = v.outcome == .pass ? "pass" : (v.outcome == .fail ? "fail" : "warn")
            out += "<p><span class=\(cls)>\(HTMLReport.escape(v.lane)): \(v.outcome.rawValue)</span></p><ul>"
            out += v.reasons.map { "<li>\(HTMLReport.escape($0))</li>" }.joined() + "</ul>\n"
        }
        return out
    }
}
