import Foundation
import Testing

@testable import SwitchyardCore

@Suite struct ConfigLoaderTests {
    @Test func fullConfigDecodes() throws {
        let config = try ConfigLoader.load(
            yaml: """
                server: { host: 0.0.0.0, port: 9000, max_body_bytes: 1048576, shutdown_grace: 10s }
                upstream: { connect_timeout: 500ms, timeouts: { first_byte: 5s, idle: 2s, total: 1m } }
                health: { interval: 1s, timeout: 250ms, healthy_threshold: 2, unhealthy_threshold: 3, path: /health }
                outlier: { consecutive_failures: 2, base_ejection: 1s, max_ejection: 1m }
                retry: { max_attempts: 4, budget_ratio: 0.1, budget_window: 5s, min_retries_per_window: 1 }
                models:
                  - name: smollm2
                    routing: { policy: prefix_affinity, prefix_chars: 128, balance_factor: 0.5 }
                    fallback: [backup]
                    backends:
                      - { url: "http://127.0.0.1:8000/v1", model: SmolLM2, weight: 2, max_inflight: 4 }
                      - { url: "http://127.0.0.1:8001/v1" }
                  - name: backup
                    backends: [{ url: "http://[::1]:8002/v1" }]
                """)
        #expect(config.server.port == 9000)
        #expect(config.server.shutdownGrace == .seconds(10))
        #expect(config.upstream.connectTimeout == .milliseconds(500))
        #expect(config.upstream.timeouts.total == .seconds(60))
        #expect(config.retry.maxAttempts == 4)
        #expect(config.models.count == 2)
        #expect(config.models[0].routing.policy == .prefixAffinity)
        #expect(config.models[0].backends[0] == BackendConfig(url: "http://127.0.0.1:8000/v1", upstreamModel: "SmolLM2", weight: 2, maxInflight: 4))
        #expect(HTTPURL(config.models[1].backends[0].url)?.host == "::1")
    }

