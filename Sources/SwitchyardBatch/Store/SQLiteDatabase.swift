import Foundation
import GRDB
import Synchronization

/// SQLite through GRDB: one connection in WAL mode. Every statement and transaction goes
/// through one async lock, so a transaction's statements may await between them (as the
/// PostgreSQL store's do) without another caller's statement slipping in.
///
/// An exclusive `flock` on `PATH.lock` keeps a second process off the same file: several
/// gateways share batch work through PostgreSQL, not SQLite.
package final class SQLiteDatabase: SQLDatabase {
    package let dialect = SQLDialect.sqlite
    private let queue: DatabaseQueue
    private let lock = AsyncLock()
    private let lockFD: Int32

    package init(path: String) throws {
        let fd = open(path + ".lock", O_CREAT | O_RDWR, 0o644)
        guard fd >= 0 else { throw SQLError("cannot open \(path).lock: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Foundation.close(fd)
            throw SQLError(
                "\(path) is in use by another switchyard process; several gateways share batch work through PostgreSQL (batch.store: postgres://…)")
        }
        lockFD = fd
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(5)
        // A transaction spans several accesses (its statements may await in between); the
        // async lock above keeps everyone else out meanwhile.
        configuration.allowsUnsafeTransactions = true
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            Foundation.close(fd)
            throw error
        }
    }

    deinit { Foundation.close(lockFD) }

    package func query(_ sql: String, _ binds: [SQLValue]) async throws -> [[SQLValue]] {
        try await lock.withLock { try run(sql, binds) }
    }

    package func transaction<T: Sendable>(_ body: @Sendable (any SQLExecutor) async throws -> T) async throws -> T {
        try await lock.withLock {
            _ = try run("BEGIN IMMEDIATE", [])
            do {
                let result = try await body(Locked(database: self))
                _ = try run("COMMIT", [])
                return result
            } catch {
                _ = try? run("ROLLBACK", [])
                throw error
            }
        }
    }

    package func close() async {
        try? queue.close()
    }

    /// Statements inside a transaction: the lock is already held.
    private struct Locked: SQLExecutor {
        let database: SQLiteDatabase
        func query(_ sql: String, _ binds: [SQLValue]) async throws -> [[SQLValue]] { try database.run(sql, binds) }
    }

    fileprivate func run(_ sql: String, _ binds: [SQLValue]) throws -> [[SQLValue]] {
        let arguments = StatementArguments(
            binds.map { value -> (any DatabaseValueConvertible)? in
                switch value {
                case .null: nil
                case .int(let v): v
                case .text(let v): v
                }
            })
        return try queue.inDatabase { db in
            let statement = try db.makeStatement(sql: sql)
            try statement.setArguments(arguments)
            guard statement.columnCount > 0 else {
                try statement.execute()
                return []
            }
            return try Row.fetchAll(statement).map { row in
                (0..<row.count).map { i in
                    switch (row[i] as DatabaseValue).storage {
                    case .null: .null
                    case .int64(let v): .int(v)
                    case .double(let v): .int(Int64(v))
                    case .string(let v): .text(v)
                    case .blob(let d): .text(String(decoding: d, as: UTF8.self))
                    }
                }
            }
        }
    }
}

/// A FIFO async mutex: waiters resume in arrival order.
package final class AsyncLock: Sendable {
    private let state = Mutex<(locked: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    package init() {}

    package func withLock<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { s -> Bool in
                if !s.locked {
                    s.locked = true
                    return true
                }
                s.waiters.append(c)
                return false
            }
            if granted { c.resume() }
        }
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.locked = false
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
