import Foundation
import SwitchyardBatch
import SwitchyardCore
import Testing

/// The same store behaviour on SQLite and on a real PostgreSQL.
@Suite struct BatchStoreTests {
    static func lines(_ n: Int) -> [FileLine] {
        (1...n).map {
            FileLine(
                number: $0, customID: "req-\($0)",
                data: #"{"custom_id":"req-\#($0)","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}"#)
        }
    }

    static func file(_ id: String, tenant: String = "acme", lines: Int, at t: Int = 1000) -> StoredFile {
        var f = StoredFile(id: id, tenant: tenant, purpose: "batch", filename: "\(id).jsonl", bytes: lines * 100, lines: lines, createdAt: t)
        f.endpoints = ["/v1/chat/completions"]
        return f
    }

    static func addFile(_ store: BatchStore, _ file: StoredFile) async throws {
        let all = lines(file.lines)
        try await store.createFile(file) { insert in
            for start in stride(from: 0, to: all.count, by: 7) { try await insert(Array(all[start..<min(start + 7, all.count)])) }
        }
    }

    static func addBatch(_ store: BatchStore, _ id: String, file: StoredFile, at t: Int = 1000, expires: Int = 100_000) async throws -> StoredBatch {
        let batch = StoredBatch(
            id: id, tenant: file.tenant, endpoint: "/v1/chat/completions", inputFileID: file.id, completionWindow: "24h", status: .validating,
            total: file.lines, createdAt: t, expiresAt: expires)
        try await store.createBatch(batch)
        #expect(try await store.transition(id, from: [.validating], to: .inProgress, at: t))
        return batch
    }

    @Test(arguments: TestDatabases.Kind.allCases) func filesAreStoredListedAndKeptPerTenant(_ kind: TestDatabases.Kind) async throws {
        try await TestDatabases.withStore(kind) { store in
            #expect(try await store.schemaVersion == 1)
            try await store.migrate()  // again: nothing to do
            for i in 0..<5 { try await Self.addFile(store, Self.file("file-\(i)", lines: 3, at: 1000 + i)) }
            try await Self.addFile(store, Self.file("file-other", tenant: "other", lines: 2))
            let page1 = try await store.files(tenant: "acme", purpose: nil, after: nil, limit: 2)
            #expect(page1.map(\.id) == ["file-4", "file-3"], "newest first")
            let page2 = try await store.files(tenant: "acme", purpose: "batch", after: page1.last?.id, limit: 10)
            #expect(page2.map(\.id) == ["file-2", "file-1", "file-0"])
            #expect(try await store.file("file-other", tenant: "acme") == nil, "another tenant's file is not found")
            let f = try #require(try await store.file("file-1", tenant: "acme"))
            #expect(f.endpoints == ["/v1/chat/completions"])
            let content = try await store.content(of: f, after: 0, limit: 2)
            #expect(content.map(\.line) == [1, 2])
            #expect(try await store.content(of: f, after: 2, limit: 2).map(\.text) == [Self.lines(3)[2].data])
            #expect(try await store.deleteFile("file-1", tenant: "other") == false)
            #expect(try await store.deleteFile("file-1", tenant: "acme"))
            #expect(try await store.file("file-1", tenant: "acme") == nil)
        }
    }

    @Test(arguments: TestDatabases.Kind.allCases) func aFailedUploadLeavesNothing(_ kind: TestDatabases.Kind) async throws {
        try await TestDatabases.withStore(kind) { store in
            struct Broken: Error {}
            await #expect(throws: Broken.self) {
                try await store.createFile(Self.file("file-x", lines: 10)) { insert in
                    try await insert(Array(Self.lines(10).prefix(5)))
                    throw Broken()
                }
            }
            let stored = try await store.file("file-x", tenant: "acme")
            #expect(stored == nil)
            let rows = try await store.db.query("SELECT COUNT(*) FROM sy_file_lines", [])
            #expect(rows[0][0] == .int(0))
        }
    }

    @Test(arguments: TestDatabases.Kind.allCases) func leasesSplitWorkAndOnlyTheHolderAnswers(_ kind: TestDatabases.Kind) async throws {
        try await TestDatabases.withStore(kind) { store in
            let file = Self.file("file-a", lines: 10)
            try await Self.addFile(store, file)
            let batch = try await Self.addBatch(store, "batch_a", file: file)
            let a = try await store.claim(owner: "A", limit: 4, now: 0, leaseUntil: 1000)
            let b = try await store.claim(owner: "B", limit: 4, now: 0, leaseUntil: 1000)
            #expect(a.map(\.line) == [1, 2, 3, 4])
            #expect(b.map(\.line) == [5, 6, 7, 8])
            #expect(a[0].tenant == "acme" && a[0].endpoint == "/v1/chat/completions" && a[0].customID == "req-1" && a[0].attempts == 1)
            #expect(a[0].data.contains(#""custom_id":"req-1""#))

            // Only the lease holder's answer counts, and only once.
            #expect(try await store.finishItem(a[0], owner: "B", failed: false, result: "{}", now: 1) == false)
            #expect(try await store.finishItem(a[0], owner: "A", failed: false, result: #"{"n":1}"#, now: 1))
            #expect(try await store.finishItem(a[0], owner: "A", failed: false, result: #"{"n":2}"#, now: 1) == false)
            #expect(try await store.finishItem(b[0], owner: "B", failed: true, result: #"{"e":5}"#, now: 1))

            // A lapsed lease goes back to pending and to whoever claims next; the old holder's
            // late answer is dropped. A renewed lease is kept.
            try await store.renew(owner: "A", items: a.dropFirst().map { ($0.batchID, $0.line) }, until: 5000)
            #expect(try await store.reclaimExpired(now: 2000) == 3, "B's three open leases lapsed; A's were renewed")
            let c = try await store.claim(owner: "C", limit: 10, now: 2000, leaseUntil: 9000)
            #expect(c.map(\.line) == [6, 7, 8, 9, 10])
            #expect(c.first?.attempts == 2)
            #expect(try await store.finishItem(b[1], owner: "B", failed: false, result: "{}", now: 3) == false)

            // A retry waits until its time.
            try await store.retryItem(c[0], owner: "C", at: 3000)
            #expect(try await store.claim(owner: "C", limit: 10, now: 2500, leaseUntil: 9000).isEmpty)
            #expect(try await store.claim(owner: "C", limit: 10, now: 3000, leaseUntil: 9000).map(\.line) == [6])

            let counts = try await store.counts(batch.id)
            #expect(counts == ItemCounts(pending: 0, claimed: 8, done: 1, failed: 1))
            try await store.release(owner: "C")
            #expect(try await store.counts(batch.id).claimed == 3, "A's three")
        }
    }

