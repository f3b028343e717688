import Foundation
import SwitchyardCore
import Synchronization

/// A configuration in force, with what is derived from it once.
package final class ActiveConfig: Sendable {
    package let config: GatewayConfig
    /// The first 16 hex digits of the SHA-256 of the text it came from (what
    /// `switchyard_config_info{hash}` and `/admin/config` show; `sha256sum` of the ConfigMap's file
    /// gives the same digits).
    package let hash: String
    /// The YAML it came from (secrets are only references in it); empty when made from flags.
    package let text: String
    /// How it came into force: `startup`, `sighup`, `file`, `admin`, `rollback`.
    package let origin: String
    package let loadedAt: Date
    /// API keys (by their SHA-256) → tenant names.
    let tenantKeys: TenantKeys
    /// Tenants' `limits.concurrent_streams`.
    let streamLimits: [String: Int]

    init(config: GatewayConfig, text: String, origin: String, loadedAt: Date = Date()) {
        self.config = config
        self.text = text
        self.origin = origin
        self.loadedAt = loadedAt
        hash = Self.hash(text.isEmpty ? String(describing: config) : text)
        tenantKeys = TenantKeys(config.tenants)
        streamLimits = Dictionary(
            config.tenants.compactMap { t in t.maxConcurrentStreams.map { (t.name, $0) } }, uniquingKeysWith: { a, _ in a })
    }

    static func hash(_ text: String) -> String { String(Digest.sha256Hex(text).prefix(16)) }
}

/// Where the gateway's configuration comes from, so it can be read again: on SIGHUP, when the
/// file changes (a ConfigMap update), on `POST /admin/config`.
package struct ConfigSource: Sendable {
    /// The file given with `--config`; nil: flags only (SIGHUP has nothing to read).
    package var file: String?
    /// The text the configuration at start came from.
    package var text: String
    /// Text → configuration, with the same flags and defaults as at start.
    package var build: @Sendable (String) throws(ConfigError) -> GatewayConfig
    /// How often the file is looked at for changes.
    package var pollInterval: Duration = .seconds(2)

    package init(
        file: String? = nil, text: String = "", pollInterval: Duration = .seconds(2),
        build: @escaping @Sendable (String) throws(ConfigError) -> GatewayConfig = { text throws(ConfigError) in try ConfigLoader.load(yaml: text) }
    ) {
        self.file = file
        self.text = text
        self.pollInterval = pollInterval
        self.build = build
    }
}

/// The configuration in force and the one before it (for rollback), swapped in one step.
final class LiveConfig: Sendable {
    private let state: Mutex<(current: ActiveConfig, previous: ActiveConfig?)>

    init(_ initial: ActiveConfig) { state = Mutex((initial, nil)) }

    var current: ActiveConfig { state.withLock { $0.current } }
    var previous: ActiveConfig? { state.withLock { $0.previous } }

    func replace(with next: ActiveConfig) {
        state.withLock { $0 = (next, $0.current) }
    }
}

/// Streaming requests in flight per tenant (`limits.concurrent_streams`).
final class StreamCounts: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    /// Takes a slot for `tenant`; false (nothing taken) when it already has `limit` streams.
    func acquire(_ tenant: String, limit: Int) -> Bool {
        counts.withLock { map in
            let now = map[tenant, default: 0]
            guard now < limit else { return false }
            map[tenant] = now + 1
            return true
        }
    }

    func release(_ tenant: String) {
        counts.withLock { map in
            let left = map[tenant, default: 1] - 1
            map[tenant] = left > 0 ? left : nil
        }
    }

    func count(_ tenant: String) -> Int { counts.withLock { $0[tenant] ?? 0 } }
}
