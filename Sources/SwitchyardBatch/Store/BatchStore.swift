import Foundation
import SwitchyardCore

/// Files, batches and their items on SQLite or PostgreSQL: the same SQL on both, but for the
/// claim's `FOR UPDATE SKIP LOCKED` on PostgreSQL (see ``SQLDialect``).
///
/// Items are claimed with leases; a result is written only by the lease holder of a claimed
/// item, so an item is answered once however often it was sent; a lapsed lease is reclaimed.
package final class BatchStore: Sendable {
    package let db: any SQLDatabase

    package init(db: any SQLDatabase) {
        self.db = db
    }

    /// Applies the migrations this database has not had yet.
    package func migrate() async throws {
        try await db.query("CREATE TABLE IF NOT EXISTS sy_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)", [])
        for migration in Schema.migrations {
            try await db.transaction { tx in
                if self.db.dialect == .postgres {
                    // Two gateways starting at once: one migrates, the other waits and skips.
                    try await tx.query("SELECT pg_advisory_xact_lock(7340031)", [])
                }
                let done = try await tx.query("SELECT 1 FROM sy_migrations WHERE version = ?", [SQLValue(migration.version)])
                guard done.isEmpty else { return }
                for statement in migration.statements { try await tx.query(statement, []) }
                try await tx.query(
                    "INSERT INTO sy_migrations (version, applied_at) VALUES (?, ?)", [SQLValue(migration.version), SQLValue(WallClock.unixSeconds())])
            }
        }
    }

    package var schemaVersion: Int {
        get async throws { Int(try await db.query("SELECT MAX(version) FROM sy_migrations", [])[0][0].int ?? 0) }
    }

    // MARK: Files

    /// Stores an input file: its row, then its lines as `lines` hands them over, all in one
    /// transaction (nothing of it is visible, or kept, unless every line went in).
    package func createFile(
        _ file: StoredFile, lines: @Sendable (_ insert: @Sendable ([FileLine]) async throws -> Void) async throws -> Void
    )
        async throws
    {
        try await db.transaction { tx in
            try await tx.query(
                "INSERT INTO sy_files (id, tenant, purpose, filename, bytes, lines, created_at, kind, batch_id, endpoints) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    .text(file.id), .text(file.tenant), .text(file.purpose), .text(file.filename), SQLValue(file.bytes), SQLValue(file.lines),
                    SQLValue(file.createdAt), .text(file.kind.rawValue), SQLValue(file.batchID), .text(file.endpoints.joined(separator: " ")),
                ])
            try await lines { chunk in
                guard !chunk.isEmpty else { return }
                let placeholders = Array(repeating: "(?, ?, ?, ?)", count: chunk.count).joined(separator: ", ")
                var binds: [SQLValue] = []
                binds.reserveCapacity(chunk.count * 4)
                for line in chunk { binds += [.text(file.id), SQLValue(line.number), .text(line.customID), .text(line.data)] }
                try await tx.query("INSERT INTO sy_file_lines (file_id, line_no, custom_id, data) VALUES \(placeholders)", binds)
            }
        }
    }

    private static let fileColumns = "id, tenant, purpose, filename, bytes, lines, created_at, kind, batch_id, endpoints"

    private static func file(_ row: [SQLValue]) -> StoredFile {
        var f = StoredFile(
            id: row[0].text ?? "", tenant: row[1].text ?? "", purpose: row[2].text ?? "", filename: row[3].text ?? "",
            bytes: Int(row[4].int ?? 0), lines: Int(row[5].int ?? 0), createdAt: Int(row[6].int ?? 0))
        f.kind = StoredFile.Kind(rawValue: row[7].text ?? "") ?? .input
        f.batchID = row[8].text
        f.endpoints = (row[9].text ?? "").split(separator: " ").map(String.init)
        return f
    }

    /// The file, if it exists for this tenant.
    package func file(_ id: String, tenant: String) async throws -> StoredFile? {
        try await db.query("SELECT \(Self.fileColumns) FROM sy_files WHERE id = ? AND tenant = ? AND deleted = 0", [.text(id), .text(tenant)])
            .first.map(Self.file)
    }

    /// The tenant's files, newest first, after the file `after` (a cursor).
    package func files(tenant: String, purpose: String?, after: String?, limit: Int) async throws -> [StoredFile] {
        var sql = "SELECT \(Self.fileColumns) FROM sy_files WHERE tenant = ? AND deleted = 0"
        var binds: [SQLValue] = [.text(tenant)]
        if let purpose {
            sql += " AND purpose = ?"
            binds.append(.text(purpose))
        }
        if let after {
            sql += " AND (created_at, id) < (SELECT created_at, id FROM sy_files WHERE id = ?)"
            binds.append(.text(after))
        }
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        binds.append(SQLValue(limit))
        return try await db.query(sql, binds).map(Self.file)
    }

    /// Deletes the file for this tenant; an input file's lines stay while a batch still uses them.
    package func deleteFile(_ id: String, tenant: String) async throws -> Bool {
        try await db.transaction { tx in
            let hit = try await tx.query(
                "UPDATE sy_files SET deleted = 1 WHERE id = ? AND tenant = ? AND deleted = 0 RETURNING id",
                [
                    .text(id), .text(tenant),
                ])
            guard !hit.isEmpty else { return false }
            let used = try await tx.query("SELECT 1 FROM sy_batches WHERE input_file_id = ? LIMIT 1", [.text(id)])
            if used.isEmpty { try await tx.query("DELETE FROM sy_file_lines WHERE file_id = ?", [.text(id)]) }
            return true
        }
    }

    /// A page of a file's content lines (without newlines), from line `after` on. Input files
    /// give their lines; output and error files their batch's finished items' result lines.
    package func content(of file: StoredFile, after line: Int, limit: Int) async throws -> [(line: Int, text: String)] {
        let rows: [[SQLValue]]
        switch file.kind {
        case .input:
            rows = try await db.query(
                "SELECT line_no, data FROM sy_file_lines WHERE file_id = ? AND line_no > ? ORDER BY line_no LIMIT ?",
                [.text(file.id), SQLValue(line), SQLValue(limit)])
        case .output, .error:
            rows = try await db.query(
                "SELECT line_no, result FROM sy_items WHERE batch_id = ? AND state = ? AND line_no > ? ORDER BY line_no LIMIT ?",
                [SQLValue(file.batchID), .text(file.kind == .output ? "done" : "failed"), SQLValue(line), SQLValue(limit)])
        }
        return rows.map { (Int($0[0].int ?? 0), $0[1].text ?? "") }
    }

    // MARK: Batches

    /// Creates the batch (status `validating`) and one pending item per line of its input file.
    package func createBatch(_ batch: StoredBatch) async throws {
        try await db.transaction { tx in
            try await tx.query(
                """
                INSERT INTO sy_batches (id, tenant, endpoint, input_file_id, completion_window, status, metadata, total, created_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(batch.id), .text(batch.tenant), .text(batch.endpoint), .text(batch.inputFileID), .text(batch.completionWindow),
                    .text(batch.status.rawValue), SQLValue(batch.metadata), SQLValue(batch.total), SQLValue(batch.createdAt),
                    SQLValue(batch.expiresAt),
                ])
            try await tx.query(
                "INSERT INTO sy_items (batch_id, line_no, custom_id, state) SELECT ?, line_no, custom_id, 'pending' FROM sy_file_lines WHERE file_id = ?",
                [.text(batch.id), .text(batch.inputFileID)])
        }
    }

    private static let batchColumns = """
        id, tenant, endpoint, input_file_id, completion_window, status, metadata, errors, output_file_id, error_file_id, total,
        created_at, expires_at, in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at
        """

    private static func batch(_ row: [SQLValue]) -> StoredBatch {
        func int(_ i: Int) -> Int? { row[i].int.map { Int($0) } }
        var b = StoredBatch(
            id: row[0].text ?? "", tenant: row[1].text ?? "", endpoint: row[2].text ?? "", inputFileID: row[3].text ?? "",
            completionWindow: row[4].text ?? "", status: BatchStatus(rawValue: row[5].text ?? "") ?? .failed, total: int(10) ?? 0,
            createdAt: int(11) ?? 0, expiresAt: int(12) ?? 0)
        b.metadata = row[6].text
        b.errors = row[7].text
        b.outputFileID = row[8].text
        b.errorFileID = row[9].text
        b.inProgressAt = int(13)
        b.finalizingAt = int(14)
        b.completedAt = int(15)
        b.failedAt = int(16)
        b.expiredAt = int(17)
        b.cancellingAt = int(18)
        b.cancelledAt = int(19)
        return b
    }

    /// The batch with its request counts; `tenant` nil: whoever owns it (the worker).
    package func batch(_ id: String, tenant: String?) async throws -> StoredBatch? {
        var sql = "SELECT \(Self.batchColumns) FROM sy_batches WHERE id = ?"
        var binds: [SQLValue] = [.text(id)]
        if let tenant {
            sql += " AND tenant = ?"
            binds.append(.text(tenant))
        }
        guard var b = try await db.query(sql, binds).first.map(Self.batch) else { return nil }
        let counts = try await counts(id)
        b.completed = counts.done
        b.failed = counts.failed
        return b
    }

    /// The tenant's batches, newest first, after the batch `after`.
    package func batches(tenant: String, after: String?, limit: Int) async throws -> [StoredBatch] {
        var sql = "SELECT \(Self.batchColumns) FROM sy_batches WHERE tenant = ?"
        var binds: [SQLValue] = [.text(tenant)]
        if let after {
            sql += " AND (created_at, id) < (SELECT created_at, id FROM sy_batches WHERE id = ?)"
            binds.append(.text(after))
        }
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        binds.append(SQLValue(limit))
        var list = try await db.query(sql, binds).map(Self.batch)
        guard !list.isEmpty else { return list }
        // Every listed batch's counts in one query.
        let rows = try await db.query(
            "SELECT batch_id, state, COUNT(*) FROM sy_items WHERE batch_id IN (\(Array(repeating: "?", count: list.count).joined(separator: ", "))) GROUP BY batch_id, state",
            list.map { .text($0.id) })
        let byBatch = Dictionary(grouping: rows, by: { $0[0].text ?? "" })
        for i in list.indices {
            let c = Self.counts((byBatch[list[i].id] ?? []).map { Array($0.dropFirst()) })
            list[i].completed = c.done
            list[i].failed = c.failed
        }
        return list
    }

    /// Batches some worker still has to act on.
    package func activeBatches() async throws -> [StoredBatch] {
        try await db.query(
            "SELECT \(Self.batchColumns) FROM sy_batches WHERE status IN ('validating', 'in_progress', 'finalizing', 'cancelling') ORDER BY created_at",
            []
        ).map(Self.batch)
    }

    package func counts(_ batchID: String) async throws -> ItemCounts {
        Self.counts(try await db.query("SELECT state, COUNT(*) FROM sy_items WHERE batch_id = ? GROUP BY state", [.text(batchID)]))
    }

    /// Items by state over every batch still being worked on (for the metrics).
    package func activeCounts() async throws -> ItemCounts {
        Self.counts(
            try await db.query(
                """
                SELECT i.state, COUNT(*) FROM sy_items i JOIN sy_batches b ON b.id = i.batch_id
                WHERE b.status IN ('in_progress', 'finalizing', 'cancelling') GROUP BY i.state
                """, []))
    }

    /// `(state, count)` rows → counts.
    private static func counts(_ rows: [[SQLValue]]) -> ItemCounts {
        var c = ItemCounts()
        for row in rows {
            let n = Int(row[1].int ?? 0)
            switch row[0].text {
            case "pending": c.pending = n
            case "claimed": c.claimed = n
            case "done": c.done = n
            case "failed": c.failed = n
            default: break
            }
        }
        return c
    }

    /// Moves the batch from one of `from` to `to`, stamping `to`'s timestamp; false when it was
    /// not in `from` (another gateway moved it first, or the tenant does not own it).
    @discardableResult
    package func transition(_ id: String, from: [BatchStatus], to: BatchStatus, at now: Int, tenant: String? = nil) async throws -> Bool {
        let stamp: String? =
            switch to {
            case .inProgress: "in_progress_at"
            case .finalizing: "finalizing_at"
            case .completed: "completed_at"
            case .failed: "failed_at"
            case .expired: "expired_at"
            case .cancelling: "cancelling_at"
            case .cancelled: "cancelled_at"
            case .validating: nil
            }
        var sql = "UPDATE sy_batches SET status = ?" + (stamp.map { ", \($0) = ?" } ?? "")
        var binds: [SQLValue] = [.text(to.rawValue)]
        if stamp != nil { binds.append(SQLValue(now)) }
        sql += " WHERE id = ? AND status IN (\(from.map { "'\($0.rawValue)'" }.joined(separator: ", ")))"
        binds.append(.text(id))
        if let tenant {
            sql += " AND tenant = ?"
            binds.append(.text(tenant))
        }
        return !(try await db.query(sql + " RETURNING id", binds)).isEmpty
    }

    /// Writes the output and error files of a finished batch (those with lines) and ends it in
    /// `status`. Safe to repeat: a gateway that died while finalizing is followed by another.
    package func finish(_ batch: StoredBatch, as status: BatchStatus, from: [BatchStatus], at now: Int) async throws -> Bool {
        try await db.transaction { tx in
            var fileIDs: [StoredFile.Kind: String] = [:]
            for kind in [StoredFile.Kind.output, .error] {
                let state = kind == .output ? "done" : "failed"
                let row = try await tx.query(
                    "SELECT COUNT(*), CAST(COALESCE(SUM(\(self.db.dialect.octetLength("result")) + 1), 0) AS BIGINT) FROM sy_items WHERE batch_id = ? AND state = ?",
                    [.text(batch.id), .text(state)])
                let lines = Int(row.first?[0].int ?? 0)
                guard lines > 0 else { continue }
                let id = "file-" + BatchIDs.random(24)
                try await tx.query(
                    "INSERT INTO sy_files (id, tenant, purpose, filename, bytes, lines, created_at, kind, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        .text(id), .text(batch.tenant), .text("batch_output"),
                        .text("\(batch.id)_\(kind.rawValue).jsonl"), .int(row.first?[1].int ?? 0), SQLValue(lines), SQLValue(now),
                        .text(kind.rawValue), .text(batch.id),
                    ])
                fileIDs[kind] = id
            }
            let stamp = status == .completed ? "completed_at" : status == .expired ? "expired_at" : "cancelled_at"
            let moved = try await tx.query(
                """
                UPDATE sy_batches SET status = ?, \(stamp) = ?, output_file_id = ?, error_file_id = ?
                WHERE id = ? AND status IN (\(from.map { "'\($0.rawValue)'" }.joined(separator: ", "))) RETURNING id
                """,
                [.text(status.rawValue), SQLValue(now), SQLValue(fileIDs[.output]), SQLValue(fileIDs[.error]), .text(batch.id)])
            if moved.isEmpty { throw Conflict() }
            return true
        }
    }

    /// Thrown inside ``finish`` to roll back when another gateway finished the batch first.
    struct Conflict: Error {}

    /// Marks `batch`'s unfinished items failed with `error` (expiry), as error-file lines.
    package func failOpenItems(_ batchID: String, error: (code: String, message: String), at now: Int64) async throws {
        let open = try await db.query(
            "SELECT line_no, custom_id FROM sy_items WHERE batch_id = ? AND state IN ('pending', 'claimed')",
            [
                .text(batchID)
            ])
        for row in open {
            let line = Int(row[0].int ?? 0)
            let customID = row[1].text ?? ""
            let text = BatchOutput.errorLine(customID: customID, code: error.code, message: error.message)
            try await db.query(
                "UPDATE sy_items SET state = 'failed', result = ?, lease_owner = NULL, updated_at = ? WHERE batch_id = ? AND line_no = ? AND state IN ('pending', 'claimed')",
                [.text(text), .int(now), .text(batchID), SQLValue(line)])
        }
    }

    // MARK: Items

    /// Returns lapsed leases to pending; the number reclaimed.
    package func reclaimExpired(now: Int64) async throws -> Int {
        try await db.query(
            "UPDATE sy_items SET state = 'pending', lease_owner = NULL WHERE state = 'claimed' AND lease_until < ? RETURNING line_no", [.int(now)]
        ).count
    }

    /// Returns every lease to pending (SQLite at start: this process is the only worker).
    package func releaseAll() async throws -> Int {
        try await db.query("UPDATE sy_items SET state = 'pending', lease_owner = NULL WHERE state = 'claimed' RETURNING line_no", []).count
    }

    /// Returns the leases `owner` holds on items not yet answered (a worker stopping).
    package func release(owner: String) async throws {
        try await db.query("UPDATE sy_items SET state = 'pending', lease_owner = NULL WHERE state = 'claimed' AND lease_owner = ?", [.text(owner)])
    }

    /// Claims up to `limit` pending items of in-progress batches, oldest batch first, with a
    /// lease until `leaseUntil` (ms). PostgreSQL skips rows other gateways are claiming.
    package func claim(owner: String, limit: Int, now: Int64, leaseUntil: Int64) async throws -> [ClaimedItem] {
        guard limit > 0 else { return [] }
        let keys = try await db.query(
            """
            UPDATE sy_items SET state = 'claimed', lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
            WHERE (batch_id, line_no) IN (
                SELECT i.batch_id, i.line_no FROM sy_items i JOIN sy_batches b ON b.id = i.batch_id
                WHERE b.status = 'in_progress' AND i.state = 'pending' AND i.available_at <= ?
                ORDER BY b.created_at, i.batch_id, i.line_no LIMIT ?\(db.dialect.skipLocked))
            RETURNING batch_id, line_no
            """,
            [.text(owner), .int(leaseUntil), .int(now), .int(now), SQLValue(limit)])
        guard !keys.isEmpty else { return [] }
        let pairs = Array(repeating: "(?, ?)", count: keys.count).joined(separator: ", ")
        let rows = try await db.query(
            """
            SELECT i.batch_id, i.line_no, i.custom_id, i.attempts, b.tenant, b.endpoint, l.data
            FROM sy_items i JOIN sy_batches b ON b.id = i.batch_id JOIN sy_file_lines l ON l.file_id = b.input_file_id AND l.line_no = i.line_no
            WHERE (i.batch_id, i.line_no) IN (VALUES \(pairs)) ORDER BY i.batch_id, i.line_no
            """,
            keys.flatMap { $0 })
        return rows.map {
            ClaimedItem(
                batchID: $0[0].text ?? "", line: Int($0[1].int ?? 0), customID: $0[2].text ?? "", attempts: Int($0[3].int ?? 0),
                tenant: $0[4].text ?? "", endpoint: $0[5].text ?? "", data: $0[6].text ?? "")
        }
    }

    /// Extends `owner`'s leases on these items.
    package func renew(owner: String, items: [(batchID: String, line: Int)], until: Int64) async throws {
        guard !items.isEmpty else { return }
        let pairs = Array(repeating: "(?, ?)", count: items.count).joined(separator: ", ")
        try await db.query(
            "UPDATE sy_items SET lease_until = ? WHERE state = 'claimed' AND lease_owner = ? AND (batch_id, line_no) IN (VALUES \(pairs))",
            [.int(until), .text(owner)] + items.flatMap { [SQLValue.text($0.batchID), SQLValue($0.line)] })
    }

    /// Records an item's answer (`done`: output file, `failed`: error file), only if `owner`
    /// still holds its lease; false otherwise (it was reclaimed, expired or cancelled).
    @discardableResult
    package func finishItem(_ item: ClaimedItem, owner: String, failed: Bool, result: String, now: Int64) async throws -> Bool {
        !(try await db.query(
            """
            UPDATE sy_items SET state = ?, result = ?, lease_owner = NULL, updated_at = ?
            WHERE batch_id = ? AND line_no = ? AND state = 'claimed' AND lease_owner = ? RETURNING line_no
            """,
            [.text(failed ? "failed" : "done"), .text(result), .int(now), .text(item.batchID), SQLValue(item.line), .text(owner)])).isEmpty
    }

    /// Puts an item back to pending, to be claimed again from `at` (ms) on.
    package func retryItem(_ item: ClaimedItem, owner: String, at: Int64) async throws {
        try await db.query(
            "UPDATE sy_items SET state = 'pending', lease_owner = NULL, available_at = ? WHERE batch_id = ? AND line_no = ? AND state = 'claimed' AND lease_owner = ?",
            [.int(at), .text(item.batchID), SQLValue(item.line), .text(owner)])
    }
}

/// Wall-clock time for stored timestamps.
package enum WallClock {
    package static func unixSeconds() -> Int { Int(unixMilliseconds() / 1000) }
    package static func unixMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
