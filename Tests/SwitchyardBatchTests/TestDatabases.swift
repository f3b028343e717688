import Foundation
import Logging
import SwitchyardBatch
import SwitchyardTestSupport
import Testing

/// A fresh, empty store per test: a SQLite file in a temporary folder, or a new database on the
/// PostgreSQL that `scripts/test` starts (`SWITCHYARD_TEST_POSTGRES`).
enum TestDatabases {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case sqlite, postgres
        var testDescription: String { rawValue }
    }

    /// Runs `body` with a migrated store on a database of its own, removed afterwards.
    static func withStore<T: Sendable>(_ kind: Kind, _ body: (BatchStore) async throws -> T) async throws -> T {
        switch kind {
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-batch-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let db = try SQLiteDatabase(path: dir.appendingPathComponent("batch.sqlite").path)
            let store = BatchStore(db: db)
            try await store.migrate()
            do {
                let result = try await body(store)
                await db.close()
                return result
            } catch {
                await db.close()
                throw error
            }
        case .postgres:
            let url = try #require(TestPostgres.url, TestPostgres.missing)
            let (database, dropped) = try await TestPostgres.freshDatabase(url)
            let db = try PostgresDatabase(#require(PostgresDatabase.Target(url: database)), logger: Logger(label: "test-pg"))
            let store = BatchStore(db: db)
            do {
                try await store.migrate()
                let result = try await body(store)
                await db.close()
                try await dropped()
                return result
            } catch {
                await db.close()
                try? await dropped()
                throw error
            }
        }
    }
}
