import SwitchyardCore

/// OpenAI's batch statuses.
package enum BatchStatus: String, Sendable, CaseIterable {
    case validating, failed
    case inProgress = "in_progress"
    case finalizing, completed, expired, cancelling, cancelled

    /// No more work will be done on it.
    package var isTerminal: Bool { [.failed, .completed, .expired, .cancelled].contains(self) }
}

/// A file as the Files API describes it. Input files hold their lines; output and error files
/// are drawn from their batch's finished items.
package struct StoredFile: Sendable, Equatable {
    package enum Kind: String, Sendable { case input, output, error }

    package var id: String
    package var tenant: String
    package var purpose: String
    package var filename: String
    package var bytes: Int
    package var lines: Int
    package var createdAt: Int
    package var kind: Kind = .input
    package var batchID: String?
    /// The `url`s its lines call (input files).
    package var endpoints: [String] = []

    package init(id: String, tenant: String, purpose: String, filename: String, bytes: Int, lines: Int, createdAt: Int) {
        self.id = id
        self.tenant = tenant
        self.purpose = purpose
        self.filename = filename
        self.bytes = bytes
        self.lines = lines
        self.createdAt = createdAt
    }

    /// OpenAI's file object.
    package var json: JSONValue {
        .object([
            ("id", .string(id)), ("object", .string("file")), ("bytes", .number(bytes)), ("created_at", .number(createdAt)),
            ("filename", .string(filename)), ("purpose", .string(purpose)), ("status", .string("processed")),
            ("status_details", .null),
        ])
    }
}

/// One input line of a file, validated at upload.
package struct FileLine: Sendable, Equatable {
    package var number: Int
    package var customID: String
    package var data: String

    package init(number: Int, customID: String, data: String) {
        self.number = number
        self.customID = customID
        self.data = data
    }
}

/// A batch as the Batches API describes it.
package struct StoredBatch: Sendable, Equatable {
    package var id: String
    package var tenant: String
    package var endpoint: String
    package var inputFileID: String
    package var completionWindow: String
    package var status: BatchStatus
    /// JSON text of `metadata` and `errors`, as given or produced.
    package var metadata: String?
    package var errors: String?
    package var outputFileID: String?
    package var errorFileID: String?
    package var total: Int
    package var completed = 0
    package var failed = 0
    /// Unix seconds.
    package var createdAt: Int
    package var expiresAt: Int
    package var inProgressAt: Int?
    package var finalizingAt: Int?
    package var completedAt: Int?
    package var failedAt: Int?
    package var expiredAt: Int?
    package var cancellingAt: Int?
    package var cancelledAt: Int?

    package init(
        id: String, tenant: String, endpoint: String, inputFileID: String, completionWindow: String, status: BatchStatus, total: Int,
        createdAt: Int, expiresAt: Int
    ) {
        self.id = id
        self.tenant = tenant
        self.endpoint = endpoint
        self.inputFileID = inputFileID
        self.completionWindow = completionWindow
        self.status = status
        self.total = total
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    /// OpenAI's batch object.
    package var json: JSONValue {
        func time(_ t: Int?) -> JSONValue { t.map { .number($0) } ?? .null }
        func parsed(_ text: String?) -> JSONValue { text.flatMap { try? JSONParser.parse($0) } ?? .null }
        return .object([
            ("id", .string(id)), ("object", .string("batch")), ("endpoint", .string(endpoint)), ("errors", parsed(errors)),
            ("input_file_id", .string(inputFileID)), ("completion_window", .string(completionWindow)), ("status", .string(status.rawValue)),
            ("output_file_id", outputFileID.map(JSONValue.string) ?? .null), ("error_file_id", errorFileID.map(JSONValue.string) ?? .null),
            ("created_at", .number(createdAt)), ("in_progress_at", time(inProgressAt)), ("expires_at", .number(expiresAt)),
            ("finalizing_at", time(finalizingAt)), ("completed_at", time(completedAt)), ("failed_at", time(failedAt)),
            ("expired_at", time(expiredAt)), ("cancelling_at", time(cancellingAt)), ("cancelled_at", time(cancelledAt)),
            ("request_counts", .object([("total", .number(total)), ("completed", .number(completed)), ("failed", .number(failed))])),
            ("metadata", parsed(metadata)),
        ])
    }
}

/// An item a worker holds a lease on.
package struct ClaimedItem: Sendable, Equatable {
    package var batchID: String
    package var line: Int
    package var customID: String
    /// Attempts so far, this one included.
    package var attempts: Int
    package var tenant: String
    package var endpoint: String
    /// The input line (JSON text): its `body` is what is sent.
    package var data: String
}

/// Items of one batch by state.
package struct ItemCounts: Sendable, Equatable {
    package var pending = 0
    package var claimed = 0
    package var done = 0
    package var failed = 0

    package init(pending: Int = 0, claimed: Int = 0, done: Int = 0, failed: Int = 0) {
        self.pending = pending
        self.claimed = claimed
        self.done = done
        self.failed = failed
    }

    package var open: Int { pending + claimed }
}
