import Foundation
import Logging
import NIOCore
import SwitchyardCore

/// The Files and Batches APIs over a ``BatchStore``: what the gateway's routes call. Every
/// lookup is by tenant, so another tenant's file or batch is simply not found.
package final class BatchService: Sendable {
    package let store: BatchStore
    package let config: BatchConfig
    package let models: Set<String>
    /// Uploads are spooled here while they are validated.
    let spoolDirectory: String
    /// Rung when there is new work (a batch created or cancelled).
    package let wake = Doorbell()
    package let metrics = BatchMetrics()
    let logger: Logger

    package init(store: BatchStore, config: BatchConfig, models: Set<String>, spoolDirectory: String, logger: Logger) {
        self.store = store
        self.config = config
        self.models = models
        self.spoolDirectory = spoolDirectory
        self.logger = logger
    }

    /// Opens the configured store (SQLite in `dataDirectory` unless `batch.store` names a
    /// PostgreSQL) and brings its schema up to date.
    package static func open(
        config: BatchConfig, dataDirectory: String, models: Set<String>, environment: [String: String], logger: Logger
    ) async throws -> BatchService {
        let db: any SQLDatabase
        if let url = config.store {
            let target = try PostgresDatabase.Target(
                url: url, field: "batch.store", passwordFile: config.passwordFile, passwordField: "batch.password_file", environment: environment)
            db = try PostgresDatabase(target, logger: logger)
            logger.info("batch store: PostgreSQL", metadata: ["host": "\(target.host):\(target.port)", "database": "\(target.database)"])
        } else {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            let path = (dataDirectory as NSString).appendingPathComponent("batch.sqlite")
            db = try SQLiteDatabase(path: path)
            logger.info("batch store: SQLite", metadata: ["path": "\(path)"])
        }
        let store = BatchStore(db: db)
        do {
            try await store.migrate()
        } catch {
            await db.close()
            throw SQLError("batch store migration failed: \(error)")
        }
        let spool = (dataDirectory as NSString).appendingPathComponent("spool")
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        return BatchService(store: store, config: config, models: models, spoolDirectory: spool, logger: logger)
    }

    // MARK: Files

    /// `POST /v1/files`: streams the multipart body; the `file` part's lines are validated and
    /// spooled to disk as they arrive, and stored only when every line is valid.
    package func upload(tenant: String, contentType: String?, body: some AsyncSequence<ByteBuffer, any Error>) async -> Result<JSONValue, APIError> {
        guard let boundary = contentType.flatMap(MultipartParser.boundary(contentType:)) else {
            return .failure(.invalidRequest("Upload the file as multipart/form-data with fields 'purpose' and 'file'.", code: "invalid_content_type"))
        }
        let spoolPath = (spoolDirectory as NSString).appendingPathComponent("upload-\(BatchIDs.random(16)).jsonl")
        guard FileManager.default.createFile(atPath: spoolPath, contents: nil), let spool = FileHandle(forWritingAtPath: spoolPath) else {
            return .failure(.unavailable("The upload cannot be spooled to disk (\(spoolDirectory)).", code: "storage_unavailable"))
        }
        defer {
            try? spool.close()
            try? FileManager.default.removeItem(atPath: spoolPath)
        }
        var parser = MultipartParser(boundary: boundary)
        var splitter = LineSplitter(maxLineBytes: config.maxLineBytes)
        var validator = UploadValidator(models: models, maxLines: config.maxFileLines)
        var current: String?
        var purpose = ""
        var filename: String?
        var bytes = 0
        var out = Data()
        do {
            for try await chunk in body {
                try parser.feed(chunk.readableBytesView) { event in
                    switch event {
                    case .part(let headers):
                        let (name, file) = MultipartParser.disposition(headers["content-disposition"])
                        current = name
                        if name == "file" { filename = file ?? "upload.jsonl" }
                    case .data(let data):
                        if current == "purpose" {
                            purpose += String(decoding: data, as: UTF8.self)
                        } else if current == "file" {
                            bytes += data.count
                            if bytes > config.maxFileBytes { throw UploadTooLarge() }
                            try splitter.feed(data) { number, line in
                                if let valid = validator.check(number, line) { Self.spool(valid, into: &out) }
                            }
                        }
                    case .partEnd:
                        if current == "file" {
                            try splitter.finish { number, line in
                                if let valid = validator.check(number, line) { Self.spool(valid, into: &out) }
                            }
                        }
                        current = nil
                    case .end: break
                    }
                }
                if out.count > 1 << 20 {
                    try spool.write(contentsOf: out)
                    out.removeAll(keepingCapacity: true)
                }
            }
            try spool.write(contentsOf: out)
        } catch is UploadTooLarge {
            return .failure(
                APIError(
                    status: 413, message: "The file is larger than \(config.maxFileBytes) bytes (batch.max_file_bytes).",
                    type: "invalid_request_error",
                    param: "file", code: "file_too_large"))
        } catch let error as LineSplitter.TooLong {
            return .failure(.invalidRequest("The file is not a valid batch input: \(error).", param: "file", code: "invalid_file"))
        } catch {
            return .failure(.invalidRequest("Could not read the upload: \(error).", code: "invalid_upload"))
        }
        guard parser.isComplete else {
            return .failure(.invalidRequest("The multipart body ended before its closing boundary.", code: "invalid_upload"))
        }
        guard purpose.trimmingCharacters(in: .whitespacesAndNewlines) == "batch" else {
            return .failure(.invalidRequest("'purpose' must be 'batch' (the only purpose served here), got '\(purpose)'.", param: "purpose"))
        }
        guard let filename else { return .failure(.invalidRequest("The upload has no 'file' part.", param: "file")) }
        guard validator.problemCount == 0 else {
            return .failure(.invalidRequest(validator.message, param: "file", code: "invalid_file"))
        }
        guard validator.lines > 0 else { return .failure(.invalidRequest("The file has no requests.", param: "file", code: "invalid_file")) }
        var file = StoredFile(
            id: "file-" + BatchIDs.random(24), tenant: tenant, purpose: "batch", filename: filename, bytes: bytes, lines: validator.lines,
            createdAt: WallClock.unixSeconds())
        file.endpoints = validator.endpoints.sorted()
        do {
            try spool.close()
            try await store.createFile(file) { insert in try await Self.readSpool(spoolPath, chunk: 500, insert) }
        } catch {
            logger.error("storing an uploaded file failed", metadata: ["error": "\(error)"])
            return .failure(.unavailable("The file could not be stored: \(error).", code: "storage_error"))
        }
        logger.info("file uploaded", metadata: ["file": "\(file.id)", "tenant": "\(tenant)", "lines": "\(file.lines)", "bytes": "\(bytes)"])
        return .success(file.json)
    }

    struct UploadTooLarge: Error {}

    /// Spool format: `<line number> <custom_id length> <custom_id><json>\n`.
    static func spool(_ line: FileLine, into out: inout Data) {
        out.append(contentsOf: Array("\(line.number) \(line.customID.utf8.count) \(line.customID)".utf8))
        out.append(contentsOf: Array(line.data.utf8))
        out.append(10)
    }

    static func readSpool(_ path: String, chunk: Int, _ insert: ([FileLine]) async throws -> Void) async throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw SQLError("spool \(path) vanished") }
        defer { try? handle.close() }
        var splitter = LineSplitter(maxLineBytes: Int.max)
        var batch: [FileLine] = []
        func parse(_ bytes: [UInt8]) -> FileLine? {
            guard let s1 = bytes.firstIndex(of: 32), let number = Int(String(decoding: bytes[..<s1], as: UTF8.self)),
                let s2 = bytes[(s1 + 1)...].firstIndex(of: 32), let length = Int(String(decoding: bytes[(s1 + 1)..<s2], as: UTF8.self))
            else { return nil }
            let idStart = s2 + 1
            let idEnd = idStart + length
            return FileLine(
                number: number, customID: String(decoding: bytes[idStart..<idEnd], as: UTF8.self),
                data: String(decoding: bytes[idEnd...], as: UTF8.self))
        }
        while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
            var lines: [FileLine] = []
            try splitter.feed(data) { _, bytes in if let line = parse(bytes) { lines.append(line) } }
            batch += lines
            while batch.count >= chunk {
                try await insert(Array(batch.prefix(chunk)))
                batch.removeFirst(chunk)
            }
        }
        try splitter.finish { _, bytes in if let line = parse(bytes) { batch.append(line) } }
        if !batch.isEmpty { try await insert(batch) }
    }

    package func file(_ id: String, tenant: String) async -> Result<JSONValue, APIError> {
        do {
            guard let file = try await store.file(id, tenant: tenant) else { return .failure(Self.notFound("file", id)) }
            return .success(file.json)
        } catch {
            return .failure(storeError(error))
        }
    }

    package func files(tenant: String, purpose: String?, after: String?, limit: Int?) async -> Result<JSONValue, APIError> {
        let limit = min(max(limit ?? 100, 1), 10_000)
        do {
            let list = try await store.files(tenant: tenant, purpose: purpose, after: after, limit: limit + 1)
            return .success(Self.list(list.prefix(limit).map(\.json), ids: list.prefix(limit).map(\.id), hasMore: list.count > limit))
        } catch {
            return .failure(storeError(error))
        }
    }

    package func deleteFile(_ id: String, tenant: String) async -> Result<JSONValue, APIError> {
        do {
            guard try await store.deleteFile(id, tenant: tenant) else { return .failure(Self.notFound("file", id)) }
            return .success(.object([("id", .string(id)), ("object", .string("file")), ("deleted", .bool(true))]))
        } catch {
            return .failure(storeError(error))
        }
    }

    /// `GET /v1/files/{id}/content`: the file and its lines, read from the store a page at a time.
    package func content(_ id: String, tenant: String) async -> Result<(StoredFile, AsyncThrowingStream<ByteBuffer, any Error>), APIError> {
        let file: StoredFile
        do {
            guard let found = try await store.file(id, tenant: tenant) else { return .failure(Self.notFound("file", id)) }
            file = found
        } catch {
            return .failure(storeError(error))
        }
        let store = self.store
        let stream = AsyncThrowingStream<ByteBuffer, any Error> { continuation in
            let task = Task {
                var after = 0
                do {
                    while true {
                        let page = try await store.content(of: file, after: after, limit: 1000)
                        guard let last = page.last else { break }
                        var buffer = ByteBuffer()
                        for line in page {
                            buffer.writeString(line.text)
                            buffer.writeInteger(UInt8(10))
                        }
                        continuation.yield(buffer)
                        after = last.line
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        return .success((file, stream))
    }

    // MARK: Batches

    /// `POST /v1/batches {input_file_id, endpoint, completion_window, metadata}`.
    package func createBatch(tenant: String, body: ByteBuffer) async -> Result<JSONValue, APIError> {
        let json: JSONValue
        do {
            json = try JSONParser.parse(body.readableBytesView)
        } catch {
            return .failure(.invalidRequest("Invalid JSON: \(error).", code: "invalid_json"))
        }
        guard let fileID = json["input_file_id"]?.stringValue else {
            return .failure(.invalidRequest("'input_file_id' is required.", param: "input_file_id"))
        }
        guard let endpoint = json["endpoint"]?.stringValue, UploadValidator.endpoints.contains(endpoint) else {
            return .failure(
                .invalidRequest("'endpoint' must be one of \(UploadValidator.endpoints.joined(separator: ", ")).", param: "endpoint"))
        }
        let window = json["completion_window"]?.stringValue ?? "24h"
        guard let seconds = BatchLifecycle.windowSeconds(window) else {
            return .failure(
                .invalidRequest("'completion_window' must be a duration such as 24h (at most 7 days), got '\(window)'.", param: "completion_window"))
        }
        var metadata: String?
        if let m = json["metadata"], m != .null {
            guard case .object(let fields) = m, fields.count <= 16, fields.allSatisfy({ $0.1.stringValue != nil }) else {
                return .failure(.invalidRequest("'metadata' must be an object of at most 16 string values.", param: "metadata"))
            }
            metadata = String(decoding: m.serialized(), as: UTF8.self)
        }
        do {
            guard let file = try await store.file(fileID, tenant: tenant), file.kind == .input else {
                return .failure(Self.notFound("file", fileID))
            }
            guard file.endpoints == [endpoint] else {
                return .failure(
                    .invalidRequest(
                        "The file's requests call \(file.endpoints.joined(separator: ", ")); a batch for \(endpoint) needs every line's url to be \(endpoint).",
                        param: "endpoint"))
            }
            let now = WallClock.unixSeconds()
            var batch = StoredBatch(
                id: "batch_" + BatchIDs.random(24), tenant: tenant, endpoint: endpoint, inputFileID: fileID, completionWindow: window,
                status: .validating, total: file.lines, createdAt: now, expiresAt: now + seconds)
            batch.metadata = metadata
            try await store.createBatch(batch)
            wake.ring()
            logger.info("batch created", metadata: ["batch": "\(batch.id)", "tenant": "\(tenant)", "requests": "\(file.lines)"])
            return .success(batch.json)
        } catch {
            return .failure(storeError(error))
        }
    }

    package func batch(_ id: String, tenant: String) async -> Result<JSONValue, APIError> {
        do {
            guard let batch = try await store.batch(id, tenant: tenant) else { return .failure(Self.notFound("batch", id)) }
            return .success(batch.json)
        } catch {
            return .failure(storeError(error))
        }
    }

    package func batches(tenant: String, after: String?, limit: Int?) async -> Result<JSONValue, APIError> {
        let limit = min(max(limit ?? 20, 1), 100)
        do {
            let list = try await store.batches(tenant: tenant, after: after, limit: limit + 1)
            return .success(Self.list(list.prefix(limit).map(\.json), ids: list.prefix(limit).map(\.id), hasMore: list.count > limit))
        } catch {
            return .failure(storeError(error))
        }
    }

    /// `POST /v1/batches/{id}/cancel`: cancelling at once; cancelled once nothing runs any more.
    package func cancel(_ id: String, tenant: String) async -> Result<JSONValue, APIError> {
        do {
            guard let batch = try await store.batch(id, tenant: tenant) else { return .failure(Self.notFound("batch", id)) }
            switch batch.status {
            case .validating, .inProgress:
                try await store.transition(id, from: [.validating, .inProgress], to: .cancelling, at: WallClock.unixSeconds(), tenant: tenant)
                wake.ring()
            case .cancelling, .cancelled:
                break
            default:
                return .failure(.invalidRequest("Cannot cancel a batch that is \(batch.status.rawValue).", code: "invalid_state"))
            }
            return await self.batch(id, tenant: tenant)
        } catch {
            return .failure(storeError(error))
        }
    }

    // MARK: Helpers

    static func notFound(_ kind: String, _ id: String) -> APIError {
        APIError(status: 404, message: "No such \(kind): '\(id)'.", type: "invalid_request_error", param: "id", code: "not_found")
    }

    func storeError(_ error: any Error) -> APIError {
        logger.error("batch store error", metadata: ["error": "\(error)"])
        return .unavailable("The batch store failed: \(error).", code: "storage_error")
    }

    static func list(_ data: [JSONValue], ids: [String], hasMore: Bool) -> JSONValue {
        .object([
            ("object", .string("list")), ("data", .array(data)), ("first_id", ids.first.map(JSONValue.string) ?? .null),
            ("last_id", ids.last.map(JSONValue.string) ?? .null), ("has_more", .bool(hasMore)),
        ])
    }
}
