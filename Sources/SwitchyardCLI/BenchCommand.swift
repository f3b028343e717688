import ArgumentParser
import Foundation
import NIOCore
import SwitchyardCore
import SwitchyardEvidence

/// `switchyard bench`: load against any OpenAI-compatible URL, measured per reference/metrics.md,
/// with an evidence bundle when `--out` is given.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load test an OpenAI-compatible server: open-loop rate or closed-loop concurrency, streamed TTFT/TPOT/ITL, evidence bundle.",
        subcommands: [Run.self, Compare.self],
        defaultSubcommand: Run.self
    )

    /// `switchyard bench compare A B`.
    struct Compare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Compare two evidence bundles metric by metric (B against A).")
        @Argument(help: "The baseline bundle folder.") var a: String
        @Argument(help: "The bundle to compare with it.") var b: String

        func run() async throws {
            do {
                print(try BundleCompare.compare(a, b))
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}

extension BenchCommand {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run", abstract: "Run a load (the default: `switchyard bench --url … --model …`).")

        @Option(help: "The server's OpenAI base URL, e.g. http://127.0.0.1:8080/v1.") var url: String
        @Option(help: "Model name to send.") var model: String
        @Option(help: "chat (/chat/completions) or completions (/completions).") var api: String = "chat"
        @Option(help: "Open loop: requests per second, sent on a precomputed schedule.") var rate: Double?
        @Option(help: "Arrival process for --rate: constant, poisson or gamma.") var arrival: String = "poisson"
        @Option(help: "Gamma shape for --arrival gamma: < 1 burstier than Poisson, > 1 more regular.") var burstiness: Double = 1
        @Option(help: "Closed loop: number of concurrent clients.") var concurrency: Int?
        @Option(help: "Stop scheduling after this long (e.g. 60s, 2m).") var duration: String?
        @Option(help: "Send at most this many requests.") var requests: Int?
        @Option(help: "Leave requests scheduled in the first part of the run out of the statistics.") var warmup: String = "0s"
        @Option(
            name: .customLong("drain-timeout"),
            help: "After the load, how long requests still in flight may take; then they are recorded as incomplete (SLO misses). 0: wait for all."
        )
        var drainTimeout: String = "30s"
        @Option(help: "Seed of the schedule and the synthetic prompts.") var seed: UInt64 = 1
        @Option(name: .customLong("input-tokens"), help: "Prompt length: N, fixed:N, uniform:LO:HI or normal:MEAN:SD (about one word per token).")
        var inputTokens: String = "128"
        @Option(name: .customLong("output-tokens"), help: "max_tokens per request, same forms as --input-tokens.") var outputTokens: String = "64"
        @Option(name: .customLong("shared-prefix"), help: "Leading prompt tokens every request shares.") var sharedPrefix: Int = 0
        @Option(help: "JSON lines with prompts: {\"prompt\"}, {\"messages\"} or ShareGPT {\"conversations\"}.") var dataset: String?
        @Flag(inversion: .prefixedNo, help: "Stream the answers (needed for TTFT, TPOT and ITL).") var stream: Bool = true
        @Flag(name: .customLong("ignore-eos"), help: "Ask the server to generate exactly max_tokens (vLLM, llama.cpp).") var ignoreEOS = false
        @Option(help: "Send x-switchyard-lane with this lane.") var lane: String?
        @Option(name: .customLong("api-key"), help: "Bearer key (else $OPENAI_API_KEY when set).") var apiKey: String?
        @Option(help: "Per-request SLO for goodput, e.g. ttft=500ms,tpot=50ms,e2e=10s,max_stall=2s (TTFT and E2E from the schedule).") var slo:
            String?
        @Option(help: "Write the evidence bundle to this folder.") var out: String?
        @Option(help: "Event-loop threads of the client (default: the cores; fewer leaves room for a server on the same host).") var threads: Int?
        @Flag(help: "Find the highest --rate (the upper bound) that meets --slo at --attainment, bisecting from --sweep-min.") var sweep = false
        @Option(name: .customLong("sweep-min"), help: "Lowest rate tried by --sweep (default: --rate / 10).") var sweepMin: Double?
        @Option(name: .customLong("sweep-steps"), help: "Probes after the two bounds.") var sweepSteps: Int = 4
        @Option(help: "Share of requests that must meet every --slo for a --sweep probe to pass.") var attainment: Double = 0.9

        func validate() throws {
            guard (rate == nil) != (concurrency == nil) else {
                throw ValidationError("give exactly one of --rate R (open loop) or --concurrency C (closed loop)")
            }
            if let rate, rate <= 0 { throw ValidationError("--rate must be positive, got \(rate)") }
            if let concurrency, concurrency < 1 { throw ValidationError("--concurrency must be at least 1, got \(concurrency)") }
            guard duration != nil || requests != nil else { throw ValidationError("give --duration and/or --requests: every run is bounded") }
            if let duration, Duration.parse(duration) == nil { throw ValidationError("--duration: not a duration: '\(duration)' (e.g. 30s, 2m)") }
            if Duration.parse(warmup) == nil { throw ValidationError("--warmup: not a duration: '\(warmup)'") }
            if Duration.parse(drainTimeout) == nil {
                throw ValidationError("--drain-timeout: not a duration: '\(drainTimeout)' (e.g. 30s, 0 to wait for all)")
            }
            if TokenDistribution.parse(inputTokens) == nil {
                throw ValidationError("--input-tokens: expected N, fixed:N, uniform:LO:HI or normal:MEAN:SD, got '\(inputTokens)'")
            }
            if TokenDistribution.parse(outputTokens) == nil {
                throw ValidationError("--output-tokens: expected N, fixed:N, uniform:LO:HI or normal:MEAN:SD, got '\(outputTokens)'")
            }
            if BenchOptions.API(rawValue: api) == nil { throw ValidationError("--api: expected chat or completions, got '\(api)'") }
            if !["constant", "poisson", "gamma"].contains(arrival) {
                throw ValidationError("--arrival: expected constant, poisson or gamma, got '\(arrival)'")
            }
            if burstiness <= 0 { throw ValidationError("--burstiness must be positive") }
            if HTTPURL(url) == nil { throw ValidationError("--url: not a valid http(s) URL: '\(url)'") }
            if let slo { _ = try Self.parseSLO(slo) }
            if sweep {
                guard rate != nil else { throw ValidationError("--sweep needs --rate (the highest rate to try)") }
                guard slo != nil else { throw ValidationError("--sweep needs --slo: it looks for the highest rate that meets it") }
                guard duration != nil else { throw ValidationError("--sweep needs --duration (the length of each probe)") }
                if !(0...1).contains(attainment) || attainment == 0 { throw ValidationError("--attainment must be in (0, 1]") }
                if let sweepMin, let rate, sweepMin <= 0 || sweepMin >= rate {
                    throw ValidationError("--sweep-min must be positive and below --rate")
                }
            }
        }

        static func parseSLO(_ text: String) throws -> RequestSLO {
            var slo = RequestSLO()
            for part in text.split(separator: ",") {
                let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard kv.count == 2, let d = Duration.parse(kv[1]) else { throw ValidationError("--slo: expected NAME=DURATION, got '\(part)'") }
                switch kv[0] {
                case "ttft": slo.ttft = d.seconds
                case "tpot": slo.tpot = d.seconds
                case "e2e": slo.e2e = d.seconds
                case "max_stall": slo.maxStall = d.seconds
                default: throw ValidationError("--slo: unknown SLO '\(kv[0])' (ttft, tpot, e2e, max_stall)")
                }
            }
            return slo
        }

        func makeOptions() throws -> BenchOptions {
            let load: BenchOptions.Load
            if let rate {
                let process: ArrivalProcess = arrival == "constant" ? .constant : arrival == "gamma" ? .gamma(burstiness: burstiness) : .poisson
                load = .rate(rate, process)
            } else {
                load = .concurrency(concurrency ?? 1)
            }
            var options = BenchOptions(baseURL: url, model: model, load: load)
            options.api = BenchOptions.API(rawValue: api) ?? .chat
            options.duration = duration.flatMap(Duration.parse)
            options.requests = requests
            options.warmup = Duration.parse(warmup) ?? .zero
            options.drainTimeout = Duration.parse(drainTimeout).flatMap { $0 > .zero ? $0 : nil }
            options.seed = seed
            options.workload.inputTokens = TokenDistribution.parse(inputTokens)!
            options.workload.outputTokens = TokenDistribution.parse(outputTokens)!
            options.workload.sharedPrefix = sharedPrefix
            options.workload.ignoreEOS = ignoreEOS
            if let dataset {
                guard let text = try? String(contentsOfFile: dataset, encoding: .utf8) else {
                    throw ValidationError("--dataset: cannot read '\(dataset)'")
                }
                do {
                    options.workload.prompts = try Workload.loadDataset(text)
                } catch {
                    throw ValidationError("--dataset \(dataset): \(error)")
                }
            }
            options.stream = stream
            options.lane = lane
            options.apiKey = apiKey ?? ProcessInfo.processInfo.environment["OPENAI_API_KEY"]
            return options
        }

        func run() async throws {
            if sweep { return try await runSweep() }
            let options = try makeOptions()
            let slo = try slo.map(Self.parseSLO) ?? RequestSLO()
            let runner = LoadRunner(options: options, threads: threads ?? System.coreCount)
            let started = Date()
            let records = try await withThrowingTaskGroup(of: [RequestRecord]?.self) { group in
                group.addTask {
                    do {
                        return try await runner.run()
                    } catch {
                        throw ValidationError("\(error)")
                    }
                }
                group.addTask {
                    await Self.reportProgress(runner)
                    return nil
                }
                var result: [RequestRecord] = []
                while let value = try await group.next() {
                    if let value {
                        result = value
                        group.cancelAll()
                    }
                }
                return result
            }
            var offered: Double?
            if case .rate(let r, _) = options.load { offered = r }
            let summary = LaneSummary.compute(
                lane: options.laneLabel, records: records, offeredRate: offered, slo: slo,
                minimumWindow: options.duration.map { ($0 - options.warmup).seconds })
            print(Self.table(summary))
            if let out {
                let manifest = Manifest.thisRun(specHash: nil, startedAt: started)
                do {
                    try EvidenceBundle.write(to: out, manifest: manifest, records: records, summaries: [summary])
                    print("evidence bundle: \(out) (manifest.json, requests.jsonl, summary.json, report.md)")
                } catch {
                    throw ValidationError("could not write the evidence bundle to \(out): \(error)")
                }
            }
            if !summary.invalid.isEmpty {
                FileHandle.standardError.write(Data(("not valid for a verdict:\n" + summary.invalid.map { "  - \($0)\n" }.joined()).utf8))
            }
        }

        /// One probe at `rate`: its records and summary.
        func probe(_ options: BenchOptions, rate: Double, slo: RequestSLO) async throws -> ([RequestRecord], LaneSummary) {
            var options = options
            if case .rate(_, let process) = options.load { options.load = .rate(rate, process) }
            // Other prompts at every rate: an engine's prompt cache (llama.cpp, vLLM's prefix
            // caching) would otherwise answer the later probes' prompts from memory.
            options.seed = options.seed &+ UInt64(rate.bitPattern % 1_000_003) &* 7919
            let records: [RequestRecord]
            do {
                records = try await LoadRunner(options: options, threads: threads ?? System.coreCount).run()
            } catch {
                throw ValidationError("\(error)")
            }
            return (
                records,
                LaneSummary.compute(
                    lane: options.laneLabel, records: records, offeredRate: rate, slo: slo,
                    minimumWindow: options.duration.map { ($0 - options.warmup).seconds })
            )
        }

        /// Bisects between --sweep-min and --rate for the highest rate whose probe is valid and
        /// meets the SLOs at the attainment target (DistServe's goodput definition).
        func runSweep() async throws {
            let options = try makeOptions()
            let slo = try Self.parseSLO(slo ?? "")
            let high = rate ?? 1
            var low = sweepMin ?? high / 10
            var best: (rate: Double, records: [RequestRecord], summary: LaneSummary)?
            var probes: [(Double, LaneSummary)] = []
            func passes(_ s: LaneSummary) -> Bool { s.invalid.isEmpty && (s.attainment ?? 0) >= attainment }
            func report(_ r: Double, _ s: LaneSummary) {
                print(
                    String(
                        format: "probe %8.2f req/s: attainment %5.1f%%, goodput %.2f req/s, TTFT p99 %@%@ → %@", r, (s.attainment ?? 0) * 100,
                        s.goodput ?? 0,
                        s.metric("ttft_sched").map { String(format: "%.0f ms", $0.p99 * 1000) } ?? "-",
                        s.invalid.isEmpty ? "" : " (not valid: \(s.invalid.joined(separator: "; ")))", passes(s) ? "meets" : "misses"))
            }
            let (topRecords, top) = try await probe(options, rate: high, slo: slo)
            probes.append((high, top))
            report(high, top)
            var upper = high
            if passes(top) {
                best = (high, topRecords, top)
            } else {
                let (lowRecords, bottom) = try await probe(options, rate: low, slo: slo)
                probes.append((low, bottom))
                report(low, bottom)
                if passes(bottom) {
                    best = (low, lowRecords, bottom)
                    for _ in 0..<max(0, sweepSteps) {
                        let mid = (low + upper) / 2
                        let (records, s) = try await probe(options, rate: mid, slo: slo)
                        probes.append((mid, s))
                        report(mid, s)
                        if passes(s) {
                            low = mid
                            best = (mid, records, s)
                        } else {
                            upper = mid
                        }
                    }
                }
            }
            if let best {
                print(
                    String(
                        format: "highest rate meeting the SLOs at %.0f%% attainment: %.2f req/s (goodput %.2f req/s)%@", attainment * 100, best.rate,
                        best.summary.goodput ?? 0, best.rate == high ? "; the upper bound itself passed, try a higher --rate" : ""))
            } else {
                print(String(format: "no probed rate met the SLOs at %.0f%% attainment (lowest tried %.2f req/s)", attainment * 100, low))
            }
            if let out, let best {
                let manifest = Manifest.thisRun(specHash: nil)
                let sweepJSON = JSONValue.array(
                    probes.map { r, s in
                        .object([
                            ("rate", .number(String(format: "%.4f", r))),
                            ("attainment", s.attainment.map { .number(String(format: "%.4f", $0)) } ?? .null),
                            ("goodput", s.goodput.map { .number(String(format: "%.4f", $0)) } ?? .null), ("valid", .bool(s.invalid.isEmpty)),
                            ("meets", .bool(passes(s))),
                        ])
                    })
                try EvidenceBundle.write(
                    to: out, manifest: manifest, records: best.records, summaries: [best.summary],
                    extra: [("sweep", sweepJSON), ("best_rate", .number(String(format: "%.4f", best.rate)))])
                print("evidence bundle (the best probe): \(out)")
            }
        }

        /// In place on a terminal (every 0.5 s), a line every 10 s otherwise (logs, CI).
        static func reportProgress(_ runner: LoadRunner) async {
            let tty = isatty(STDERR_FILENO) == 1
            let interval: Duration = tty ? .milliseconds(500) : .seconds(10)
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                let line = runner.progress().line
                FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + line : line + "\n").utf8))
            }
            if tty { FileHandle.standardError.write(Data("\n".utf8)) }
        }

        static func table(_ s: LaneSummary) -> String {
            var lines: [String] = []
            var head = String(
                format: "lane %@: %d requests, %d ok, %d failed in %.1f s; %.2f req/s, %.1f output tok/s", s.lane, s.scheduled, s.succeeded,
                s.failed, s.window, s.requestThroughput, s.outputTokenThroughput)
            if let offered = s.offeredRate { head += String(format: " (offered %.2f, sent %.2f req/s)", offered, s.sendRate) }
            if let g = s.goodput, let a = s.attainment { head += String(format: "; goodput %.2f req/s, attainment %.1f%%", g, a * 100) }
            if s.resent > 0 { head += "; \(s.resent) resent after a reused connection was lost" }
            lines.append(head)
            lines.append(
                "  "
                    + ["metric", "n", "mean", "p50", "p90", "p99", "p99.9", "max"].map { $0.padding(toLength: 12, withPad: " ", startingAt: 0) }
                    .joined())
            for (name, m) in s.metrics {
                let cells = [m.mean, m.p50, m.p90, m.p99, m.p999, m.max].map { String(format: "%.1fms", $0 * 1000) }
                lines.append("  " + ([name, String(m.n)] + cells).map { $0.padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
            }
            for e in s.errors { lines.append("  error ×\(e.count): \(e.message)") }
            return lines.joined(separator: "\n")
        }
    }
}

extension Manifest {
    /// The manifest of this invocation: its command line, version and git commit; `specHash`
    /// defaults to the hash of the command line (a bench run's whole specification).
    static func thisRun(specHash: String?, startedAt: Date = Date()) -> Manifest {
        let command = ["switchyard"] + CommandLine.arguments.dropFirst()
        return Manifest(
            version: SwitchyardVersion.current, command: command, gitCommit: Manifest.gitCommit(),
            specHash: specHash ?? Digest.sha256Hex(command.joined(separator: " ")), startedAt: startedAt)
    }
}
