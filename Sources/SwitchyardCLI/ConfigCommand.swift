import ArgumentParser
import Foundation
import SwitchyardCore

/// `switchyard config check FILE`: validate and print the effective configuration.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with configuration files.",
        subcommands: [Check.self, Diff.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration and print the effective settings; exits 1 on any invalid field."
        )

        @Argument(help: "YAML configuration file.")
        var file: String

        func run() async throws {
            print(EffectiveConfig.render(try ConfigCommand.loadOrExit(file)))
        }
    }

    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say what changes from one configuration to another, per lane and model, and what needs a restart.",
            discussion: """
                Exits 0 when the new configuration can be applied to a running gateway (SIGHUP, a
                ConfigMap update, POST /admin/config), 1 when a file is invalid, 3 when a change
                needs a restart.
                """
        )

        @Argument(help: "The configuration in force.")
        var old: String

        @Argument(help: "The new configuration.")
        var new: String

        func run() async throws {
            let configs = try [old, new].map(ConfigCommand.loadOrExit)
            let diff = ConfigDiff(from: configs[0], to: configs[1])
            print(ConfigCommand.describe(diff))
            if !diff.restartIssues.isEmpty { throw ExitCode(3) }
        }
    }

    /// The changes grouped by what they are about, restart-only ones marked.
    static func describe(_ diff: ConfigDiff) -> String {
        guard !diff.isEmpty else { return "no changes" }
        var scopes: [String] = []
        var lines: [String: [String]] = [:]
        for change in diff.changes {
            if lines[change.scope] == nil { scopes.append(change.scope) }
            lines[change.scope, default: []].append("  - \(change.text)\(change.needsRestart ? "  [needs a restart]" : "")")
        }
        var out = scopes.flatMap { ["\($0):"] + lines[$0]! }
        let restart = diff.changes.filter(\.needsRestart).count
        out.append(
            restart == 0
                ? "\(diff.changes.count) change\(diff.changes.count == 1 ? "" : "s"), all applied live on reload"
                : "\(diff.changes.count) changes; \(restart) need\(restart == 1 ? "s" : "") a restart: a live reload refuses this configuration")
        return out.joined(separator: "\n")
    }

    static func load(_ path: String) throws -> GatewayConfig {
        try ConfigLoader.load(yaml: read(path))
    }

    /// ``load(_:)``; an invalid file is reported on stderr with every field named, and exits 1.
    static func loadOrExit(_ path: String) throws -> GatewayConfig {
        do {
            return try load(path)
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data("\(path): \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    static func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read configuration file '\(path)'")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("configuration file '\(path)' is not UTF-8")
        }
        return text
    }
}