    @Test(arguments: TestDatabases.Kind.allCases) func finishingWritesTheOutputAndErrorFiles(_ kind: TestDatabases.Kind) async throws {
        try await TestDatabases.withStore(kind) { store in
            let file = Self.file("file-a", lines: 3)
            try await Self.addFile(store, file)
            var batch = try await Self.addBatch(store, "batch_a", file: file)
            let items = try await store.claim(owner: "A", limit: 3, now: 0, leaseUntil: 1000)
            try await store.finishItem(items[0], owner: "A", failed: false, result: #"{"custom_id":"req-1"}"#, now: 1)
            try await store.finishItem(items[2], owner: "A", failed: false, result: #"{"custom_id":"req-3","é":1}"#, now: 1)
            try await store.finishItem(items[1], owner: "A", failed: true, result: #"{"custom_id":"req-2"}"#, now: 1)
            #expect(try await store.transition(batch.id, from: [.inProgress], to: .finalizing, at: 2000))
            #expect(try await store.finish(batch, as: .completed, from: [.finalizing], at: 2001))
            await #expect(throws: (any Error).self, "a second gateway finishing the same batch changes nothing") {
                try await store.finish(batch, as: .completed, from: [.finalizing], at: 2002)
            }
            batch = try #require(try await store.batch(batch.id, tenant: "acme"))
            #expect(batch.status == .completed && batch.completedAt == 2001 && batch.finalizingAt == 2000 && batch.inProgressAt == 1000)
            #expect(batch.completed == 2 && batch.failed == 1 && batch.total == 3)
            let outputID = try #require(batch.outputFileID)
            let output = try #require(try await store.file(outputID, tenant: "acme"))
            #expect(output.kind == .output && output.lines == 2 && output.purpose == "batch_output")
            #expect(output.bytes == #"{"custom_id":"req-1"}"#.utf8.count + #"{"custom_id":"req-3","é":1}"#.utf8.count + 2, "bytes, not characters")
            let outputLines = try await store.content(of: output, after: 0, limit: 10).map(\.text)
            #expect(outputLines == [#"{"custom_id":"req-1"}"#, #"{"custom_id":"req-3","é":1}"#])
            let errorID = try #require(batch.errorFileID)
            let errors = try #require(try await store.file(errorID, tenant: "acme"))
            let errorLines = try await store.content(of: errors, after: 0, limit: 10).map(\.text)
            #expect(errorLines == [#"{"custom_id":"req-2"}"#])
            #expect(try await store.batch(batch.id, tenant: "other") == nil)
            #expect(try await store.activeBatches().isEmpty)
        }
    }

    @Test(arguments: TestDatabases.Kind.allCases) func expiryFailsWhatIsOpenAndListsPaginate(_ kind: TestDatabases.Kind) async throws {
        try await TestDatabases.withStore(kind) { store in
            let file = Self.file("file-a", lines: 4)
            try await Self.addFile(store, file)
            let batch = try await Self.addBatch(store, "batch_0", file: file, at: 1000, expires: 1500)
            for i in 1..<4 { _ = try await Self.addBatch(store, "batch_\(i)", file: file, at: 1000 + i) }
            let item = try await store.claim(owner: "A", limit: 1, now: 0, leaseUntil: 1000)[0]
            try await store.finishItem(item, owner: "A", failed: false, result: "{}", now: 1)
            try await store.failOpenItems(batch.id, error: ("batch_expired", "too late"), at: 2)
            #expect(try await store.counts(batch.id) == ItemCounts(done: 1, failed: 3))
            #expect(try await store.finish(batch, as: .expired, from: [.inProgress], at: 1600))
            let errors = try #require(try await store.batch(batch.id, tenant: "acme")?.errorFileID)
            let errorFile = try #require(try await store.file(errors, tenant: "acme"))
            let lines = try await store.content(of: errorFile, after: 0, limit: 10)
            #expect(lines.count == 3 && lines.allSatisfy { $0.text.contains(#""code":"batch_expired""#) })

            let first = try await store.batches(tenant: "acme", after: nil, limit: 3)
            #expect(first.map(\.id) == ["batch_3", "batch_2", "batch_1"])
            #expect(try await store.batches(tenant: "acme", after: "batch_1", limit: 3).map(\.id) == ["batch_0"])
            #expect(try await store.batches(tenant: "other", after: nil, limit: 3).isEmpty)
        }
    }
}
