import ArgumentParser
import Foundation
import SwitchyardCore
import SwitchyardEvidence
import SwitchyardPlan

/// `switchyard plan`: replica profiles from evidence or datasheets, capacity plans, what-if runs.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Capacity planning from measured evidence: replicas, cost and goodput per GPU-hour, what-if simulation.",
        subcommands: [Size.self, Profile.self, WhatIf.self], defaultSubcommand: Size.self)
}

/// What the plan commands share: the profile, the gateway's lane policy, the output.
struct PlanInputs: ParsableArguments {
    @Option(help: "Replica profile (JSON from `switchyard plan profile`).") var profile: String
    @Option(help: "Gateway config whose lanes and model policy the simulation runs (default: the built-in lanes).") var config: String?
    @Option(help: "Model of --config whose policy applies (default: its first).") var model: String?
    @Option(help: "Seed of arrivals, token counts and service times.") var seed: UInt64 = 1
    @Option(help: "table, markdown or json.") var format: String = "table"
    @Option(help: "Also write a self-contained HTML report here.") var html: String?
    @Option(name: .customLong("sweep-replicas"), help: "Try every replica count LO:HI (e.g. 2:12) and mark the cheapest that meets every target.")
    var sweepReplicas: String?

    func validate() throws {
        guard ["table", "markdown", "json"].contains(format) else {
            throw ValidationError("--format: expected table, markdown or json, got '\(format)'")
        }
        if let sweepReplicas, Self.range(sweepReplicas) == nil {
            throw ValidationError("--sweep-replicas: expected LO:HI with 1 ≤ LO ≤ HI ≤ 100000, got '\(sweepReplicas)'")
        }
    }

    static func range(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: ":").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 1, parts[0] <= parts[1], parts[1] <= 100_000 else { return nil }
        return parts[0]...parts[1]
    }

    func setup() throws -> SimulationSetup {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: profile))
        } catch {
            throw ValidationError("--profile: cannot read \(profile): \(error.localizedDescription)")
        }
        let replica: ReplicaProfile
        do {
            replica = try ReplicaProfile.decode(json: data, path: profile)
        } catch {
            throw ValidationError("\(error)")
        }
        var setup = SimulationSetup(profile: replica, replicas: 1)
        setup.seed = seed
        if let config {
            let gateway: GatewayConfig
            do {
                gateway = try ConfigCommand.load(config)
            } catch let error as ConfigError {
                throw ValidationError("--config \(config):\n" + error.issues.map { "  \($0)" }.joined(separator: "\n"))
            }
            setup.lanes = gateway.lanes
            let chosen = model.map { name in gateway.models.first { $0.name == name } } ?? gateway.models.first
            guard let chosen else {
                throw ValidationError(
                    "--model: no model '\(model ?? "")' in \(config); models: \(gateway.models.map(\.name).joined(separator: ", "))")
            }
            setup.model = chosen
            setup.totalTimeout = (chosen.timeouts ?? gateway.upstream.timeouts).total
        }
        return setup
    }

    static func demand(_ path: String) throws -> Demand {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ValidationError("--demand: cannot read \(path): \(error.localizedDescription)")
        }
        do {
            return try Demand.load(yaml: text)
        } catch {
            throw ValidationError("\(path):\n" + error.issues.map { "  \($0)" }.joined(separator: "\n"))
        }
    }

    func emit(text: String, markdown: String, json: JSONValue, html page: () -> String) throws {
        switch format {
        case "json": print(json.serializedString)
        case "markdown": print(markdown)
        default: print(text)
        }
        if let html {
            do {
                try page().write(toFile: html, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("--html: cannot write \(html): \(error.localizedDescription)")
            }
            FileHandle.standardError.write(Data("report: \(html)\n".utf8))
        }
    }
}

