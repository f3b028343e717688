import Foundation
import Logging
import SwitchyardBatch
import Testing

/// A fresh, empty store per test: a SQLite file in a temporary folder, or a new database on the
/// PostgreSQL that `scripts/test` starts (`SWITCHYARD_TEST_POSTGRES`).
enum TestDatabases {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case sqlite, postgres
        var testDescription: String { rawValue }
    }

    static var postgresURL: String? { ProcessInfo.processInfo.environment["SWITCHYARD_TEST_POSTGRES"] }

    static let missingPostgres: Comment =
        "SWITCHYARD_TEST_POSTGRES is not set: run the tests through scripts/test (it starts a throwaway PostgreSQL), or export the URL of one"

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
            let url = try #require(postgresURL, missingPostgres)
            let (database, dropped) = try await freshPostgres(url)
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

    /// A new database on the server of `url`; its URL and how to drop it.
    static func freshPostgres(_ url: String) async throws -> (String, @Sendable () async throws -> Void) {
        let admin = try PostgresDatabase(#require(PostgresDatabase.Target(url: url)), logger: Logger(label: "test-pg-admin"))
        let name = "sy_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await admin.query("CREATE DATABASE \(name)", [])
        var components = try #require(URLComponents(string: url))
        components.path = "/\(name)"
        let fresh = try #require(components.string)
        return (
            fresh,
            {
                _ = try? await admin.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)", [])
                await admin.close()
            }
        )
    }
}
