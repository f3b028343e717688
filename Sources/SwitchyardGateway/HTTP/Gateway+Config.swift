import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import SwitchyardScheduling
import UnixSignals

/// The configuration lifecycle: reload (SIGHUP, file change, `POST /admin/config`), validation
/// before anything changes, one-step apply, rollback, and what is in force.
extension Gateway {
    package struct ReloadOutcome: Sendable {
        package enum Result: String, Sendable {
            case applied
            /// Nothing to change (the same settings).
            case unchanged
            /// Invalid, or changes that need a restart: nothing was changed.
            case refused
        }

        package var result: Result
        /// The hash in force afterwards.
        package var hash: String
        package var changes: [ConfigDiff.Change] = []
        package var issues: [ConfigIssue] = []
    }

    /// Validates `text` and applies it in one step, or refuses it, naming its fields, and keeps
    /// the configuration in force. Requests in flight finish under the settings they started
    /// with; queued ones wait on under the new lane policies; a backend left out is drained.
    package func reload(text: String, origin: String) -> ReloadOutcome {
        reloading.withLock { generation in
            generation += 1
            let old = live.current
            var next: GatewayConfig
            do throws(ConfigError) {
                next = try source.build(text)
            } catch {
                return refused(error.issues, origin: origin, hash: old.hash)
            }
            // Replicas Switchyard started itself stay as they are: they follow `managed`, which
            // only a restart changes.
            for i in next.models.indices {
                let running = old.config.model(named: next.models[i].name)?.backends.filter(\.managed) ?? []
                next.models[i].backends.removeAll(where: \.managed)
                next.models[i].backends += running
            }
            let diff = ConfigDiff(from: old.config, to: next)
            let restart = diff.restartIssues
            guard restart.isEmpty else { return refused(restart, origin: origin, hash: old.hash) }
            let active = ActiveConfig(config: next, text: text, origin: origin)
            if diff.isEmpty, active.hash == old.hash {
                metrics.configReload(result: "unchanged")
                logger.info("configuration unchanged", metadata: ["origin": "\(origin)", "hash": "\(old.hash)"])
                return ReloadOutcome(result: .unchanged, hash: old.hash)
            }
            apply(next, over: old.config)
            live.replace(with: active)
            metrics.configInfo(hash: active.hash)
            metrics.configReload(result: "applied")
            logger.info(
                "configuration reloaded",
                metadata: ["origin": "\(origin)", "hash": "\(active.hash)", "previous": "\(old.hash)", "changes": "\(diff.changes.count)"])
            for change in diff.changes { logger.info("config change", metadata: ["change": "\(change)"]) }
            return ReloadOutcome(result: .applied, hash: active.hash, changes: diff.changes)
        }
    }

    /// Back to the configuration in force before the last reload (which becomes the previous one).
    package func rollback() -> ReloadOutcome? {
        guard let previous = live.previous else { return nil }
        return reload(text: previous.text, origin: "rollback")
    }

    private func refused(_ issues: [ConfigIssue], origin: String, hash: String) -> ReloadOutcome {
        metrics.configReload(result: "refused")
        logger.error(
            "configuration refused; the one in force keeps serving",
            metadata: ["origin": "\(origin)", "hash": "\(hash)", "problems": "\(issues.map(\.description).joined(separator: "; "))"])
        return ReloadOutcome(result: .refused, hash: hash, issues: issues)
    }

    /// Pools first, so a request that reads the new configuration finds its lane in the pool.
    private func apply(_ next: GatewayConfig, over old: GatewayConfig) {
        let weights = Dictionary(next.tenants.map { ($0.name, $0.weight) }, uniquingKeysWith: { a, _ in a })
        for model in next.models {
            guard let pool = pools[model.name] else { continue }
            let done = pool.reconfigure(model: model, lanes: next.lanes, tenantWeights: weights)
            admit(pool, done)
            for index in done.retiring {
                logger.info(
                    "backend left out of the configuration: draining", metadata: ["model": "\(model.name)", "backend": "\(model.name)-\(index)"])
            }
        }
        if next.retry != old.retry { proxy.retrySettingsChanged(next.retry) }
        if next.tenants != old.tenants { quotas.replan(QuotaBook.Plan(next.tenants)) }
    }

