import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardCLI

/// `switchyard plan` end to end through its commands: a profile from a datasheet and from a
/// bundle, a plan and a what-if sweep with their HTML pages, and errors that name the input.
@Suite struct PlanCommandTests {
    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func profilePlanAndWhatIfWriteTheirReports() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let profile = dir.appendingPathComponent("h200.json").path
        try PlanCommand.Profile.parse(["--gpu", "h200", "--params", "8", "--out", profile]).run()
        let json = try String(contentsOfFile: profile, encoding: .utf8)
        #expect(json.contains("\"tpot_base\"") && json.contains("datasheet: NVIDIA H200"))

        let demand = dir.appendingPathComponent("demand.yaml").path
        try """
        price_per_gpu_hour: 4
        duration: 20s
        lanes:
          realtime: { rate: 10, prompt_tokens: uniform:100:1000, output_tokens: 100, slo: { ttft: 500ms, tpot: 50ms }, attainment: 0.99 }
          batch: { rate: 3, prompt_tokens: 1000, output_tokens: 200 }
        """.write(toFile: demand, atomically: true, encoding: .utf8)
        let planHTML = dir.appendingPathComponent("plan.html").path
        try PlanCommand.Size.parse(["--profile", profile, "--demand", demand, "--format", "json", "--html", planHTML]).run()
        let page = try String(contentsOfFile: planHTML, encoding: .utf8)
        #expect(page.contains("<svg") && page.contains("cost per million output tokens") && page.contains("goodput per GPU-hour"))

        let whatIfHTML = dir.appendingPathComponent("whatif.html").path
        try PlanCommand.WhatIf.parse(["--profile", profile, "--demand", demand, "--sweep-replicas", "1:2", "--html", whatIfHTML]).run()
        let whatIf = try String(contentsOfFile: whatIfHTML, encoding: .utf8)
        #expect(whatIf.contains("SLO attainment against replicas") && whatIf.contains("Queue depth over time"))

        // A demand with a mistake is refused with the field named.
        try "lanes:\n  realtime: { rate: fast }\n".write(toFile: demand, atomically: true, encoding: .utf8)
        do {
            try PlanCommand.Size.parse(["--profile", profile, "--demand", demand]).run()
            Issue.record("a bad demand was accepted")
        } catch {
            #expect("\(error)".contains("lanes.realtime.rate"), "\(error)")
        }
    }

    @Test func aProfileIsFittedToABundlesRequests() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Requests of a known replica: TTFT 40 ms + 0.2 ms per prompt token, TPOT 10 ms + 4 ms per other request.
        var lines: [String] = []
        var t = 0.0
        for i in 0..<120 {
            let k = i % 3 + 1
            for j in 0..<k {
                let prompt = 50 + 40 * ((i + j) % 10)
                let ttft = 0.04 + 0.0002 * Double(prompt)
                let tpot = 0.01 + 0.004 * Double(k - 1)
                lines.append(
                    #"{"lane":"bench","ok":true,"warmup":false,"t_sched":\#(t),"t_send":\#(t),"t_first":\#(t + ttft),"t_last":\#(t + ttft + 19 * tpot),"prompt_tokens":\#(prompt),"n_out_server":20,"n_out_client":20}"#
                )
            }
            t += 1
        }
        try lines.joined(separator: "\n").write(toFile: dir.appendingPathComponent("requests.jsonl").path, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("fit.json").path
        try PlanCommand.Profile.parse(["--bundle", dir.path, "--slots", "3", "--out", out]).run()
        let fitted = try JSONParser.parse(try String(contentsOfFile: out, encoding: .utf8))
        let perToken = fitted["ttft_per_prompt_token"]?["value"]?.doubleValue ?? 0
        let perRequest = fitted["tpot_per_concurrent"]?["value"]?.doubleValue ?? 0
        #expect(abs(perToken - 0.0002) < 0.00002 && abs(perRequest - 0.004) < 0.0004, "\(fitted.serializedString)")
        #expect(fitted["ttft_base"]?["source"]?.stringValue?.contains("measured: \(dir.path)") == true)
        // --bundle without --slots is refused up front.
        #expect(throws: (any Error).self) { try PlanCommand.Profile.parse(["--bundle", dir.path]) }
    }
}
