import Foundation
import Yams

/// The batch product: where files and batches are kept, and how batch items are run.
///
/// ```yaml
/// batch:
///   store: postgres://switchyard@db:5432/switchyard   # default: SQLite in the data folder
///   password_file: /run/secrets/pg                    # or ${PG_PASSWORD} inside the URL
///   max_inflight_share: 0.5                           # of each pool's slots, with no live traffic
///   lease: 30s
/// ```
package struct BatchConfig: Sendable, Equatable {
    package static let defaultMaxInflightShare = 0.5

    /// `postgres://user@host:port/db?sslmode=…` (a password only as `${ENV}`); nil: SQLite file
    /// `batch.sqlite` in the data folder.
    package var store: String?
    package var passwordFile: String?
    /// How long a claimed item is held before another worker may take it (renewed while it runs).
    package var lease: Duration = .seconds(30)
    package var maxFileBytes = 512 * 1024 * 1024
    package var maxFileLines = 200_000
    package var maxLineBytes = 8 * 1024 * 1024
    /// Items a gateway keeps in flight at most (queued in the batch lane included); nil: from the
    /// pools' capacity and the batch lane's `max_inflight_share`.
    package var concurrency: Int?

    package init() {}

    /// The store URL with `${NAME}` replaced from `environment`; the names that are unset.
    package static func expand(_ text: String, environment: [String: String]) -> (String, missing: [String]) {
        var out = ""
        var missing: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "${") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                out += rest[open.lowerBound...]
                rest = ""
                break
            }
            let name = String(rest[open.upperBound..<close])
            if let value = environment[name] { out += value } else { missing.append(name) }
            rest = rest[rest.index(after: close)...]
        }
        return (out + rest, missing)
    }
}

extension ConfigLoader {
    static func decodeBatch(_ node: Node, into config: inout GatewayConfig, reader r: inout YAMLReader) {
        guard
            let m = r.mapping(
                node, "batch", allowed: ["store", "password_file", "max_inflight_share", "lease", "max_file_bytes", "max_file_lines", "concurrency"])
        else { return }
        if let n = m["store"], let v = r.string(n, "batch.store") {
            if isPostgresURL(v) {
                if postgresURLHasNoPassword(v, "batch.store", "batch.password_file", n, reader: &r) { config.batch.store = v }
            } else if v == "sqlite" {
                config.batch.store = nil
            } else {
                r.fail("batch.store", "expected postgres://user@host:port/database (or sqlite, the default), got '\(v)'", n)
            }
        }
        if let n = m["password_file"], let v = r.string(n, "batch.password_file") { config.batch.passwordFile = v }
        if let n = m["max_inflight_share"], let v = r.double(n, "batch.max_inflight_share", min: 0, max: 1, exclusiveMin: true) {
            if let i = config.lanes.firstIndex(where: { $0.name == LaneConfig.batch }) { config.lanes[i].maxInflightShare = v < 1 ? v : nil }
        }
        if let n = m["lease"], let v = r.duration(n, "batch.lease") {
            if v < .seconds(1) { r.fail("batch.lease", "must be at least 1s", n) } else { config.batch.lease = v }
        }
        if let n = m["max_file_bytes"], let v = r.int(n, "batch.max_file_bytes", min: 1024) { config.batch.maxFileBytes = v }
        if let n = m["max_file_lines"], let v = r.int(n, "batch.max_file_lines", min: 1) { config.batch.maxFileLines = v }
        if let n = m["concurrency"], let v = r.int(n, "batch.concurrency", min: 1, max: 10_000) { config.batch.concurrency = v }
    }

    static func isPostgresURL(_ text: String) -> Bool {
        guard let components = URLComponents(string: text) else { return false }
        return ["postgres", "postgresql"].contains(components.scheme ?? "") && components.host != nil
    }

    /// False (after saying so) when a PostgreSQL URL carries a literal password.
    static func postgresURLHasNoPassword(_ text: String, _ path: String, _ fileField: String, _ node: Node, reader r: inout YAMLReader) -> Bool {
        guard let password = URLComponents(string: text)?.password, !(password.hasPrefix("${") && password.hasSuffix("}")) else { return true }
        r.fail(path, "has a password in it; give it as ${ENV_VAR} in the URL or in \(fileField), never in the YAML", node)
        return false
    }

    static func decodeSharedLimits(_ node: Node, into config: inout GatewayConfig, reader r: inout YAMLReader) {
        guard let m = r.mapping(node, "limits", allowed: ["shared", "password_file", "sync_interval"]) else { return }
        var interval = Duration.seconds(1)
        if let n = m["sync_interval"], let v = r.duration(n, "limits.sync_interval") {
            if v < .milliseconds(100) || v > .seconds(60) { r.fail("limits.sync_interval", "must be between 100ms and 60s", n) } else { interval = v }
        }
        let passwordFile = m["password_file"].flatMap { r.readableFile($0, "limits.password_file") }
        guard let n = m["shared"], let url = r.string(n, "limits.shared") else {
            if m["shared"] == nil { r.fail("limits.shared", "required: the postgres:// URL the replicas share", node) }
            return
        }
        guard isPostgresURL(url) else {
            r.fail("limits.shared", "expected postgres://user@host:port/database, got '\(url)'", n)
            return
        }
        guard postgresURLHasNoPassword(url, "limits.shared", "limits.password_file", n, reader: &r) else { return }
        var shared = SharedLimitsConfig(url: url)
        shared.passwordFile = passwordFile
        shared.syncInterval = interval
        config.limits = shared
    }
}