    /// Reads the `--config` file and applies it (SIGHUP, or the file changed).
    @discardableResult
    func reloadFile(origin: String) -> ReloadOutcome? {
        guard let file = source.file else {
            logger.warning("reload asked for, but the gateway was started without --config: nothing to read", metadata: ["origin": "\(origin)"])
            return nil
        }
        guard let text = Self.readConfigFile(file) else {
            logger.error("configuration file cannot be read; the one in force keeps serving", metadata: ["file": "\(file)"])
            metrics.configReload(result: "refused")
            return nil
        }
        return reload(text: text, origin: origin)
    }

    /// Reads the listener's certificate, key and client CA again (SIGHUP): new connections get
    /// them; a failure is logged and the ones in force keep serving.
    package func reloadTLS() {
        guard let tls = listenerTLS.withLock({ $0 }) else { return }
        do {
            let notAfter = try tls.reload()
            metrics.tlsReload(result: "applied")
            metrics.tlsCertificateExpiry(notAfter)
            logger.notice("TLS certificate reloaded", metadata: ["cert": "\(tls.config.certFile)", "not_after": "\(notAfter)"])
        } catch {
            metrics.tlsReload(result: "failed")
            logger.error("TLS certificate reload failed; the one in force keeps serving", metadata: ["error": "\(error)"])
        }
    }

    static func readConfigFile(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).flatMap { String(data: $0, encoding: .utf8) }
    }

    // MARK: - Admin API

    /// `GET /admin/config`: what is in force, since when, from where, and the one before.
    func adminConfig() -> Response {
        let current = live.current
        let previous = live.previous
        return GatewayResponses.json(
            .object([
                ("hash", .string(current.hash)), ("origin", .string(current.origin)),
                ("loaded_at", .number(Int(current.loadedAt.timeIntervalSince1970))),
                ("file", source.file.map(JSONValue.string) ?? .null),
                ("previous_hash", previous.map { .string($0.hash) } ?? .null),
                ("yaml", .string(current.text)),
            ]))
    }

    /// `POST /admin/config` (body: the whole YAML) and `POST /admin/config/rollback`.
    func adminReload(_ outcome: ReloadOutcome) -> Response {
        let changes = JSONValue.array(outcome.changes.map { .string($0.description) })
        guard outcome.result == .refused else {
            return GatewayResponses.json(
                .object([("result", .string(outcome.result.rawValue)), ("hash", .string(outcome.hash)), ("changes", changes)]))
        }
        let error = APIError(
            status: 400,
            message: "Configuration refused; the one in force (\(outcome.hash)) keeps serving. "
                + outcome.issues.map(\.description).joined(separator: "; "),
            type: "invalid_request_error", param: outcome.issues.first?.path, code: "invalid_config")
        return GatewayResponses.error(error)
    }
}

/// Reloads on SIGHUP and when the `--config` file changes. A mounted ConfigMap is updated by an
/// atomic symlink swap, which no inotify watch on the file sees; reading it every
/// `pollInterval` and comparing digests does.
struct ConfigWatcher: Service {
    let gateway: Gateway

    func run() async throws {
        let file = gateway.source.file
        let interval = gateway.source.pollInterval
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) {
                    gateway.logger.info("SIGHUP: reading the configuration again")
                    gateway.reloadTLS()
                    if file != nil { gateway.reloadFile(origin: "sighup") }
                }
            }
            if let file {
                group.addTask {
                    var seen = Gateway.readConfigFile(file).map(Digest.sha256Hex)
                    while !Task.isCancelled {
                        try? await Task.sleep(for: interval)
                        guard let text = Gateway.readConfigFile(file) else { continue }
                        let digest = Digest.sha256Hex(text)
                        guard digest != seen else { continue }
                        seen = digest
                        gateway.logger.info("configuration file changed", metadata: ["file": "\(file)"])
                        gateway.reload(text: text, origin: "file")
                    }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }
}
