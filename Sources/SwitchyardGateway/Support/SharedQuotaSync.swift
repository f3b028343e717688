import Foundation
import Logging
import ServiceLifecycle
import SwitchyardBatch
import SwitchyardCore
import SwitchyardScheduling

/// Shared quotas (`limits: { shared: postgres://… }`): every `sync_interval` this replica appends
/// the usage it admitted (per tenant and per tenant and lane) to `switchyard_quota_usage`, reads
/// what the other replicas appended since, and charges it to its own buckets and daily budgets.
/// Each replica then decides on (nearly) the cluster's usage. The bound: usage admitted
/// elsewhere in the last interval (plus one round trip) is not seen yet, so a tenant can exceed
/// a per-minute limit by at most what the other replicas admit for it in one interval.
///
/// When PostgreSQL cannot be reached, decisions go on per replica (logged, counted in
/// `switchyard_quota_sync_errors_total`) and the unshared usage is kept for the next round.
struct SharedQuotaSync: Service {
    let quotas: Quotas
    let db: any SQLDatabase
    let interval: Duration
    let logger: Logger
    let metrics: GatewayMetrics
    /// Unique per process: rows from an earlier run of this replica count as others'.
    let replica = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"

    static let schema = [
        """
        CREATE TABLE IF NOT EXISTS switchyard_quota_usage (
          id BIGSERIAL PRIMARY KEY, replica TEXT NOT NULL, tenant TEXT NOT NULL, lane TEXT NOT NULL,
          requests BIGINT NOT NULL, tokens BIGINT NOT NULL, day INTEGER NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())
        """,
        "CREATE INDEX IF NOT EXISTS switchyard_quota_usage_day ON switchyard_quota_usage (day)",
    ]
    /// Rows are read again this far below the last id seen, so one whose insert committed after a
    /// later id's is still counted (at most once: the ids are remembered).
    static let overlap: Int64 = 1000
    /// Sync failures, logged once, then every 30 s, then when they clear.
    let failures = RepeatedFailure()

    func run() async throws {
        var cursor: Int64 = 0
        var applied: Set<Int64> = []
        // Until the table is there and the day's usage is loaded, decisions are per replica.
        var started = false
        while !started {
            do {
                cursor = try await start()
                started = true
            } catch {
                failed("cannot start", error)
                guard await pause() else {
                    await db.close()
                    return
                }
            }
        }
        while await pause() {
            await round(&cursor, &applied)
        }
        // What was admitted since the last round is shared before the replica goes.
        await round(&cursor, &applied)
        await db.close()
    }

    /// Waits one interval; false when the gateway is shutting down.
    func pause() async -> Bool {
        do {
            try await cancelOnGracefulShutdown { [interval] in try await Task.sleep(for: interval) }
            return !Task.isCancelled
        } catch {
            return false
        }
    }

    /// Creates the table; charges today's usage (daily budgets) and the last minute's (buckets)
    /// of every replica; returns the id to read on from.
    func start() async throws -> Int64 {
        for statement in Self.schema { _ = try await db.query(statement, []) }
        let today = quotas.today
        let rows = try await db.query(
            "SELECT tenant, lane, SUM(requests)::bigint, SUM(tokens)::bigint, MAX(at) > now() - interval '60 seconds', MAX(id) FROM switchyard_quota_usage WHERE day = ? GROUP BY tenant, lane, at > now() - interval '60 seconds'",
            [.int(Int64(today))])
        var cursor: Int64 = 0
        for row in rows {
            guard let usage = Self.usage(row, day: today) else { continue }
            quotas.chargeForeign([usage], buckets: row[4] == .int(1))
            if case .int(let id) = row[5] { cursor = max(cursor, id) }
        }
        let last = try await db.query("SELECT COALESCE(MAX(id), 0) FROM switchyard_quota_usage", [])
        if case .int(let id)? = last.first?.first { cursor = max(cursor, id) }
        logger.info("shared quotas: on", metadata: ["replica": "\(replica)", "scopes_loaded": "\(rows.count)"])
        return cursor
    }

    func round(_ cursor: inout Int64, _ applied: inout Set<Int64>) async {
        let mine = quotas.drainUsage()
        do {
            if !mine.isEmpty {
                let values = Array(repeating: "(?, ?, ?, ?, ?, ?)", count: mine.count).joined(separator: ", ")
                let binds = mine.flatMap { u -> [SQLValue] in
                    [.text(replica), .text(u.tenant), .text(u.lane), .int(Int64(u.requests)), .int(Int64(u.tokens)), .int(Int64(u.day))]
                }
                _ = try await db.query("INSERT INTO switchyard_quota_usage (replica, tenant, lane, requests, tokens, day) VALUES \(values)", binds)
            }
        } catch {
            quotas.restoreUsage(mine)
            failed("cannot share usage", error)
            return
        }
        do {
            let rows = try await db.query(
                "SELECT tenant, lane, requests, tokens, day, id FROM switchyard_quota_usage WHERE id > ? AND replica <> ? ORDER BY id",
                [.int(cursor - Self.overlap), .text(replica)])
            var others: [QuotaBook.Usage] = []
            for row in rows {
                guard case .int(let id) = row[5], !applied.contains(id), case .int(let day) = row[4],
                    let usage = Self.usage([row[0], row[1], row[2], row[3]], day: Int(day))
                else { continue }
                applied.insert(id)
                others.append(usage)
                cursor = max(cursor, id)
            }
            applied = applied.filter { $0 > cursor - Self.overlap }
            quotas.chargeForeign(others)
            if case .recovered(let n, let seconds) = failures.succeeded() {
                logger.notice("shared quotas: PostgreSQL answers again; usage shared", metadata: ["errors": "\(n)", "after_s": "\(Int(seconds))"])
            }
        } catch {
            failed("cannot read the other replicas' usage", error)
        }
        if Int.random(in: 0..<600) == 0 {
            _ = try? await db.query("DELETE FROM switchyard_quota_usage WHERE at < now() - interval '2 days'", [])
        }
    }

    static func usage(_ row: [SQLValue], day: Int) -> QuotaBook.Usage? {
        guard case .text(let tenant) = row[0], case .text(let lane) = row[1] else { return nil }
        func int(_ v: SQLValue) -> Int {
            switch v {
            case .int(let i): Int(i)
            case .text(let t): Int(t) ?? Int(Double(t) ?? 0)
            default: 0
            }
        }
        return QuotaBook.Usage(tenant: tenant, lane: lane, requests: int(row[2]), tokens: int(row[3]), day: day)
    }

    /// Every failure is counted; the log says it once, then every 30 s, then when it clears.
    func failed(_ what: String, _ error: any Error) {
        metrics.quotaSyncError()
        switch failures.failed() {
        case .first: logger.warning("shared quotas: \(what); deciding on this replica's usage meanwhile", metadata: ["error": "\(error)"])
        case .still(let n, let seconds):
            logger.warning(
                "shared quotas: \(what), still", metadata: ["error": "\(error)", "for_s": "\(Int(seconds))", "errors_not_logged": "\(n)"])
        case .recovered, nil: break
        }
    }
}