/// The human-readable effective configuration printed by `config check`.
package enum EffectiveConfig {
    package static func render(_ c: GatewayConfig) -> String {
        var lines: [String] = []
        lines.append("configuration OK")
        lines.append(
            "server: listen \(c.server.host):\(c.server.port), max body \(c.server.maxBodyBytes) bytes, drain delay \(c.server.drainDelay.formatted), shutdown grace \(c.server.shutdownGrace.formatted), fast path \(c.server.fastPath ? "on" : "off")"
        )
        let t = c.upstream.timeouts
        lines.append(
            "upstream: connect timeout \(c.upstream.connectTimeout.formatted), first byte \(t.firstByte.formatted), idle \(t.idle.formatted), total \(t.total.formatted), max connections/backend \(c.upstream.maxConnectionsPerBackend), idle connections closed after \(c.upstream.idleConnectionTimeout.formatted)"
        )
        lines.append(
            c.health.enabled
                ? "health: GET \(c.health.path) every \(c.health.interval.formatted) (timeout \(c.health.timeout.formatted)), healthy after \(c.health.healthyThreshold), unhealthy after \(c.health.unhealthyThreshold)"
                : "health: active checks disabled (backends are assumed healthy)")
        lines.append(
            "outlier ejection: after \(c.outlier.consecutiveFailures) consecutive failures, for \(c.outlier.baseEjection.formatted) doubling up to \(c.outlier.maxEjection.formatted); one probe request re-admits"
        )
        lines.append(
            "retry: at most \(c.retry.maxAttempts) attempts per pool, budget \(Int(c.retry.budgetRatio * 100))% of requests per \(c.retry.budgetWindow.formatted) (min \(c.retry.minRetriesPerWindow)), honour Retry-After up to \(c.retry.maxRetryAfter.formatted); only before the first byte, only connection failures and 429/503"
        )
        lines.append(
            c.tenants.isEmpty
                ? "tenants: none (no API keys required; one anonymous tenant)"
                : "tenants: " + c.tenants.map { "\($0.name) (weight \(trim($0.weight)))" }.joined(separator: ", ")
                    + "; API key required (Authorization: Bearer)")
        lines.append("admin API: \(c.admin.token == nil ? "disabled (no admin.token)" : "enabled")")
        lines.append("")
        lines.append(contentsOf: laneTable(c))
        lines.append("")
        lines.append("models:")
        for model in c.models {
            let mt = model.timeouts ?? c.upstream.timeouts
            var routing = model.routing.policy.rawValue
            if model.routing.policy == .prefixAffinity {
                routing += " (first \(model.routing.prefixChars) chars, bound (1+\(model.routing.balanceFactor))× average load)"
            }
            lines.append(
                "  \(model.name): routing \(routing); fallback \(model.fallback.isEmpty ? "none" : model.fallback.joined(separator: " → ")); queue timeout \(model.queueTimeout.formatted); timeouts first byte \(mt.firstByte.formatted), idle \(mt.idle.formatted), total \(mt.total.formatted)"
            )
            if let m = model.managed {
                let server: String
                switch m.server {
                case .llamacpp(let l):
                    server =
                        "llama.cpp \(l.modelPath == "embedded" ? "SmolLM2-135M-Instruct (embedded)" : l.modelPath), \(l.parallel) slots, ctx \(l.ctxSize), \(l.threads) threads\(l.embeddings ? ", embeddings" : "")"
                case .command(let c): server = "command: \(c.joined(separator: " "))"
                }
                let warmup = m.warmup.map { "\($0.count)× \($0.maxTokens) tokens" }.joined(separator: ", ")
                lines.append(
                    "    managed: \(m.replicas) replica\(m.replicas == 1 ? "" : "s") of \(server); port \(m.port.map(String.init) ?? "auto"); warmup \(warmup.isEmpty ? "none" : warmup); ready timeout \(m.readyTimeout.formatted)"
                )
            }
            lines.append("    scheduling: " + schedulingSummary(model))
            lines.append("    " + pad("backend", 40) + pad("upstream model", 24) + pad("weight", 8) + "max in-flight")
            for b in model.backends {
                lines.append(
                    "    " + pad(b.url, 40) + pad(b.upstreamModel ?? model.name, 24) + pad(trim(b.weight), 8) + Self.capacityText(b.maxInflight, c))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The queue policy of every lane, one row each: what batching and shedding will do, as
    /// reviewable evidence. Lane choice: x-switchyard-lane, else stream → streaming, else realtime.
    static func laneTable(_ c: GatewayConfig) -> [String] {
        let header = [
            "lane", "priority", "min share", "max in-flight share", "queue max", "queue timeout", "on timeout", "ttft", "tpot", "e2e", "max stall",
            "attempts", "backoff", "sheddable", "preemptible",
        ]
        var rows: [[String]] = [header]
        for lane in c.lanes {
            rows.append([
                lane.name, String(lane.priority), lane.minShare > 0 ? "\(trim(lane.minShare * 100))%" : "-",
                lane.maxInflightShare.map { "\(trim($0 * 100))% of slots" } ?? "-",
                lane.queue.maxSize == 0 ? "unbounded" : String(lane.queue.maxSize),
                lane.queue.timeout?.formatted ?? "model's", lane.queue.timeoutAction.rawValue,
                lane.slo.ttft?.formatted ?? "-", lane.slo.tpot?.formatted ?? "-", lane.slo.e2e?.formatted ?? "-", lane.slo.maxStall?.formatted ?? "-",
                String(lane.retry.maxAttempts ?? c.retry.maxAttempts), lane.retry.backoff == .zero ? "-" : lane.retry.backoff.formatted,
                lane.sheddable ? "yes" : "no", lane.preemptible ? "yes (max \(lane.maxPreemptions))" : "no",
            ])
        }
        let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        var lines = [
            "lanes (x-switchyard-lane; else stream → streaming, else realtime; lower priority number first; fair share between tenants inside a lane):"
        ]
        for row in rows {
            lines.append("  " + row.enumerated().map { i, cell in pad(cell, widths[i] + 1) }.joined().trimmingCharacters(in: .whitespaces))
        }
        let b = c.batch
        lines.append(
            "batch jobs (/v1/files, /v1/batches): store \(b.store ?? "SQLite batch.sqlite in the data folder"); items leased for \(b.lease.formatted) (renewed while they run); "
                + "in flight per gateway \(b.concurrency.map(String.init) ?? "twice the batch lane's share of the pools' slots"); files up to \(b.maxFileLines) lines and \(b.maxFileBytes / 1_048_576) MiB"
        )
        return lines
    }

    static func schedulingSummary(_ model: ModelConfig) -> String {
        var parts: [String] = []
        let b = model.batching
        parts.append(
            "per replica at most " + (b.maxBatchSize.map { "\($0) in flight" } ?? "its capacity in flight")
                + (b.maxBatchTokens.map { ", \($0) tokens (prompt + max output)" } ?? ""))
        parts.append(
            b.maxQueueDelay > .zero
                ? "embeddings coalesced up to \(b.maxBatchSize ?? 8) inputs or \(b.maxQueueDelay.formatted)" : "embeddings not coalesced")
        if let h = model.memoryHeadroom {
            parts.append(
                "dispatch while KV cache < \(trim(h.kvCacheMax * 100))% (/metrics every \(h.scrapeInterval.formatted), stale after \(h.metricsStaleAfter.formatted) = saturated)"
            )
        }
        parts.append("preemption issued \(model.preemptionLead.formatted) before a deadline")
        if model.adaptiveConcurrency.enabled {
            parts.append("adaptive window \(model.adaptiveConcurrency.min)…slots, AIMD every \(model.adaptiveConcurrency.interval.formatted)")
        }
        return parts.joined(separator: "; ")
    }

    /// What `config check` says about a backend's concurrency limit: configured, or discovered
    /// when the gateway runs.
    static func capacityText(_ maxInflight: Int?, _ c: GatewayConfig) -> String {
        switch maxInflight {
        case .some(0): return "unlimited (max_inflight: 0)"
        case .some(let n): return "\(n) (max_inflight)"
        case .none:
            return "discovered at run time (/props, /get_server_info, /info, else learned from /metrics, else \(c.upstream.defaultMaxInflight))"
        }
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }

    static func trim(_ d: Double) -> String { d.rounded() == d ? String(Int(d)) : String(d) }
}
