import Foundation
import Yams

/// Turns YAML text into a validated ``GatewayConfig``, reporting every invalid field by path.
///
/// ```yaml
/// server: { host: 127.0.0.1, port: 8080 }
/// models:
///   - name: smollm2
///     backends:
///       - { url: http://127.0.0.1:8000/v1, max_inflight: 4 }
/// ```
package enum ConfigLoader {
    /// - Parameter secrets: where `${ENV}` and `file:` references (`admin.token`) are resolved.
    package static func load(yaml text: String, secrets: SecretSource = SecretSource()) throws(ConfigError) -> GatewayConfig {
        let root = try YAMLReader.compose(text)
        var config = GatewayConfig()
        var reader = YAMLReader(secrets: secrets)
        if let root {
            decode(root, into: &config, reader: &reader)
        }
        reader.issues += validate(config)
        if !reader.issues.isEmpty { throw ConfigError(issues: reader.issues) }
        return config
    }

    /// Checks that need the whole config: unique names, fallbacks that exist, at least one model.
    package static func validate(_ config: GatewayConfig) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        var seen: Set<String> = []
        for (i, model) in config.models.enumerated() {
            if !seen.insert(model.name).inserted {
                issues.append(ConfigIssue(path: "models[\(i)].name", message: "duplicate model name '\(model.name)'"))
            }
            // An empty `backends: []` is allowed: servers may register at runtime (POST /admin/backends).
        }
        let names = Set(config.models.map(\.name))
        for (i, model) in config.models.enumerated() {
            for (j, fallback) in model.fallback.enumerated() {
                if !names.contains(fallback) {
                    issues.append(
                        ConfigIssue(
                            path: "models[\(i)].fallback[\(j)]",
                            message: "unknown model '\(fallback)'; defined: \(names.sorted().joined(separator: ", "))"))
                } else if fallback == model.name {
                    issues.append(ConfigIssue(path: "models[\(i)].fallback[\(j)]", message: "a model cannot fall back to itself"))
                }
            }
        }
        return issues
    }

    static func decode(_ root: Node, into config: inout GatewayConfig, reader r: inout YAMLReader) {
        guard
            let top = r.mapping(
                root, "", allowed: ["server", "upstream", "health", "outlier", "retry", "admin", "tenants", "lanes", "models", "batch", "limits"])
        else { return }
        if let node = top["lanes"] { decodeLanes(node, into: &config, reader: &r) }
        if let node = top["batch"] { decodeBatch(node, into: &config, reader: &r) }
        if let node = top["limits"] { decodeSharedLimits(node, into: &config, reader: &r) }
        if let node = top["tenants"], let list = r.sequence(node, "tenants") {
            for (i, item) in list.enumerated() {
                let path = "tenants[\(i)]"
                guard let m = r.mapping(item, path, allowed: ["name", "api_key_sha256", "weight", "limits"]) else { continue }
                guard let nameNode = m["name"], let name = r.string(nameNode, "\(path).name") else {
                    if m["name"] == nil { r.fail("\(path).name", "required", item) }
                    continue
                }
                guard let hashNode = m["api_key_sha256"], let hash = r.string(hashNode, "\(path).api_key_sha256") else {
                    if m["api_key_sha256"] == nil { r.fail("\(path).api_key_sha256", "required (sha256sum of the key, hex)", item) }
                    continue
                }
                let lower = hash.lowercased()
                guard lower.count == 64, lower.allSatisfy({ $0.isHexDigit }) else {
                    r.fail("\(path).api_key_sha256", "must be 64 hex characters (echo -n KEY | sha256sum)", hashNode)
                    continue
                }
                var tenant = TenantConfig(name: name, apiKeySHA256: lower)
                if let w = m["weight"], let v = r.double(w, "\(path).weight", min: 0, max: 1000, exclusiveMin: true) { tenant.weight = v }
                if let n = m["limits"], let lm = r.mapping(n, "\(path).limits", allowed: RateLimits.fields + ["lanes", "concurrent_streams"]) {
                    tenant.limits = decodeRateLimits(lm, "\(path).limits", reader: &r)
                    if let n = lm["concurrent_streams"] { tenant.maxConcurrentStreams = r.int(n, "\(path).limits.concurrent_streams", min: 1) }
                    if let lanesNode = m["limits"].flatMap({ _ in lm["lanes"] }), case .mapping(let lanes) = lanesNode {
                        for (key, value) in lanes {
                            guard let lane = key.string else { continue }
                            let lanePath = "\(path).limits.lanes.\(lane)"
                            if !config.lanes.contains(where: { $0.name == lane }) {
                                r.fail(lanePath, "unknown lane; configured: \(config.lanes.map(\.name).joined(separator: ", "))", key)
                            } else if let laneMap = r.mapping(value, lanePath, allowed: RateLimits.fields) {
                                tenant.laneLimits[lane] = decodeRateLimits(laneMap, lanePath, reader: &r)
                            }
                        }
                    } else if lm["lanes"] != nil {
                        r.fail("\(path).limits.lanes", "expected a mapping of lane name → limits", lm["lanes"])
                    }
                }
                if config.tenants.contains(where: { $0.name == name }) { r.fail("\(path).name", "duplicate tenant name '\(name)'", nameNode) }
                if config.tenants.contains(where: { $0.apiKeySHA256 == lower }) {
                    r.fail("\(path).api_key_sha256", "the same key is already given to another tenant", hashNode)
                }
                config.tenants.append(tenant)
            }
        }
        if let node = top["server"],
            let m = r.mapping(
                node, "server", allowed: ["host", "port", "max_body_bytes", "shutdown_grace", "drain_delay", "fast_path", "limits", "tls"])
        {
            if let n = m["limits"] { decodeLimits(n, into: &config.server.limits, reader: &r) }
            if let n = m["tls"], let t = r.mapping(n, "server.tls", allowed: ["cert", "key", "client_ca"]) {
                for field in ["cert", "key"] where t[field] == nil { r.fail("server.tls.\(field)", "required (a PEM file)", n) }
                if let c = t["cert"].flatMap({ r.readableFile($0, "server.tls.cert") }),
                    let k = t["key"].flatMap({ r.readableFile($0, "server.tls.key") })
                {
                    config.server.tls = ListenerTLSConfig(
                        certFile: c, keyFile: k, clientCAFile: t["client_ca"].flatMap { r.readableFile($0, "server.tls.client_ca") })
                }
            }
            if let n = m["host"], let v = r.string(n, "server.host") { config.server.host = v }
            if let n = m["port"], let v = r.int(n, "server.port", min: 0, max: 65535) { config.server.port = v }
            if let n = m["max_body_bytes"], let v = r.int(n, "server.max_body_bytes", min: 1024) { config.server.maxBodyBytes = v }
            if let n = m["shutdown_grace"], let v = r.duration(n, "server.shutdown_grace", allowZero: true) { config.server.shutdownGrace = v }
            if let n = m["drain_delay"], let v = r.duration(n, "server.drain_delay", allowZero: true) { config.server.drainDelay = v }
            if let n = m["fast_path"], let v = r.bool(n, "server.fast_path") { config.server.fastPath = v }
        }
        // After `server`: whether a client certificate can be asked for depends on its `tls`.
        config.admin.clientCertificate = config.server.tls?.clientCAFile != nil
        if let node = top["admin"], let m = r.mapping(node, "admin", allowed: ["token", "client_certificate", "client_subjects"]) {
            if let n = m["token"], let v = r.secret(n, "admin.token") {
                if v.count < 16 { r.fail("admin.token", "must be at least 16 characters", n) } else { config.admin.token = v }
            }
            if let n = m["client_certificate"], let v = r.string(n, "admin.client_certificate") {
                switch v {
                case "required":
                    if config.server.tls?.clientCAFile == nil {
                        r.fail("admin.client_certificate", "'required' needs server.tls.client_ca (the CA that issues client certificates)", n)
                    }
                    config.admin.clientCertificate = true
                case "off": config.admin.clientCertificate = false
                default: r.fail("admin.client_certificate", "expected required or off, got '\(v)'", n)
                }
            }
            if let n = m["client_subjects"], let list = r.sequence(n, "admin.client_subjects") {
                config.admin.clientSubjects = list.enumerated().compactMap { r.string($1, "admin.client_subjects[\($0)]") }
            }
        }
        if !config.admin.clientCertificate && !config.admin.clientSubjects.isEmpty {
            r.fail("admin.client_subjects", "needs client certificates (server.tls.client_ca)", nil)
        }
        if let node = top["upstream"],
            let m = r.mapping(
                node, "upstream",
                allowed: [
                    "connect_timeout", "timeouts", "max_connections_per_backend", "idle_connection_timeout",
                    "default_max_inflight", "discovery_timeout", "ca_file",
                ])
        {
            if let n = m["ca_file"] { config.upstream.caFile = r.readableFile(n, "upstream.ca_file") }
            if let n = m["idle_connection_timeout"], let v = r.duration(n, "upstream.idle_connection_timeout") {
                config.upstream.idleConnectionTimeout = v
            }
            if let n = m["connect_timeout"], let v = r.duration(n, "upstream.connect_timeout") { config.upstream.connectTimeout = v }
            if let n = m["timeouts"] { decodeTimeouts(n, "upstream.timeouts", into: &config.upstream.timeouts, reader: &r) }
            if let n = m["max_connections_per_backend"], let v = r.int(n, "upstream.max_connections_per_backend", min: 1) {
                config.upstream.maxConnectionsPerBackend = v
            }
            if let n = m["default_max_inflight"], let v = r.int(n, "upstream.default_max_inflight", min: 1, max: 100_000) {
                config.upstream.defaultMaxInflight = v
            }
            if let n = m["discovery_timeout"], let v = r.duration(n, "upstream.discovery_timeout") { config.upstream.discoveryTimeout = v }
        }
        if let node = top["health"],
            let m = r.mapping(node, "health", allowed: ["enabled", "interval", "timeout", "healthy_threshold", "unhealthy_threshold", "path"])
        {
            if let n = m["enabled"], let v = r.bool(n, "health.enabled") { config.health.enabled = v }
            if let n = m["interval"], let v = r.duration(n, "health.interval") { config.health.interval = v }
            if let n = m["timeout"], let v = r.duration(n, "health.timeout") { config.health.timeout = v }
            if let n = m["healthy_threshold"], let v = r.int(n, "health.healthy_threshold", min: 1, max: 100) { config.health.healthyThreshold = v }
            if let n = m["unhealthy_threshold"], let v = r.int(n, "health.unhealthy_threshold", min: 1, max: 100) {
                config.health.unhealthyThreshold = v
            }
            if let n = m["path"], let v = r.string(n, "health.path") { config.health.path = v }
        }
        if let node = top["outlier"], let m = r.mapping(node, "outlier", allowed: ["consecutive_failures", "base_ejection", "max_ejection"]) {
            if let n = m["consecutive_failures"], let v = r.int(n, "outlier.consecutive_failures", min: 1) { config.outlier.consecutiveFailures = v }
            if let n = m["base_ejection"], let v = r.duration(n, "outlier.base_ejection") { config.outlier.baseEjection = v }
            if let n = m["max_ejection"], let v = r.duration(n, "outlier.max_ejection") { config.outlier.maxEjection = v }
            if config.outlier.maxEjection < config.outlier.baseEjection {
                r.fail("outlier.max_ejection", "must be ≥ base_ejection (\(config.outlier.baseEjection.formatted))", m["max_ejection"])
            }
        }
        if let node = top["retry"],
            let m = r.mapping(node, "retry", allowed: ["max_attempts", "budget_ratio", "budget_window", "min_retries_per_window", "max_retry_after"])
        {
            if let n = m["max_attempts"], let v = r.int(n, "retry.max_attempts", min: 1, max: 10) { config.retry.maxAttempts = v }
            if let n = m["budget_ratio"], let v = r.double(n, "retry.budget_ratio", min: 0, max: 1) { config.retry.budgetRatio = v }
            if let n = m["budget_window"], let v = r.duration(n, "retry.budget_window") { config.retry.budgetWindow = v }
            if let n = m["min_retries_per_window"], let v = r.int(n, "retry.min_retries_per_window", min: 0) { config.retry.minRetriesPerWindow = v }
            if let n = m["max_retry_after"], let v = r.duration(n, "retry.max_retry_after", allowZero: true) { config.retry.maxRetryAfter = v }
        }
        if let node = top["models"], let list = r.sequence(node, "models") {
            for (i, item) in list.enumerated() {
                if let model = decodeModel(item, "models[\(i)]", reader: &r) { config.models.append(model) }
            }
        }
    }

    static func decodeRateLimits(_ m: [String: Node], _ path: String, reader r: inout YAMLReader) -> RateLimits {
        var limits = RateLimits()
        if let n = m["requests_per_minute"] { limits.requestsPerMinute = r.int(n, "\(path).requests_per_minute", min: 1) }
        if let n = m["tokens_per_minute"] { limits.tokensPerMinute = r.int(n, "\(path).tokens_per_minute", min: 1) }
        if let n = m["tokens_per_day"] { limits.tokensPerDay = r.int(n, "\(path).tokens_per_day", min: 1) }
        return limits
    }

    static func decodeLimits(_ node: Node, into l: inout ClientLimits, reader r: inout YAMLReader) {
        let path = "server.limits"
        guard
            let m = r.mapping(
                node, path,
                allowed: [
                    "max_header_bytes", "max_headers", "header_read_timeout", "body_idle_timeout", "idle_timeout", "max_connections_per_client",
                ])
        else { return }
        if let n = m["max_header_bytes"], let v = r.int(n, "\(path).max_header_bytes", min: 1024) { l.maxHeaderBytes = v }
        if let n = m["max_headers"], let v = r.int(n, "\(path).max_headers", min: 8) { l.maxHeaders = v }
        if let n = m["header_read_timeout"], let v = r.duration(n, "\(path).header_read_timeout") { l.headerReadTimeout = v }
        if let n = m["body_idle_timeout"], let v = r.duration(n, "\(path).body_idle_timeout") { l.bodyIdleTimeout = v }
        if let n = m["idle_timeout"], let v = r.duration(n, "\(path).idle_timeout") { l.idleTimeout = v }
        if let n = m["max_connections_per_client"], let v = r.int(n, "\(path).max_connections_per_client", min: 0) {
            l.maxConnectionsPerClient = v
        }
    }

    static func decodeTimeouts(_ node: Node, _ path: String, into t: inout TimeoutConfig, reader r: inout YAMLReader) {
        guard let m = r.mapping(node, path, allowed: ["first_byte", "idle", "total"]) else { return }
        if let n = m["first_byte"], let v = r.duration(n, "\(path).first_byte") { t.firstByte = v }
        if let n = m["idle"], let v = r.duration(n, "\(path).idle") { t.idle = v }
        if let n = m["total"], let v = r.duration(n, "\(path).total") { t.total = v }
    }

    static func decodeModel(_ node: Node, _ path: String, reader r: inout YAMLReader) -> ModelConfig? {
        guard
            let m = r.mapping(
                node, path,
                allowed: [
                    "name", "backends", "routing", "fallback", "timeouts", "queue_timeout", "managed",
                    "batching", "memory_headroom", "adaptive_concurrency", "preemption_lead", "discovery",
                ])
        else { return nil }
        guard let nameNode = m["name"] else {
            r.fail("\(path).name", "required", node)
            return nil
        }
        guard let name = r.string(nameNode, "\(path).name") else { return nil }
        var model = ModelConfig(name: name, backends: [])
        if let n = m["backends"], let list = r.sequence(n, "\(path).backends") {
            for (j, item) in list.enumerated() {
                if let backend = decodeBackend(item, "\(path).backends[\(j)]", reader: &r) { model.backends.append(backend) }
            }
        } else if m["backends"] == nil && m["managed"] == nil && m["discovery"] == nil {
            r.fail("\(path).backends", "required (or a managed: or discovery: block)", node)
        }
        if let n = m["discovery"] { model.discovery = decodeDiscovery(n, "\(path).discovery", reader: &r) }
        if let n = m["managed"] { model.managed = decodeManaged(n, "\(path).managed", reader: &r) }
        if let n = m["routing"], let rm = r.mapping(n, "\(path).routing", allowed: ["policy", "prefix_chars", "balance_factor"]) {
            if let p = rm["policy"], let v = r.oneOf(p, "\(path).routing.policy", RoutingPolicy.self) { model.routing.policy = v }
            if let p = rm["prefix_chars"], let v = r.int(p, "\(path).routing.prefix_chars", min: 1) { model.routing.prefixChars = v }
            if let p = rm["balance_factor"], let v = r.double(p, "\(path).routing.balance_factor", min: 0, max: 10) {
                model.routing.balanceFactor = v
            }
        }
        if let n = m["fallback"], let list = r.sequence(n, "\(path).fallback") {
            for (j, item) in list.enumerated() {
                if let v = r.string(item, "\(path).fallback[\(j)]") { model.fallback.append(v) }
            }
        }
        if let n = m["timeouts"] {
            var t = TimeoutConfig()
            decodeTimeouts(n, "\(path).timeouts", into: &t, reader: &r)
            model.timeouts = t
        }
        if let n = m["queue_timeout"], let v = r.duration(n, "\(path).queue_timeout", allowZero: true) { model.queueTimeout = v }
        if let n = m["batching"], let bm = r.mapping(n, "\(path).batching", allowed: ["max_batch_size", "max_batch_tokens", "max_queue_delay"]) {
            if let v = bm["max_batch_size"], let x = r.int(v, "\(path).batching.max_batch_size", min: 1, max: 4096) {
                model.batching.maxBatchSize = x
            }
            if let v = bm["max_batch_tokens"], let x = r.int(v, "\(path).batching.max_batch_tokens", min: 1) { model.batching.maxBatchTokens = x }
            if let v = bm["max_queue_delay"], let x = r.duration(v, "\(path).batching.max_queue_delay", allowZero: true) {
                if x > .seconds(1) {
                    r.fail("\(path).batching.max_queue_delay", "must be at most 1s (it adds to every coalesced request's latency)", v)
                } else {
                    model.batching.maxQueueDelay = x
                }
            }
        }
        if let n = m["memory_headroom"],
            let hm = r.mapping(n, "\(path).memory_headroom", allowed: ["kv_cache_max", "metrics_stale_after", "scrape_interval"])
        {
            var h = MemoryHeadroomConfig()
            if let v = hm["kv_cache_max"], let x = r.double(v, "\(path).memory_headroom.kv_cache_max", min: 0, max: 1, exclusiveMin: true) {
                h.kvCacheMax = x
            }
            if let v = hm["metrics_stale_after"], let x = r.duration(v, "\(path).memory_headroom.metrics_stale_after") { h.metricsStaleAfter = x }
            if let v = hm["scrape_interval"], let x = r.duration(v, "\(path).memory_headroom.scrape_interval") { h.scrapeInterval = x }
            if h.scrapeInterval >= h.metricsStaleAfter {
                r.fail(
                    "\(path).memory_headroom.scrape_interval",
                    "must be shorter than metrics_stale_after (\(h.metricsStaleAfter.formatted)), or every scrape is already stale",
                    hm["scrape_interval"] ?? n)
            }
            model.memoryHeadroom = h
        }
        if let n = m["preemption_lead"], let v = r.duration(n, "\(path).preemption_lead", allowZero: true) { model.preemptionLead = v }
        if let n = m["adaptive_concurrency"], let am = r.mapping(n, "\(path).adaptive_concurrency", allowed: ["enabled", "min", "interval"]) {
            if let v = am["enabled"], let x = r.bool(v, "\(path).adaptive_concurrency.enabled") { model.adaptiveConcurrency.enabled = x }
            if let v = am["min"], let x = r.int(v, "\(path).adaptive_concurrency.min", min: 1, max: 4096) { model.adaptiveConcurrency.min = x }
            if let v = am["interval"], let x = r.duration(v, "\(path).adaptive_concurrency.interval") { model.adaptiveConcurrency.interval = x }
        }
        return model
    }

    /// `lanes:` maps a lane name to its policy; fields not given keep the lane's default.
    static func decodeLanes(_ node: Node, into config: inout GatewayConfig, reader r: inout YAMLReader) {
        guard case .mapping(let mapping) = node else {
            r.fail("lanes", "expected a mapping of lane name → policy (realtime, streaming, batch, …)", node)
            return
        }
        for (key, value) in mapping {
            guard let name = key.string, !name.isEmpty else {
                r.fail("lanes", "lane names must be strings", key)
                continue
            }
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                r.fail("lanes.\(name)", "lane names may hold letters, digits, '-' and '_' only (they are sent in x-switchyard-lane)", key)
                continue
            }
            let path = "lanes.\(name)"
            let index = config.lanes.firstIndex { $0.name == name }
            var lane = index.map { config.lanes[$0] } ?? LaneConfig(name: name, priority: -1)
            guard
                let m = r.mapping(
                    value, path,
                    allowed: ["priority", "min_share", "max_inflight_share", "sheddable", "preemptible", "max_preemptions", "slo", "queue", "retry"])
            else { continue }
            if let v = m["priority"], let x = r.int(v, "\(path).priority", min: 0, max: 15) { lane.priority = x }
            if lane.priority < 0 {
                r.fail("\(path).priority", "required for a lane other than realtime, streaming and batch", value)
                lane.priority = 0
            }
            if let v = m["min_share"], let x = r.double(v, "\(path).min_share", min: 0, max: 0.9) { lane.minShare = x }
            if let v = m["max_inflight_share"], let x = r.double(v, "\(path).max_inflight_share", min: 0, max: 1, exclusiveMin: true) {
                lane.maxInflightShare = x < 1 ? x : nil
            }
            if let v = m["sheddable"], let x = r.bool(v, "\(path).sheddable") { lane.sheddable = x }
            if let v = m["preemptible"], let x = r.bool(v, "\(path).preemptible") { lane.preemptible = x }
            if let v = m["max_preemptions"], let x = r.int(v, "\(path).max_preemptions", min: 0, max: 100) { lane.maxPreemptions = x }
            if let n = m["slo"], let sm = r.mapping(n, "\(path).slo", allowed: ["ttft", "tpot", "e2e", "max_stall"]) {
                if let v = sm["ttft"], let x = r.duration(v, "\(path).slo.ttft") { lane.slo.ttft = x }
                if let v = sm["tpot"], let x = r.duration(v, "\(path).slo.tpot") { lane.slo.tpot = x }
                if let v = sm["e2e"], let x = r.duration(v, "\(path).slo.e2e") { lane.slo.e2e = x }
                if let v = sm["max_stall"], let x = r.duration(v, "\(path).slo.max_stall") { lane.slo.maxStall = x }
                if let ttft = lane.slo.ttft, let e2e = lane.slo.e2e, e2e < ttft {
                    r.fail("\(path).slo.e2e", "must be ≥ slo.ttft (\(ttft.formatted))", sm["e2e"])
                }
            }
            if let n = m["queue"], let qm = r.mapping(n, "\(path).queue", allowed: ["max_size", "timeout", "timeout_action"]) {
                if let v = qm["max_size"], let x = r.int(v, "\(path).queue.max_size", min: 0) { lane.queue.maxSize = x }
                if let v = qm["timeout"], let x = r.duration(v, "\(path).queue.timeout") { lane.queue.timeout = x }
                if let v = qm["timeout_action"], let x = r.oneOf(v, "\(path).queue.timeout_action", LaneConfig.TimeoutAction.self) {
                    lane.queue.timeoutAction = x
                }
            }
            if let n = m["retry"], let rm = r.mapping(n, "\(path).retry", allowed: ["max_attempts", "backoff"]) {
                if let v = rm["max_attempts"], let x = r.int(v, "\(path).retry.max_attempts", min: 1, max: 10) { lane.retry.maxAttempts = x }
                if let v = rm["backoff"], let x = r.duration(v, "\(path).retry.backoff", allowZero: true) { lane.retry.backoff = x }
            }
            if let index { config.lanes[index] = lane } else { config.lanes.append(lane) }
        }
        config.lanes.sort { ($0.priority, $0.name) < ($1.priority, $1.name) }
        // A band's floor: min_share of lanes sharing a priority is the band's, so they must agree.
        for (priority, lanes) in Dictionary(grouping: config.lanes, by: \.priority) where Set(lanes.map(\.minShare)).count > 1 {
            r.fail(
                "lanes", "lanes \(lanes.map(\.name).sorted().joined(separator: ", ")) share priority \(priority) but give different min_share", node)
        }
    }

    static func decodeManaged(_ node: Node, _ path: String, reader r: inout YAMLReader) -> ManagedConfig? {
        guard let m = r.mapping(node, path, allowed: ["llamacpp", "command", "replicas", "port", "env", "warmup", "ready_timeout"]) else {
            return nil
        }
        var managed = ManagedConfig()
        if m["llamacpp"] != nil && m["command"] != nil {
            r.fail(path, "give either llamacpp or command, not both", node)
        }
        if let n = m["llamacpp"], let lm = r.mapping(n, "\(path).llamacpp", allowed: ["model_path", "parallel", "ctx_size", "threads", "embeddings"])
        {
            var s = ManagedConfig.LlamaCppSettings()
            if let v = lm["model_path"], let x = r.string(v, "\(path).llamacpp.model_path") { s.modelPath = x }
            if let v = lm["parallel"], let x = r.int(v, "\(path).llamacpp.parallel", min: 1, max: 256) { s.parallel = x }
            if let v = lm["ctx_size"], let x = r.int(v, "\(path).llamacpp.ctx_size", min: 256) { s.ctxSize = x }
            if let v = lm["threads"], let x = r.int(v, "\(path).llamacpp.threads", min: 1, max: 1024) { s.threads = x }
            if let v = lm["embeddings"], let x = r.bool(v, "\(path).llamacpp.embeddings") { s.embeddings = x }
            managed.server = .llamacpp(s)
        }
        if let n = m["command"], let list = r.sequence(n, "\(path).command") {
            let args = list.enumerated().compactMap { i, item in r.string(item, "\(path).command[\(i)]") }
            if args.isEmpty { r.fail("\(path).command", "must not be empty", n) } else { managed.server = .command(args) }
        }
        if let n = m["replicas"], let v = r.int(n, "\(path).replicas", min: 1, max: 64) { managed.replicas = v }
        if let n = m["port"] {
            if n.string == "auto" { managed.port = nil } else if let v = r.int(n, "\(path).port", min: 1, max: 65535) { managed.port = v }
        }
        if let n = m["env"], case .mapping(let env) = n {
            for (k, v) in env { if let key = k.string, let value = v.string { managed.env[key] = value } }
        } else if let n = m["env"] {
            r.fail("\(path).env", "expected a mapping of NAME: value", n)
        }
        if let n = m["warmup"], let list = r.sequence(n, "\(path).warmup") {
            managed.warmup = list.enumerated().compactMap { i, item in
                guard let wm = r.mapping(item, "\(path).warmup[\(i)]", allowed: ["prompt", "max_tokens", "count"]) else { return nil }
                var w = ManagedConfig.Warmup()
                if let v = wm["prompt"], let x = r.string(v, "\(path).warmup[\(i)].prompt") { w.prompt = x }
                if let v = wm["max_tokens"], let x = r.int(v, "\(path).warmup[\(i)].max_tokens", min: 1) { w.maxTokens = x }
                if let v = wm["count"], let x = r.int(v, "\(path).warmup[\(i)].count", min: 0, max: 1000) { w.count = x }
                return w
            }
        }
        if let n = m["ready_timeout"], let v = r.duration(n, "\(path).ready_timeout") { managed.readyTimeout = v }
        return managed
    }

    static func decodeBackend(_ node: Node, _ path: String, reader r: inout YAMLReader) -> BackendConfig? {
        guard let m = r.mapping(node, path, allowed: ["url", "model", "weight", "max_inflight"]) else { return nil }
        guard let urlNode = m["url"] else {
            r.fail("\(path).url", "required", node)
            return nil
        }
        guard let url = r.httpURL(urlNode, "\(path).url") else { return nil }
        var backend = BackendConfig(url: url)
        if let n = m["model"], let v = r.string(n, "\(path).model") { backend.upstreamModel = v }
        if let n = m["weight"], let v = r.double(n, "\(path).weight", min: 0, max: 1000, exclusiveMin: true) { backend.weight = v }
        if let n = m["max_inflight"], let v = r.int(n, "\(path).max_inflight", min: 0) { backend.maxInflight = v }
        return backend
    }

    /// Parses a quick-start flag `MODEL=URL[,URL…]`.
    package static func parseUpstreamFlag(_ text: String) throws(ConfigError) -> ModelConfig {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw ConfigError(issues: [ConfigIssue(path: "--upstream", message: "expected MODEL=URL[,URL…], got '\(text)'")])
        }
        let name = String(text[..<eq])
        let urls = text[text.index(after: eq)...].split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        var issues: [ConfigIssue] = []
        if urls.isEmpty { issues.append(ConfigIssue(path: "--upstream \(name)", message: "no URL given")) }
        for url in urls where HTTPURL(url) == nil {
            issues.append(ConfigIssue(path: "--upstream \(name)", message: "not a valid http(s) URL: '\(url)'"))
        }
        if !issues.isEmpty { throw ConfigError(issues: issues) }
        return ModelConfig(name: name, backends: urls.map { BackendConfig(url: $0) })
    }
}