    @Test func everyInvalidFieldIsReportedWithItsPath() {
        #expect {
            try ConfigLoader.load(
                yaml: """
                    server: { port: 70000, colour: blue }
                    retry: { budget_ratio: 2 }
                    models:
                      - name: a
                        backends: [{ url: "http://127.0.0.1:8000/v1" }]
                      - name: b
                        fallback: [nope]
                        backends:
                          - { url: "ftp://x" }
                          - { url: "http://h:1/v1", weight: 0, max_inflight: -1 }
                        routing: { policy: random }
                        timeouts: { idle: soon }
                    """)
        } throws: { error in
            let paths = Set((error as! ConfigError).issues.map(\.path))
            return paths == [
                "server.port", "server.colour", "retry.budget_ratio",
                "models[1].backends[0].url", "models[1].backends[1].weight", "models[1].backends[1].max_inflight",
                "models[1].routing.policy", "models[1].timeouts.idle", "models[1].fallback[0]",
            ]
        }
    }

    @Test func tlsFilesMustBeReadableAndAdminCertificatesNeedAClientCA() throws {
        let file = "/tmp/sy-config-tls-\(UInt32.random(in: 0...UInt32.max)).pem"
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let models = "models:\n  - { name: a, backends: [{ url: 'http://127.0.0.1:1/v1' }] }\n"
        let on = try ConfigLoader.load(yaml: "server: { tls: { cert: \(file), key: \(file), client_ca: \(file) } }\n" + models)
        #expect(on.server.tls == ListenerTLSConfig(certFile: file, keyFile: file, clientCAFile: file))
        #expect(on.admin.clientCertificate, "a client CA puts client certificates on the admin API by default")
        let off = try ConfigLoader.load(
            yaml: "server: { tls: { cert: \(file), key: \(file), client_ca: \(file) } }\nadmin: { client_certificate: off }\n" + models)
        #expect(!off.admin.clientCertificate)
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(
                yaml: """
                    server: { tls: { cert: /nonexistent/cert.pem } }
                    admin: { client_certificate: required, client_subjects: [ops] }
                    upstream: { ca_file: /nonexistent/ca.pem }

                    """ + models)
        }
        #expect(Set(error.issues.map(\.path)) == ["server.tls.cert", "server.tls.key", "admin.client_certificate", "upstream.ca_file"])
        #expect(error.description.contains("cannot read '/nonexistent/cert.pem'"))
    }

    @Test func sharedLimitsNeedAPostgresURLWithoutALiteralPassword() throws {
        let models = "models:\n  - { name: a, backends: [{ url: 'http://127.0.0.1:1/v1' }] }\n"
        let on = try ConfigLoader.load(yaml: "limits: { shared: 'postgres://sy:${PGPASS}@db:5432/quotas', sync_interval: 500ms }\n" + models)
        #expect(on.limits?.url == "postgres://sy:${PGPASS}@db:5432/quotas" && on.limits?.syncInterval == .milliseconds(500))
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(yaml: "limits: { shared: 'postgres://sy:hunter2@db/quotas', sync_interval: 5ms }\n" + models)
        }
        #expect(Set(error.issues.map(\.path)) == ["limits.shared", "limits.sync_interval"])
        #expect(!error.description.contains("hunter2"))
        #expect(ConfigDiff(from: GatewayConfig(), to: on).restartIssues.map(\.path).contains { $0.hasPrefix("limits") })
    }

    @Test func messagesSayWhatIsAllowed() throws {
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(yaml: "models:\n  - name: a\n    backends: [{ url: 'localhost:8000' }]\n")
        }
        #expect(error.description.contains("models[0].backends[0].url: not a valid http(s) URL: 'localhost:8000' (line 3)"))
    }

    @Test func duplicateNamesAndEmptyPools() throws {
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(yaml: "models:\n  - { name: a, backends: [] }\n  - { name: a, backends: [{url: 'http://x:1'}] }\n")
        }
        #expect(Set(error.issues.map(\.path)) == ["models[1].name"], "an empty backends list is allowed: servers may register")
    }

    @Test func tenants() throws {
        let config = try ConfigLoader.load(
            yaml: """
                tenants:
                  - { name: team-a, api_key_sha256: "\(Digest.sha256Hex("sk-a").uppercased())", weight: 2 }
                models: [{ name: m, backends: [{ url: "http://127.0.0.1:1/v1" }] }]
                """)
        #expect(config.tenants == [TenantConfig(name: "team-a", apiKeySHA256: Digest.sha256Hex("sk-a"), weight: 2)])
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(
                yaml: """
                    tenants:
                      - { name: x, api_key_sha256: "\(Digest.sha256Hex("k1"))" }
                      - { name: x, api_key_sha256: "\(Digest.sha256Hex("k2"))" }
                      - { name: y, api_key_sha256: sk-plaintext }
                      - { name: z, api_key_sha256: "\(Digest.sha256Hex("k3"))", weight: 0 }
                    """)
        }
        #expect(Set(error.issues.map(\.path)) == ["tenants[1].name", "tenants[2].api_key_sha256", "tenants[3].weight"])
    }

    @Test func upstreamFlag() throws {
        let model = try ConfigLoader.parseUpstreamFlag("smol=http://127.0.0.1:1/v1,http://127.0.0.1:2/v1")
        #expect(model.name == "smol")
        #expect(model.backends.map(\.url) == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"])
        #expect(throws: ConfigError.self) { try ConfigLoader.parseUpstreamFlag("http://x") }
        #expect(throws: ConfigError.self) { try ConfigLoader.parseUpstreamFlag("m=notaurl") }
    }

    @Test func durations() {
        #expect(Duration.parse("250ms") == .milliseconds(250))
        #expect(Duration.parse("1.5s") == .milliseconds(1500))
        #expect(Duration.parse("2m") == .seconds(120))
        #expect(Duration.parse("3") == .seconds(3))
        #expect(Duration.parse("-1s") == nil)
        #expect(Duration.parse("soon") == nil)
        // Found by the FuzzConfig target: past Int64 nanoseconds it trapped; now it is invalid.
        #expect(Duration.parse("99999999999999999999s") == nil)
        #expect(Duration.parse("1e300h") == nil)
        #expect(Duration.parse("100000h") == .seconds(360_000_000))
    }

    @Test func lanesOverrideDefaultsAndModelsCarrySchedulingPolicy() throws {
        let config = try ConfigLoader.load(
            yaml: """
                lanes:
                  realtime:  { priority: 0, slo: { ttft: 1s, e2e: 10s }, queue: { max_size: 256, timeout: 1s, timeout_action: reject }, retry: { max_attempts: 2 } }
                  streaming: { priority: 1, slo: { ttft: 2s, tpot: 100ms, max_stall: 2s } }
                  batch:     { priority: 2, min_share: 0.1, sheddable: true, queue: { max_size: 100000, timeout_action: delay }, retry: { max_attempts: 5, backoff: 1s } }
                  eval:      { priority: 3, preemptible: true }
                models:
                  - name: smollm2
                    backends: [{ url: "http://127.0.0.1:8000/v1", max_inflight: 4 }]
                    batching: { max_batch_size: 4, max_batch_tokens: 8192, max_queue_delay: 5ms }
                    memory_headroom: { kv_cache_max: 0.85, metrics_stale_after: 2s }
                    adaptive_concurrency: { enabled: true, min: 1 }
                """)
        #expect(config.lanes.map(\.name) == ["realtime", "streaming", "batch", "eval"], "sorted by priority")
        let realtime = try #require(config.lane(named: "realtime"))
        #expect(realtime.slo.ttft == .seconds(1))
        #expect(realtime.queue.timeout == .seconds(1))
        #expect(realtime.retry.maxAttempts == 2)
        let streaming = try #require(config.lane(named: "streaming"))
        #expect(streaming.slo.tpot == .milliseconds(100))
        #expect(streaming.queue.maxSize == 1024, "unset fields keep the default")
        let batch = try #require(config.lane(named: "batch"))
        #expect(batch.minShare == 0.1)
        #expect(batch.sheddable)
        #expect(batch.preemptible, "batch is preemptible by default")
        #expect(batch.queue.timeoutAction == .delay)
        #expect(batch.retry.backoff == .seconds(1))
        #expect(config.lane(named: "eval")?.preemptible == true)
        let model = config.models[0]
        #expect(model.batching.maxBatchSize == 4)
        #expect(model.batching.maxBatchTokens == 8192)
        #expect(model.batching.maxQueueDelay == .milliseconds(5))
        #expect(model.memoryHeadroom?.kvCacheMax == 0.85)
        #expect(model.adaptiveConcurrency.enabled)
    }

    @Test func withoutLanesTheThreeStandardLanesExist() throws {
        let config = try ConfigLoader.load(yaml: "models: [{ name: m, backends: [{ url: 'http://127.0.0.1:1/v1' }] }]")
        #expect(config.lanes.map(\.name) == ["realtime", "streaming", "batch"])
        #expect(config.lanes.map(\.priority) == [0, 0, 1])
    }

    @Test func invalidLaneFieldsAreReportedByPath() {
        #expect {
            try ConfigLoader.load(
                yaml: """
                    lanes:
                      realtime: { slo: { ttft: 2s, e2e: 1s }, queue: { timeout_action: drop } }
                      bulk: { min_share: 0.5 }
                      realtime2: { priority: 0, min_share: 0.3 }
                    models: [{ name: m, backends: [{ url: 'http://127.0.0.1:1/v1' }], batching: { max_queue_delay: 5s } }]
                    """)
        } throws: { error in
            let text = "\(error)"
            return text.contains("lanes.realtime.slo.e2e: must be ≥ slo.ttft")
                && text.contains("lanes.realtime.queue.timeout_action: must be one of reject, delay")
                && text.contains("lanes.bulk.priority: required")
                && text.contains("share priority 0 but give different min_share")
                && text.contains("models[0].batching.max_queue_delay")
        }
    }

    @Test func theBatchBlockSetsTheStoreAndTheBatchLanesShare() throws {
        let config = try ConfigLoader.load(
            yaml: """
                batch: { store: "postgres://sy:${PG_PASSWORD}@db:5432/sy?sslmode=require", lease: 10s, max_inflight_share: 0.25, max_file_lines: 1000, concurrency: 16 }
                """)
        #expect(config.batch.store == "postgres://sy:${PG_PASSWORD}@db:5432/sy?sslmode=require")
        #expect(config.batch.lease == .seconds(10) && config.batch.maxFileLines == 1000 && config.batch.concurrency == 16)
        #expect(config.lane(named: "batch")?.maxInflightShare == 0.25)
        #expect(GatewayConfig().lane(named: "batch")?.maxInflightShare == 0.5, "the default keeps half the slots for live traffic")
        #expect(GatewayConfig().batch.store == nil, "SQLite in the data folder by default")
        let (expanded, missing) = BatchConfig.expand(config.batch.store!, environment: ["PG_PASSWORD": "s3cret"])
        #expect(expanded == "postgres://sy:s3cret@db:5432/sy?sslmode=require" && missing.isEmpty)
        #expect(BatchConfig.expand("postgres://u:${NOPE}@h/d", environment: [:]).missing == ["NOPE"])

        #expect {
            try ConfigLoader.load(yaml: "batch: { store: \"postgres://sy:hunter2@db/sy\" }")
        } throws: { "\($0)".contains("batch.store: has a password in it") }
        #expect {
            try ConfigLoader.load(yaml: "batch: { store: \"mysql://db\", lease: 10ms }")
        } throws: { "\($0)".contains("batch.store: expected postgres://") && "\($0)".contains("batch.lease: must be at least 1s") }
        #expect {
            try ConfigLoader.load(yaml: "lanes: { batch: { max_inflight_share: 1.5 } }")
        } throws: { "\($0)".contains("lanes.batch.max_inflight_share") }
    }
}