extension PlanCommand {
    struct Size: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "size", abstract: "Replicas and GPUs per pool that meet every lane's SLO target at the peak, with cost and goodput.")
        @OptionGroup var inputs: PlanInputs
        @Option(help: "demand.yaml: load per lane, SLOs, attainment targets, prices.") var demand: String

        func run() throws {
            let setup = try inputs.setup()
            let demand = try PlanInputs.demand(demand)
            let plan: Planner.Plan
            do {
                plan = try Planner(base: setup, demand: demand).plan(sweep: inputs.sweepReplicas.flatMap(PlanInputs.range))
            } catch {
                throw ValidationError("\(error)")
            }
            try inputs.emit(
                text: PlanReport.text(plan, markdown: false), markdown: PlanReport.text(plan, markdown: true), json: PlanReport.json(plan),
                html: { PlanHTML.plan(plan) })
            if plan.replicas == nil { throw ExitCode(2) }
        }
    }

    struct WhatIf: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "whatif",
            abstract:
                "Replay a load through the real lane scheduler and pool state machine on a virtual clock: SLO attainment, queues, shed, preempted.")
        @OptionGroup var inputs: PlanInputs
        @Option(help: "demand.yaml (arrivals per lane: poisson, constant, bursty, gamma:S; `daily` for a diurnal day).") var demand: String?
        @Option(help: "A recorded requests.jsonl (from a bench or accept bundle) to replay instead of --demand.") var trace: String?
        @Option(help: "Replicas in the pool (without --sweep-replicas).") var replicas: Int = 1
        @Option(help: "Simulated time of arrivals for --demand (default: the demand's duration; 24h for a whole diurnal day).") var duration: String?

        func validate() throws {
            guard (demand == nil) != (trace == nil) else { throw ValidationError("give exactly one of --demand or --trace") }
            guard replicas >= 1 else { throw ValidationError("--replicas must be at least 1") }
            if let duration, Duration.parse(duration) == nil { throw ValidationError("--duration: not a duration: '\(duration)'") }
        }

        func run() throws {
            var setup = try inputs.setup()
            var loads: [LaneLoad] = []
            var traceRequests: [TraceRequest] = []
            if let demand {
                let d = try PlanInputs.demand(demand)
                loads = d.loads
                setup.duration = duration.flatMap(Duration.parse) ?? d.duration
            } else if let trace {
                traceRequests = try Self.readTrace(trace)
            }
            let counts = inputs.sweepReplicas.flatMap(PlanInputs.range) ?? replicas...replicas
            var results: [SimulationResult] = []
            for n in counts {
                setup.replicas = n
                do {
                    results.append(loads.isEmpty ? try Simulator.run(setup, trace: traceRequests) : try Simulator.run(setup, loads: loads))
                } catch {
                    throw ValidationError("\(error)")
                }
            }
            let cheapest = results.first(where: \.meetsEveryTarget)?.replicas
            var text = "", markdown = ""
            if results.count > 1 {
                let rows = PlanReport.sweepRows(results, cheapest: cheapest)
                let header = PlanReport.sweepHeader
                text = PlanReport.table(header, rows) + "\n\n"
                markdown = "## Attainment against replicas\n\n" + PlanReport.markdownTable(header, rows) + "\n\n"
            }
            let shown = results.first { $0.replicas == cheapest } ?? results.last!
            text += PlanReport.whatIf(shown, markdown: false)
            markdown = "# What-if\n\n" + markdown + PlanReport.whatIf(shown, markdown: true)
            let json = JSONValue.object([
                ("cheapest_meeting_every_target", cheapest.map { .number($0) } ?? .null),
                ("runs", .array(results.map(PlanReport.resultJSON))),
            ])
            try inputs.emit(text: text, markdown: markdown, json: json, html: { PlanHTML.whatIf(results, cheapest: cheapest) })
        }

        /// A bundle's requests.jsonl as arrivals (warmup left out): scheduled time, lane, tokens.
        static func readTrace(_ path: String) throws -> [TraceRequest] {
            let file = FileManager.default.fileExists(atPath: path + "/requests.jsonl") ? path + "/requests.jsonl" : path
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("--trace: cannot read \(file)") }
            var out: [TraceRequest] = []
            for (i, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
                guard let v = try? JSONParser.parse(String(line)), let at = v["t_sched"]?.doubleValue, let lane = v["lane"]?.stringValue else {
                    throw ValidationError("--trace: \(file) line \(i + 1): not a request record (needs t_sched and lane)")
                }
                if v["warmup"]?.boolValue == true { continue }
                let output = v["n_out_server"]?.intValue ?? v["n_out_client"]?.intValue ?? 1
                out.append(TraceRequest(at: at, lane: lane, prompt: v["prompt_tokens"]?.intValue ?? 1, output: max(1, output)))
            }
            guard !out.isEmpty else { throw ValidationError("--trace: \(file) has no requests") }
            let start = out.map(\.at).min() ?? 0
            return out.map {
                var r = $0
                r.at -= start
                return r
            }
        }
    }

    struct Profile: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "profile",
            abstract: "Make a replica profile: fitted to bench bundles (--bundle) or estimated for a GPU from first principles (--gpu).")
        @Option(parsing: .singleValue, help: "A bench bundle folder (repeatable): streamed requests with token counts.") var bundle: [String] = []
        @Option(help: "Requests a replica runs at once (llama.cpp total_slots, vLLM max_num_seqs); needed with --bundle.") var slots: Int?
        @Option(help: "GPU for a first-principles estimate: \(GPUSpec.catalog.keys.sorted().joined(separator: ", ")).") var gpu: String?
        @Option(help: "Model parameters in billions (with --gpu).") var params: Double?
        @Option(help: "Weights dtype (with --gpu): bf16, fp16, fp8, int8, int4.") var dtype: String = "bf16"
        @Option(help: "Tensor-parallel size: GPUs per replica (with --gpu).") var tp: Int = 1
        @Option(help: "Prompt + output tokens a sequence holds (with --gpu).") var context: Int = 2048
        @Option(name: .customLong("kv-bytes-per-token"), help: "KV-cache bytes per token, 2·layers·KV heads·head dim·bytes (with --gpu).")
        var kvBytesPerToken: Double?
        @Option(help: "Name of the profile.") var name: String?
        @Option(help: "GPUs one measured replica takes (0: CPU) and what it is priced as, e.g. 1:h100.") var accelerator: String = "0:cpu"
        @Option(help: "Write the profile JSON here (else stdout).") var out: String?

        func validate() throws {
            guard bundle.isEmpty != (gpu == nil) else { throw ValidationError("give --bundle (measured) or --gpu (estimated), not both") }
            if !bundle.isEmpty, slots == nil {
                throw ValidationError("--bundle needs --slots (the engine's concurrent requests, e.g. llama.cpp /props total_slots)")
            }
            if gpu != nil, params == nil { throw ValidationError("--gpu needs --params (billions of parameters)") }
        }

        func run() throws {
            let profile: ReplicaProfile
            do {
                if let gpu, let params {
                    var e = GPUEstimate(gpu: gpu, paramsB: params)
                    e.dtype = dtype
                    e.tensorParallel = tp
                    e.contextTokens = context
                    e.kvBytesPerToken = kvBytesPerToken
                    profile = try e.profile()
                } else {
                    var observations: [ProfileFit.Observation] = []
                    for (run, b) in bundle.enumerated() { observations += try Self.observations(b, run: run) }
                    let parts = accelerator.split(separator: ":")
                    profile = try ProfileFit.fit(
                        observations, slots: slots ?? 1,
                        name: name ?? bundle.map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: "+"),
                        source: bundle.joined(separator: ", "), accelerator: parts.count == 2 ? String(parts[1]) : "cpu",
                        gpusPerReplica: parts.first.flatMap { Int($0) } ?? 0)
                }
            } catch let error as PlanError {
                throw ValidationError(error.description)
            }
            var named = profile
            if let name { named.name = name }
            let data = named.encoded()
            if let out {
                do {
                    try data.write(to: URL(fileURLWithPath: out))
                } catch {
                    throw ValidationError("--out: cannot write \(out): \(error.localizedDescription)")
                }
            } else {
                print(String(decoding: data, as: UTF8.self))
            }
            FileHandle.standardError.write(
                Data(
                    (PlanReport.table(["", "value", "source"], PlanReport.profileRows(named)) + "\n" + named.notes.map { "  \($0)\n" }.joined()).utf8)
            )
        }

        /// Successful streamed requests of a bundle (warmup left out), times from its start.
        static func observations(_ folder: String, run: Int) throws -> [ProfileFit.Observation] {
            let file = folder + "/requests.jsonl"
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw PlanError("--bundle: cannot read \(file)") }
            var out: [ProfileFit.Observation] = []
            for line in text.split(separator: "\n") {
                guard let v = try? JSONParser.parse(String(line)), v["ok"]?.boolValue == true, v["warmup"]?.boolValue != true,
                    let send = v["t_send"]?.doubleValue, let first = v["t_first"]?.doubleValue, let last = v["t_last"]?.doubleValue,
                    let prompt = v["prompt_tokens"]?.intValue, let output = v["n_out_server"]?.intValue ?? v["n_out_client"]?.intValue
                else { continue }
                out.append(.init(send: send, first: first, last: last, prompt: prompt, output: output, run: run))
            }
            return out
        }
    }
}

