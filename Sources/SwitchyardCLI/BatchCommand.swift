import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardBatch
import SwitchyardCore

/// `switchyard batch submit|list|status|cancel`: OpenAI's Batch API from the command line,
/// against Switchyard (or any server that speaks it).
struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Submit batch files and follow batches (OpenAI's Files and Batches APIs).",
        subcommands: [Submit.self, List.self, Status.self, Cancel.self]
    )

    struct Connection: ParsableArguments {
        @Option(help: "The gateway, e.g. http://127.0.0.1:8080 (a /v1 suffix is fine).") var url = "http://127.0.0.1:8080"
        @Option(help: "API key (default: $SWITCHYARD_API_KEY or $OPENAI_API_KEY).") var apiKey: String?

        /// A failure to report without the usage text (the arguments were fine).
        struct Failure: Error, CustomStringConvertible {
            let description: String
            init(_ description: String) { self.description = description }
        }

        var base: String {
            var u = url
            while u.hasSuffix("/") { u.removeLast() }
            if u.hasSuffix("/v1") { u.removeLast(3) }
            return u + "/v1"
        }

        var key: String? {
            apiKey ?? ProcessInfo.processInfo.environment["SWITCHYARD_API_KEY"] ?? ProcessInfo.processInfo.environment["OPENAI_API_KEY"]
        }

        /// Sends a request; the JSON answer, or a clear error with the server's message.
        func call(
            _ method: HTTPMethod, _ path: String, json: JSONValue? = nil, body: HTTPClientRequest.Body? = nil, contentType: String? = nil
        )
            async throws -> JSONValue
        {
            var request = HTTPClientRequest(url: base + path)
            request.method = method
            if let key { request.headers.add(name: "authorization", value: "Bearer \(key)") }
            if let json {
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: json.serialized()))
            } else if let body {
                request.body = body
                if let contentType { request.headers.add(name: "content-type", value: contentType) }
            }
            let response: HTTPClientResponse
            do {
                response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
            } catch {
                throw Failure("\(method.rawValue) \(base + path): \(error)")
            }
            let bytes = try await response.body.collect(upTo: 1 << 30)
            let parsed = (try? JSONParser.parse(bytes.readableBytesView)) ?? .null
            guard response.status.code < 300 else {
                let message = parsed["error"]?["message"]?.stringValue ?? String(buffer: bytes)
                throw Failure("\(method.rawValue) \(path) answered \(response.status.code): \(message)")
            }
            return parsed
        }

        /// A file's content, streamed to `path`; its line count.
        func download(_ fileID: String, to handle: FileHandle) async throws -> Int {
            var request = HTTPClientRequest(url: base + "/files/\(fileID)/content")
            if let key { request.headers.add(name: "authorization", value: "Bearer \(key)") }
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
            guard response.status.code == 200 else { throw Failure("GET /files/\(fileID)/content answered \(response.status.code)") }
            var lines = 0
            for try await chunk in response.body {
                lines += chunk.readableBytesView.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
                try handle.write(contentsOf: Data(chunk.readableBytesView))
            }
            return lines
        }
    }

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a JSONL batch file, create the batch, and (with --wait) follow it to the end.",
            discussion: "Exit status with --wait: 0 completed, 1 failed, expired or cancelled.")

        @OptionGroup var connection: Connection
        @Argument(help: "The input file: one request per line (custom_id, method, url, body).") var file: String
        @Option(help: "The endpoint (default: the url of the file's first line).") var endpoint: String?
        @Option(help: "Completion window.") var completionWindow = "24h"
        @Option(help: "Metadata, KEY=VALUE (repeatable).") var metadata: [String] = []
        @Flag(help: "Wait for the batch to end, showing progress.") var wait = false
        @Option(help: "With --wait: write the output lines (then the error lines) here.") var out: String?

        func run() async throws {
            guard let handle = FileHandle(forReadingAtPath: file) else { throw ValidationError("cannot read '\(file)'") }
            let size = Int((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.intValue ?? 0)
            let endpoint = try self.endpoint ?? Self.firstURL(handle)
            try handle.seek(toOffset: 0)
            let boundary = "switchyard-" + BatchIDs.random(16)
            let head = ByteBuffer(
                string:
                    "--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\((file as NSString).lastPathComponent)\"\r\nContent-Type: application/jsonl\r\n\r\n"
            )
            let tail = ByteBuffer(string: "\r\n--\(boundary)--\r\n")
            let stream = AsyncStream<ByteBuffer> { continuation in
                continuation.yield(head)
                while let data = try? handle.read(upToCount: 1 << 20), !data.isEmpty { continuation.yield(ByteBuffer(bytes: data)) }
                continuation.yield(tail)
                continuation.finish()
            }
            let started = ContinuousClock.now
            FileHandle.standardError.write(Data("uploading \(file) (\(size) bytes)…\n".utf8))
            let uploaded = try await connection.call(
                .POST, "/files", body: .stream(stream, length: .known(Int64(head.readableBytes + size + tail.readableBytes))),
                contentType: "multipart/form-data; boundary=\(boundary)")
            guard let fileID = uploaded["id"]?.stringValue else { throw ValidationError("the upload answered no file id: \(uploaded)") }
            var fields: [(String, JSONValue)] = []
            for pair in metadata {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { throw ValidationError("--metadata expects KEY=VALUE, got '\(pair)'") }
                fields.append((String(kv[0]), .string(String(kv[1]))))
            }
            let batch = try await connection.call(
                .POST, "/batches",
                json: .object([
                    ("input_file_id", .string(fileID)), ("endpoint", .string(endpoint)), ("completion_window", .string(completionWindow)),
                    ("metadata", fields.isEmpty ? .null : .object(fields)),
                ]))
            guard let id = batch["id"]?.stringValue else { throw ValidationError("creating the batch answered no id: \(batch)") }
            print("file \(fileID) · batch \(id) · \(batch["request_counts"]?["total"]?.intValue ?? 0) requests")
            guard wait else { return }
            let final = try await Self.follow(id, connection: connection, started: started)
            let status = final["status"]?.stringValue ?? "?"
            let counts = final["request_counts"]
            print(
                "batch \(id) \(status): \(counts?["completed"]?.intValue ?? 0) completed, \(counts?["failed"]?.intValue ?? 0) failed of \(counts?["total"]?.intValue ?? 0)"
            )
            if let out {
                FileManager.default.createFile(atPath: out, contents: nil)
                guard let writer = FileHandle(forWritingAtPath: out) else { throw ValidationError("cannot write '\(out)'") }
                defer { try? writer.close() }
                var lines = 0
                for key in ["output_file_id", "error_file_id"] {
                    if let file = final[key]?.stringValue { lines += try await connection.download(file, to: writer) }
                }
                print("wrote \(lines) result lines to \(out)")
            }
            if status != "completed" { throw ExitCode(1) }
        }

        static func firstURL(_ handle: FileHandle) throws -> String {
            let head = (try? handle.read(upToCount: 1 << 20)) ?? Data()
            let first = head.split(separator: 10).first.map { Array($0) } ?? []
            guard let url = (try? JSONParser.parse(first))?["url"]?.stringValue else {
                throw ValidationError("the file's first line has no url; give --endpoint")
            }
            return url
        }

        /// Polls until the batch ends, drawing a progress line on stderr.
        static func follow(_ id: String, connection: Connection, started: ContinuousClock.Instant) async throws -> JSONValue {
            let tty = isatty(2) == 1
            while true {
                let batch = try await connection.call(.GET, "/batches/\(id)")
                let status = batch["status"]?.stringValue ?? ""
                let counts = batch["request_counts"]
                let line = BatchProgress.line(
                    status: status, done: counts?["completed"]?.intValue ?? 0, failed: counts?["failed"]?.intValue ?? 0,
                    total: counts?["total"]?.intValue ?? 0, elapsed: (ContinuousClock.now - started).seconds)
                FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + line : line + "\n").utf8))
                if ["completed", "failed", "expired", "cancelled"].contains(status) {
                    if tty { FileHandle.standardError.write(Data("\n".utf8)) }
                    return batch
                }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List batches, newest first.")
        @OptionGroup var connection: Connection
        @Option(help: "At most this many.") var limit = 20
        @Option(help: "Start after this batch id (the previous page's last).") var after: String?

        func run() async throws {
            let page = try await connection.call(.GET, "/batches?limit=\(limit)" + (after.map { "&after=\($0)" } ?? ""))
            print("ID                               STATUS       DONE  FAILED  TOTAL  CREATED")
            for b in page["data"]?.arrayValue ?? [] {
                let c = b["request_counts"]
                let created = Date(timeIntervalSince1970: Double(b["created_at"]?.intValue ?? 0))
                print(
                    (b["id"]?.stringValue ?? "").padding(toLength: 33, withPad: " ", startingAt: 0)
                        + (b["status"]?.stringValue ?? "").padding(toLength: 11, withPad: " ", startingAt: 0)
                        + String(format: " %5d  %6d  %5d  ", c?["completed"]?.intValue ?? 0, c?["failed"]?.intValue ?? 0, c?["total"]?.intValue ?? 0)
                        + ISO8601DateFormatter().string(from: created))
            }
            if page["has_more"]?.boolValue == true, let last = page["last_id"]?.stringValue { print("more: --after \(last)") }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a batch (its OpenAI batch object).")
        @OptionGroup var connection: Connection
        @Argument var id: String
        func run() async throws {
            print(String(decoding: try await connection.call(.GET, "/batches/\(id)").serialized(), as: UTF8.self))
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a batch (what finished is kept).")
        @OptionGroup var connection: Connection
        @Argument var id: String
        func run() async throws {
            let batch = try await connection.call(.POST, "/batches/\(id)/cancel")
            print("batch \(id) \(batch["status"]?.stringValue ?? "?")")
        }
    }
}
