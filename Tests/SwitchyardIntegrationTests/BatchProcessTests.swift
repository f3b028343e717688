import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// The batch product on the real binary: a gateway killed with SIGKILL mid-batch, restarted,
/// still answers every line exactly once (SQLite and PostgreSQL), and two gateways sharing one
/// PostgreSQL split one batch with no item lost or sent twice.
@Suite(.serialized, .tags(.timing)) struct BatchProcessTests {
    enum Store: String, CaseIterable { case sqlite, postgres }

    static func lines(_ n: Int) -> String {
        (1...n).map {
            #"{"custom_id":"req-\#($0)","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}],"tag":"b\#($0)"}}"#
        }.joined(separator: "\n") + "\n"
    }

    /// Uploads `text` and creates a batch on the gateway at `base` (…/v1); the batch id.
    static func submit(_ base: String, _ text: String) async throws -> String {
        let boundary = "b-\(UUID().uuidString)"
        let body =
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\r\n"
            + text + "\r\n--\(boundary)--\r\n"
        let uploaded = try await TestClient.post(base + "/files", body, contentType: "multipart/form-data; boundary=\(boundary)")
        let file = try #require(try JSONParser.parse(uploaded.body)["id"]?.stringValue, "\(uploaded.body)")
        let created = try await TestClient.post(base + "/batches", #"{"input_file_id":"\#(file)","endpoint":"/v1/chat/completions"}"#)
        return try #require(try JSONParser.parse(created.body)["id"]?.stringValue, "\(created.body)")
    }

    static func batch(_ base: String, _ id: String) async throws -> JSONValue {
        try JSONParser.parse(try await TestClient.get(base + "/batches/\(id)").body)
    }

    /// The output file's lines once the batch completed (nil if it did not within `timeout`).
    static func output(_ base: String, _ id: String, timeout: Duration = .seconds(60)) async throws -> [JSONValue]? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let b = try await batch(base, id)
            if b["status"] == .string("completed"), let file = b["output_file_id"]?.stringValue {
                let text = try await TestClient.get(base + "/files/\(file)/content").body
                return try text.split(separator: "\n").map { try JSONParser.parse(String($0)) }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    static func config(_ dir: URL, store: String?, upstream: Int) throws -> String {
        let path = dir.appendingPathComponent("serve.yaml").path
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try """
        models:
          - name: m
            backends: [{ url: "http://127.0.0.1:\(upstream)/delay-100/v1", max_inflight: 8 }]
        batch: { \(store.map { "store: \"\($0)\", " } ?? "")lease: 2s, concurrency: 8 }
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(arguments: Store.allCases) func aGatewayKilledMidBatchFinishesItAfterARestart(_ store: Store) async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        var fresh: (url: String, drop: @Sendable () async throws -> Void)?
        if store == .postgres {
            let server = try #require(TestPostgres.url, TestPostgres.missing)
            fresh = try await TestPostgres.freshDatabase(server)
        }
        let pg = fresh
        let dir = ManagedServeTests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = try Self.config(dir, store: pg?.url, upstream: port)
            let first = try await ManagedServeTests.Served(arguments: ["--config", config], dataDir: dir)
            let id = try await Self.submit(first.base, Self.lines(60))
            #expect(await Poll.until(.seconds(20)) { upstream.arrivals.count >= 12 }, "items are running")
            let sentBeforeKill = upstream.arrivals.count
            first.kill9()
            _ = await first.stop()

            let second = try await ManagedServeTests.Served(arguments: ["--config", config], dataDir: dir)
            let output = try await Self.output(second.base, id)
            let lines = try #require(output, "the batch completes after the restart: \(second.logText.suffix(2000))")
            let ids = lines.compactMap { $0["custom_id"]?.stringValue }
            #expect(ids.count == 60, "one output line per input line")
            #expect(Set(ids) == Set((1...60).map { "req-\($0)" }))
            #expect(lines.allSatisfy { $0["response"]?["status_code"] == .number(200) })
            // Items in flight at the kill were sent again (at least once upstream, once in the output).
            #expect(upstream.arrivals.count >= 60 && sentBeforeKill < 60)
            let counts = try await Self.batch(second.base, id)["request_counts"]
            #expect(counts?["completed"] == .number(60) && counts?["failed"] == .number(0))
            _ = await second.stop()
        }
        try await pg?.drop()
    }

    @Test func twoGatewaysOnOnePostgresSplitABatchWithNoItemLostOrSentTwice() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let server = try #require(TestPostgres.url, TestPostgres.missing)
        let (url, drop) = try await TestPostgres.freshDatabase(server)
        let dirs = [ManagedServeTests.tempDir(), ManagedServeTests.tempDir()]
        defer { for d in dirs { try? FileManager.default.removeItem(at: d) } }
        let upstream = TestUpstream()
        try await upstream.run { port in
            let a = try await ManagedServeTests.Served(
                arguments: ["--config", try Self.config(dirs[0], store: url, upstream: port)], dataDir: dirs[0])
            let b = try await ManagedServeTests.Served(
                arguments: ["--config", try Self.config(dirs[1], store: url, upstream: port)], dataDir: dirs[1])
            let id = try await Self.submit(a.base, Self.lines(200))
            let lines = try #require(try await Self.output(b.base, id), "the batch completes; b sees it through the shared store")
            #expect(lines.count == 200)
            #expect(Set(lines.compactMap { $0["custom_id"]?.stringValue }).count == 200)
            #expect(upstream.arrivals.count == 200, "no item was sent twice")
            #expect(Set(upstream.arrivals).count == 200)
            // Both gateways did part of it.
            for served in [a, b] {
                let metrics = try await TestClient.get(served.base.replacingOccurrences(of: "/v1", with: "/metrics")).body
                let done = metrics.split(separator: "\n").first { $0.hasPrefix(#"switchyard_batch_items_total{status="completed"}"#) }
                let n = done.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
                #expect(n > 0 && n < 200, "each gateway answered some items: \(n)")
            }
            _ = await a.stop()
            _ = await b.stop()
        }
        try await drop()
    }
}