/// The plan and what-if pages: the evidence reports' look, charts of attainment against replicas
/// and of queue depth over time.
enum PlanHTML {
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        "<table><tr>" + header.map { "<th>\(HTMLReport.escape($0))</th>" }.joined() + "</tr>\n"
            + rows.map { "<tr>" + $0.map { "<td>\(HTMLReport.escape($0))</td>" }.joined() + "</tr>\n" }.joined() + "</table>\n"
    }

    static func color(_ i: Int) -> String { ChartLayout.laneColors[i % ChartLayout.laneColors.count] }

    static func queueChart(_ r: SimulationResult) -> String {
        HTMLReport.chart(
            title: "Queue depth over time (\(r.replicas) replicas)", xLabel: "s", yLabel: "requests waiting",
            series: r.lanes.enumerated().map { i, l in (l.lane, color(i), Array(zip(r.sampleTimes, l.queueDepth.map(Double.init)))) },
            // Whole requests: an empty queue still gets an axis up to one.
            yMax: Double(max(1, r.lanes.flatMap(\.queueDepth).max() ?? 0)))
    }

    static func attainmentChart(_ results: [SimulationResult]) -> String {
        guard results.count > 1, let lanes = results.first?.lanes.map(\.lane) else { return "" }
        return HTMLReport.chart(
            title: "SLO attainment against replicas", xLabel: "replicas", yLabel: "% met",
            series: lanes.enumerated().map { i, lane in
                (lane, color(i), results.map { r in (Double(r.replicas), (r.lanes.first { $0.lane == lane }?.attainment ?? 0) * 100) })
            }, yMax: 100, dots: true)
    }

    static func plan(_ plan: Planner.Plan) -> String {
        var body = "<h1>Capacity plan: \(HTMLReport.escape(plan.profile.name))</h1>\n"
        body += table(["", ""], PlanReport.summary(plan).map { [$0.0, $0.1] })
        if let peak = plan.peak {
            body += "<h2>Lanes at the peak</h2>\n" + table(PlanReport.laneHeader, PlanReport.laneRows(peak))
            body += "<div class=row>" + queueChart(peak) + attainmentChart(plan.points.map(\.result)) + "</div>\n"
        }
        body += "<h2>Replicas tried</h2>\n" + table(PlanReport.sweepHeader, PlanReport.sweepRows(plan.points.map(\.result), cheapest: plan.replicas))
        body += "<h2>Replica profile</h2>\n" + table(["", "value", "source"], PlanReport.profileRows(plan.profile))
        body += "<ul>" + plan.profile.notes.map { "<li>\(HTMLReport.escape($0))</li>" }.joined() + "</ul>\n"
        return HTMLReport.page(title: "Switchyard capacity plan", body: body)
    }

    static func whatIf(_ results: [SimulationResult], cheapest: Int?) -> String {
        let shown = results.first { $0.replicas == cheapest } ?? results.last!
        var body = "<h1>What-if</h1>\n<p class=meta>"
        body += String(format: "%d replicas × %d slots, %.0f s simulated, %d events", shown.replicas, shown.slotsPerReplica, shown.span, shown.events)
        body += "</p>\n" + table(PlanReport.laneHeader, PlanReport.laneRows(shown))
        if results.count > 1 {
            body +=
                cheapest.map { "<p class=pass>Cheapest count meeting every lane's target: \($0) replicas.</p>\n" }
                ?? "<p class=fail>No count tried meets every lane's target.</p>\n"
        }
        body += "<div class=row>" + queueChart(shown) + attainmentChart(results) + "</div>\n"
        return HTMLReport.page(title: "Switchyard what-if", body: body)
    }
}
