import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardBatch
import SwitchyardCore
import SwitchyardGateway
import SwitchyardTestSupport
import Testing

/// The Files and Batches APIs end to end on a gateway with a SQLite store and its worker, in
/// front of a test upstream.
@Suite(.tags(.timing)) struct BatchAPITests {
    static func line(_ i: Int, model: String = "m", extra: String = "") -> String {
        #"{"custom_id":"req-\#(i)","method":"POST","url":"/v1/chat/completions","body":{"model":"\#(model)","messages":[{"role":"user","content":"hi \#(i)"}],"max_tokens":3,"tag":"b\#(i)"\#(extra)}}"#
    }

    static func jsonl(_ n: Int, extra: (Int) -> String = { _ in "" }) -> String {
        (1...n).map { line($0, extra: extra($0)) }.joined(separator: "\n") + "\n"
    }

    /// `POST /v1/files` as multipart, like the openai client.
    static func upload(_ base: String, _ text: String, key: String? = nil, purpose: String = "batch") async throws -> TestClient.Reply {
        let boundary = "----switchyard\(UUID().uuidString)"
        var body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n\(purpose)\r\n"
        body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n"
        body += text + "\r\n--\(boundary)--\r\n"
        return try await TestClient.post(
            base + "/v1/files", body, contentType: "multipart/form-data; boundary=\(boundary)",
            headers: key.map { ["authorization": "Bearer \($0)"] } ?? [:])
    }

    static func call(_ method: HTTPMethod, _ url: String, _ body: String? = nil, key: String? = nil) async throws -> (Int, JSONValue, String) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let key { request.headers.add(name: "authorization", value: "Bearer \(key)") }
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await TestClient.http.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 64 << 20))
        return (Int(response.status.code), (try? JSONParser.parse(text)) ?? .null, text)
    }

    static func createBatch(_ base: String, file: String, key: String? = nil, metadata: String = "null") async throws -> JSONValue {
        let (status, json, text) = try await call(
            .POST, base + "/v1/batches",
            #"{"input_file_id":"\#(file)","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":\#(metadata)}"#,
            key: key)
        #expect(status == 200, "\(text)")
        return json
    }

    /// Polls the batch until it is in `status` (or the deadline passes); its last state.
    static func waitFor(
        _ base: String, _ id: String, _ status: String, key: String? = nil, timeout: Duration = .seconds(20)
    ) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        var last = JSONValue.null
        while ContinuousClock.now < deadline {
            last = try await call(.GET, base + "/v1/batches/\(id)", key: key).1
            if last["status"]?.stringValue == status { return last }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("batch \(id) did not reach \(status): \(last)")
        return last
    }

    @Test func aBatchRunsThroughTheGatewayAndEveryInputLineHasOneOutputLine() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [
                ModelConfig(name: "m", backends: [BackendConfig(url: "http://127.0.0.1:\(port)/ok/v1", maxInflight: 4)])
            ])
            try await GatewayHarness.withBatch(config) { _, base, _ in
                // Line 7 fails at the gateway (a client error): it goes to the error file, once.
                let text = Self.jsonl(30).replacingOccurrences(of: #"[{"role":"user","content":"hi 7"}]"#, with: "[]")
                let uploaded = try await Self.upload(base, text)
                #expect(uploaded.status == 200, "\(uploaded.body)")
                let file = try JSONParser.parse(uploaded.body)
                #expect(file["object"] == .string("file") && file["purpose"] == .string("batch") && file["bytes"] == .number(text.utf8.count))
                let fileID = try #require(file["id"]?.stringValue)
                let content = try await Self.call(.GET, base + "/v1/files/\(fileID)/content").2
                #expect(content == text, "the input file reads back as uploaded")

                let created = try await Self.createBatch(base, file: fileID, metadata: #"{"job":"nightly"}"#)
                #expect(created["status"] == .string("validating"))
                #expect(created["metadata"]?["job"] == .string("nightly"))
                let id = try #require(created["id"]?.stringValue)
                let done = try await Self.waitFor(base, id, "completed")
                #expect(done["request_counts"]?["total"] == .number(30))
                #expect(done["request_counts"]?["completed"] == .number(29))
                #expect(done["request_counts"]?["failed"] == .number(1))
                for field in ["in_progress_at", "finalizing_at", "completed_at"] { #expect(done[field]?.intValue != nil, "\(field)") }

                let outputID = try #require(done["output_file_id"]?.stringValue)
                let output = try await Self.call(.GET, base + "/v1/files/\(outputID)/content").2.split(separator: "\n").map {
                    try JSONParser.parse(String($0))
                }
                #expect(output.count == 29)
                #expect(Set(output.compactMap { $0["custom_id"]?.stringValue }) == Set((1...30).filter { $0 != 7 }.map { "req-\($0)" }))
                #expect(output.allSatisfy { $0["response"]?["status_code"] == .number(200) && $0["error"] == .null })
                #expect(output.allSatisfy { $0["id"]?.stringValue?.hasPrefix("batch_req_") == true })
                #expect(output.first?["response"]?["body"]?["object"] == .string("chat.completion"))
                let errorID = try #require(done["error_file_id"]?.stringValue)
                let errors = try await Self.call(.GET, base + "/v1/files/\(errorID)/content").2.split(separator: "\n").map {
                    try JSONParser.parse(String($0))
                }
                #expect(errors.count == 1)
                #expect(errors.first?["custom_id"] == .string("req-7"))
                #expect(errors.first?["response"]?["status_code"] == .number(400))
                #expect(errors.first?["response"]?["body"]?["error"]?["type"] == .string("invalid_request_error"))
                // Each line was sent once (no retries for these answers), through the batch lane.
                #expect(upstream.arrivals.sorted() == (1...30).filter { $0 != 7 }.map { "b\($0)" }.sorted())
                let metrics = try await TestClient.get(base + "/metrics").body
                #expect(metrics.contains(#"switchyard_batch_items_total{status="completed"} 29"#))
                #expect(metrics.contains(#"switchyard_requests_total{model="m",lane="batch""#), "items went through the batch lane")

                // Lists paginate with a cursor.
                _ = try await Self.createBatch(base, file: fileID)
                _ = try await Self.createBatch(base, file: fileID)
                let page1 = try await Self.call(.GET, base + "/v1/batches?limit=2").1
                #expect(page1["data"]?.arrayValue?.count == 2 && page1["has_more"] == .bool(true))
                let last = try #require(page1["last_id"]?.stringValue)
                let page2 = try await Self.call(.GET, base + "/v1/batches?limit=2&after=\(last)").1
                #expect(page2["data"]?.arrayValue?.map { $0["id"] } == [.string(id)] && page2["has_more"] == .bool(false))
                let files = try await Self.call(.GET, base + "/v1/files").1
                #expect(files["data"]?.arrayValue?.contains { $0["id"] == .string(outputID) && $0["purpose"] == .string("batch_output") } == true)
            }
        }
    }

    @Test func aBadFileIsRefusedWithItsLinesAndNothingIsStored() async throws {
        let config = GatewayHarness.config(models: [ModelConfig(name: "m", backends: [])])
        try await GatewayHarness.withBatch(config) { _, base, _ in
            let text = Self.line(1) + "\n{oops\n" + Self.line(1) + "\n" + Self.line(4, model: "gpt-9") + "\n"
            let refused = try await Self.upload(base, text)
            #expect(refused.status == 400)
            let error = try JSONParser.parse(refused.body)["error"]
            let message = error?["message"]?.stringValue ?? ""
            #expect(message.contains("line 2: not valid JSON"), "\(message)")
            #expect(message.contains("line 3: custom_id 'req-1' is used by an earlier line"), "\(message)")
            #expect(message.contains("line 4: body.model 'gpt-9' is not served here"), "\(message)")
            #expect(error?["param"] == .string("file") && error?["code"] == .string("invalid_file"))
            #expect(try await Self.call(.GET, base + "/v1/files").1["data"]?.arrayValue?.isEmpty == true)
            #expect(try await Self.upload(base, Self.line(1), purpose: "fine-tune").status == 400)
            let notMultipart = try await TestClient.post(base + "/v1/files", "{}")
            #expect(notMultipart.status == 400)
            let missing = try await Self.call(.POST, base + "/v1/batches", #"{"input_file_id":"file-nope","endpoint":"/v1/chat/completions"}"#)
            #expect(missing.0 == 404 && missing.1["error"]?["code"] == .string("not_found"))
        }
    }

    @Test func anotherTenantSeesNeitherTheFileNorTheBatch() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [ModelConfig(name: "m", backends: [BackendConfig(url: "http://127.0.0.1:\(port)/ok/v1")])]) {
                $0.tenants = [
                    TenantConfig(name: "a", apiKeySHA256: Digest.sha256Hex("key-a")),
                    TenantConfig(name: "b", apiKeySHA256: Digest.sha256Hex("key-b")),
                ]
            }
            try await GatewayHarness.withBatch(config) { _, base, _ in
                #expect(try await Self.upload(base, Self.jsonl(2)).status == 401, "no key, no upload")
                let fileID = try #require(try JSONParser.parse(try await Self.upload(base, Self.jsonl(2), key: "key-a").body)["id"]?.stringValue)
                let batchID = try #require(try await Self.createBatch(base, file: fileID, key: "key-a")["id"]?.stringValue)
                let done = try await Self.waitFor(base, batchID, "completed", key: "key-a")
                let outputID = try #require(done["output_file_id"]?.stringValue)
                for path in ["/v1/files/\(fileID)", "/v1/files/\(fileID)/content", "/v1/batches/\(batchID)", "/v1/files/\(outputID)/content"] {
                    #expect(try await Self.call(.GET, base + path, key: "key-b").0 == 404, "\(path)")
                    #expect(try await Self.call(.GET, base + path, key: "key-a").0 == 200, "\(path)")
                }
                #expect(try await Self.call(.POST, base + "/v1/batches/\(batchID)/cancel", key: "key-b").0 == 404)
                #expect(try await Self.call(.DELETE, base + "/v1/files/\(fileID)", key: "key-b").0 == 404)
                #expect(try await Self.call(.GET, base + "/v1/batches", key: "key-b").1["data"]?.arrayValue?.isEmpty == true)
                let b = try await Self.call(
                    .POST, base + "/v1/batches", #"{"input_file_id":"\#(fileID)","endpoint":"/v1/chat/completions"}"#, key: "key-b")
                #expect(b.0 == 404, "tenant b cannot run a batch on a's file")
            }
        }
    }

    @Test func cancelKeepsWhatFinishedAndRealtimeIsServedAheadOfQueuedBatchItems() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            // Two slots; the batch lane may hold half of them, and the worker keeps 6 items going.
            let config = GatewayHarness.config(models: [
                ModelConfig(name: "m", backends: [BackendConfig(url: "http://127.0.0.1:\(port)/ok/v1", maxInflight: 2)])
            ]) {
                $0.batch.concurrency = 6
            }
            try await GatewayHarness.withBatch(config) { gateway, base, _ in
                let text = Self.jsonl(20) { _ in #","hold":true"# }
                let fileID = try #require(try JSONParser.parse(try await Self.upload(base, text).body)["id"]?.stringValue)
                let id = try #require(try await Self.createBatch(base, file: fileID)["id"]?.stringValue)
                // One item holds the batch lane's one slot (half of two); the rest wait in the lane.
                #expect(await Poll.until(.seconds(10)) { upstream.arrivals.count == 1 && gateway.pools["m"]?.queued(lane: "batch") ?? 0 >= 3 })
                let realtime = try await TestClient.post(base + "/v1/chat/completions", TestClient.chat(extra: #","tag":"rt""#))
                #expect(realtime.status == 200, "the free slot went to realtime: \(realtime.body)")
                #expect(upstream.arrivals.count == 2 && upstream.arrivals.last == "rt", "no second batch item ran: \(upstream.arrivals)")

                let cancelling = try await Self.call(.POST, base + "/v1/batches/\(id)/cancel").1
                #expect(cancelling["status"] == .string("cancelling") && cancelling["cancelling_at"]?.intValue != nil)
                upstream.release()
                let cancelled = try await Self.waitFor(base, id, "cancelled")
                #expect(cancelled["cancelled_at"]?.intValue != nil)
                let finished = cancelled["request_counts"]?["completed"]?.intValue ?? 0
                #expect(finished >= 1 && finished < 20, "what finished is kept, the rest never ran: \(cancelled)")
                let outputID = try #require(cancelled["output_file_id"]?.stringValue)
                let lines = try await Self.call(.GET, base + "/v1/files/\(outputID)/content").2.split(separator: "\n")
                #expect(lines.count == finished)
                #expect(try await Self.call(.POST, base + "/v1/batches/\(id)/cancel").1["status"] == .string("cancelled"))
            }
        }
    }

    @Test func failedItemsAreRetriedByTheLanePolicyAndAnExpiredBatchKeepsWhatFinished() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            // The backend answers 429 every time: each item is tried max_attempts (2) times, then
            // its last answer goes to the error file.
            let busy = GatewayHarness.config(models: [ModelConfig(name: "m", backends: [BackendConfig(url: "http://127.0.0.1:\(port)/status429/v1")])]
            ) {
                $0.retry.maxRetryAfter = .zero
                if let i = $0.lanes.firstIndex(where: { $0.name == "batch" }) { $0.lanes[i].retry.maxAttempts = 2 }
            }
            try await GatewayHarness.withBatch(busy) { _, base, _ in
                let fileID = try #require(try JSONParser.parse(try await Self.upload(base, Self.jsonl(2)).body)["id"]?.stringValue)
                let id = try #require(try await Self.createBatch(base, file: fileID)["id"]?.stringValue)
                let done = try await Self.waitFor(base, id, "completed", timeout: .seconds(30))
                #expect(done["request_counts"]?["failed"] == .number(2))
                let errorID = try #require(done["error_file_id"]?.stringValue)
                let errors = try await Self.call(.GET, base + "/v1/files/\(errorID)/content").2.split(separator: "\n").map {
                    try JSONParser.parse(String($0))
                }
                #expect(
                    errors.count == 2 && errors.allSatisfy { [.number(429), .number(503)].contains($0["response"]?["status_code"] ?? .null) },
                    "\(errors)")
                let metrics = try await TestClient.get(base + "/metrics").body
                #expect(metrics.contains(#"switchyard_batch_items_total{status="retried"} 2"#), "one retry per item")
            }

            // Items that never finish within the completion window fail with batch_expired; what
            // finished is kept in the output file.
            let held = GatewayHarness.config(models: [
                ModelConfig(name: "m", backends: [BackendConfig(url: "http://127.0.0.1:\(port)/ok/v1", maxInflight: 4)])
            ])
            try await GatewayHarness.withBatch(held) { _, base, _ in
                let text = Self.jsonl(4) { $0 == 1 ? "" : #","hold":true"# }
                let fileID = try #require(try JSONParser.parse(try await Self.upload(base, text).body)["id"]?.stringValue)
                let created = try await Self.call(
                    .POST, base + "/v1/batches", #"{"input_file_id":"\#(fileID)","endpoint":"/v1/chat/completions","completion_window":"2s"}"#)
                let id = try #require(created.1["id"]?.stringValue, "\(created.2)")
                let expired = try await Self.waitFor(base, id, "expired", timeout: .seconds(20))
                #expect(expired["expired_at"]?.intValue != nil)
                #expect(expired["request_counts"]?["completed"] == .number(1) && expired["request_counts"]?["failed"] == .number(3))
                let errorID = try #require(expired["error_file_id"]?.stringValue)
                let errors = try await Self.call(.GET, base + "/v1/files/\(errorID)/content").2
                #expect(errors.components(separatedBy: #""code":"batch_expired""#).count == 4, "\(errors)")
                #expect(expired["output_file_id"]?.stringValue != nil)
                upstream.release()
            }
        }
    }
}
