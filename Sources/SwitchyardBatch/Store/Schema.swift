/// The batch store's schema, one text for SQLite and PostgreSQL (BIGINT and TEXT only), as
/// numbered migrations. `BatchStore.migrate()` applies the ones a database has not seen, each in
/// its own transaction, and records them in `sy_migrations`.
enum Schema {
    static let migrations: [(version: Int, statements: [String])] = [
        (
            1,
            [
                """
                CREATE TABLE sy_files (
                    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, purpose TEXT NOT NULL, filename TEXT NOT NULL,
                    bytes BIGINT NOT NULL, lines BIGINT NOT NULL, created_at BIGINT NOT NULL,
                    kind TEXT NOT NULL, batch_id TEXT, endpoints TEXT NOT NULL DEFAULT '', deleted BIGINT NOT NULL DEFAULT 0)
                """,
                "CREATE INDEX sy_files_tenant ON sy_files (tenant, created_at)",
                """
                CREATE TABLE sy_file_lines (
                    file_id TEXT NOT NULL, line_no BIGINT NOT NULL, custom_id TEXT NOT NULL, data TEXT NOT NULL,
                    PRIMARY KEY (file_id, line_no))
                """,
                """
                CREATE TABLE sy_batches (
                    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, endpoint TEXT NOT NULL, input_file_id TEXT NOT NULL,
                    completion_window TEXT NOT NULL, status TEXT NOT NULL, metadata TEXT, errors TEXT,
                    output_file_id TEXT, error_file_id TEXT, total BIGINT NOT NULL,
                    created_at BIGINT NOT NULL, in_progress_at BIGINT, expires_at BIGINT NOT NULL, finalizing_at BIGINT,
                    completed_at BIGINT, failed_at BIGINT, expired_at BIGINT, cancelling_at BIGINT, cancelled_at BIGINT)
                """,
                "CREATE INDEX sy_batches_tenant ON sy_batches (tenant, created_at)",
                "CREATE INDEX sy_batches_status ON sy_batches (status)",
                """
                CREATE TABLE sy_items (
                    batch_id TEXT NOT NULL, line_no BIGINT NOT NULL, custom_id TEXT NOT NULL,
                    state TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0,
                    lease_owner TEXT, lease_until BIGINT NOT NULL DEFAULT 0, available_at BIGINT NOT NULL DEFAULT 0,
                    result TEXT, updated_at BIGINT NOT NULL DEFAULT 0,
                    PRIMARY KEY (batch_id, line_no), UNIQUE (batch_id, custom_id))
                """,
                "CREATE INDEX sy_items_state ON sy_items (state, available_at)",
            ]
        )
    ]
}
