import ArgumentParser
import Foundation
import SwitchyardCore
import SwitchyardEvidence

/// `switchyard accept SPEC.yaml`: lanes at once, phases with faults, PASS/FAIL per lane.
struct AcceptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accept",
        abstract:
            "Run an acceptance spec: lanes with their load and SLOs through phases and faults; PASS/FAIL/VOID per lane, recovery times, evidence bundle.",
        discussion: "Exit status: 0 when every lane passed, 2 when one failed, 3 when one is void (the run itself was not valid)."
    )

    @Argument(help: "The acceptance spec (YAML).") var spec: String
    @Option(help: "Write the evidence bundle to this folder.") var out: String?
    @Option(
        name: .customLong("gpu-hour-price"),
        help: "Price of one GPU-hour: each lane's verdict gains its cost per 1,000 requests and per million output tokens.")
    var gpuHourPrice: Double?
    @Option(help: "GPUs behind the target (with --gpu-hour-price).") var gpus: Double = 1

    func validate() throws {
        if let gpuHourPrice, !(gpuHourPrice > 0) { throw ValidationError("--gpu-hour-price must be above 0") }
        guard gpus > 0 else { throw ValidationError("--gpus must be above 0") }
    }

    func run() async throws {
        guard let text = try? String(contentsOfFile: spec, encoding: .utf8) else { throw ValidationError("cannot read '\(spec)'") }
        let parsed: AcceptSpec
        do {
            parsed = try AcceptSpec.load(yaml: text)
        } catch {
            FileHandle.standardError.write(Data("\(spec): \(error)\n".utf8))
            throw ExitCode(1)
        }
        let total = parsed.totalDuration
        FileHandle.standardError.write(
            Data("accept: \(parsed.lanes.count) lane(s), \(parsed.phases.count) phase(s), \(total.formatted) against \(parsed.target.url)\n".utf8))
        let started = Date()
        let runner = AcceptRunner(spec: parsed) { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        var result: AcceptRunner.Result
        do {
            result = try await runner.run()
        } catch {
            throw ValidationError("\(error)")
        }
        if let price = gpuHourPrice {
            // The run's span: from the first request scheduled to the last byte.
            let span = (result.records.compactMap(\.tLast).max() ?? .zero) - (result.records.map(\.tSched).min() ?? .zero)
            let costs = AcceptCost.compute(records: result.records, gpus: gpus, pricePerGPUHour: price, runSeconds: span.seconds)
            for i in result.verdicts.indices {
                if let cost = costs.first(where: { $0.lane == result.verdicts[i].lane }) {
                    result.verdicts[i].reasons.append(cost.line(gpus: gpus, pricePerGPUHour: price))
                }
            }
        }
        for v in result.verdicts {
            print("\(v.lane): \(v.outcome.rawValue)")
            for reason in v.reasons { print("  - \(reason)") }
        }
        if let out {
            let manifest = Manifest.thisRun(specHash: parsed.sha256, startedAt: started)
            try EvidenceBundle.write(
                to: out, manifest: manifest, records: result.records, summaries: result.verdicts.map(\.summary),
                extra: AcceptReport.json(result), markers: result.markers, sampled: result.sampled,
                markdownPreamble: AcceptReport.markdown(result), htmlPreamble: AcceptReport.html(result))
            print("evidence bundle: \(out)")
        }
        if result.verdicts.contains(where: { $0.outcome == .void }) { throw ExitCode(3) }
        if result.verdicts.contains(where: { $0.outcome == .fail }) { throw ExitCode(2) }
    }
}
