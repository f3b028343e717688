import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import SwitchyardCore
import SwitchyardProbe

/// `switchyard probe path|storage|compare`: the serving path's hops and the storage under it, measured.
struct ProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Measure the serving path.",
        subcommands: [Path.self, Storage.self, Compare.self]
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, markdown, json }

    struct Storage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What AI workloads do to a filesystem: model load, checkpoint write, metadata pressure, small random reads.",
            discussion: """
                Writes only in a new folder under PATH and removes it afterwards. Model load reads a
                model-sized file with its page cache dropped (one stream, then --streams shards at once);
                checkpoint write writes the same size with --streams writers and fsync; metadata creates,
                stats, opens and unlinks --files small files in a tree; random reads are 4 KiB at random
                offsets. Each phase stops at --time-limit. --model-load-from puts a gateway's managed
                replicas' measured cold starts beside the raw read time.
                """
        )

        @Argument(help: "A folder on the filesystem to measure.") var path: String
        @Option(name: .customLong("size-mib"), help: "Model-sized file and checkpoint total, in MiB.") var sizeMiB: Int = 1024
        @Option(help: "Shards read and writers at once.") var streams: Int = 4
        @Option(help: "Small files in the metadata phase.") var files: Int = 2000
        @Option(name: .customLong("random-reads"), help: "4 KiB random reads.") var randomReads: Int = 4000
        @Option(name: .customLong("time-limit"), help: "Per phase (e.g. 60s).") var timeLimit: String = "60s"
        @Option(
            help: ArgumentHelp(
                "Only these phases, comma-separated: \(StorageProbe.phaseNames.joined(separator: ", ")).", valueName: "list"))
        var phases: String?
        @Option(name: .customLong("model-load-from"), help: "A gateway's base URL: its managed replicas' load times beside the raw read.")
        var modelLoadFrom: String?
        @Option(name: .customLong("admin-token"), help: "The gateway's admin token (with --model-load-from; default: $SWITCHYARD_ADMIN_TOKEN).")
        var adminToken: String?
        @Option(help: "table, markdown or json.") var format: Format = .table
        @Option(help: "Also write the JSON report here (for probe compare).") var out: String?

        func validate() throws {
            guard sizeMiB >= 1, sizeMiB <= 1 << 20 else { throw ValidationError("--size-mib must be 1…1048576") }
            guard (1...256).contains(streams) else { throw ValidationError("--streams must be 1…256") }
            guard (1...10_000_000).contains(files) else { throw ValidationError("--files must be 1…10000000") }
            guard randomReads >= 1 else { throw ValidationError("--random-reads must be at least 1") }
            guard Duration.parse(timeLimit).map({ $0 > .zero }) == true else { throw ValidationError("--time-limit: not a duration: '\(timeLimit)'") }
            if modelLoadFrom != nil, try !selectedPhases().contains("model_load_single") {
                throw ValidationError("--model-load-from compares with the one-stream model load: keep model_load_single in --phases")
            }
        }

        func selectedPhases() throws -> Set<String> {
            guard let phases else { return Set(StorageProbe.phaseNames) }
            let names = phases.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            if let unknown = names.first(where: { !StorageProbe.phaseNames.contains($0) }) {
                throw ValidationError("--phases: no phase '\(unknown)' (known: \(StorageProbe.phaseNames.joined(separator: ", ")))")
            }
            guard !names.isEmpty else { throw ValidationError("--phases: name at least one phase") }
            return Set(names)
        }

        func run() async throws {
            var settings = StorageProbe.Settings()
            settings.bytes = Int64(sizeMiB) << 20
            settings.streams = streams
            settings.files = files
            settings.randomReads = randomReads
            settings.timeLimit = Duration.parse(timeLimit) ?? .seconds(60)
            settings.phases = try selectedPhases()
            var report: StorageReport
            do {
                report = try StorageProbe(path: path, settings: settings).run { FileHandle.standardError.write(Data("\($0)\n".utf8)) }
            } catch {
                throw ValidationError(error.description)
            }
            if let gateway = modelLoadFrom { report.engineLoads = try await Self.engineLoads(gateway, token: adminToken) }
            switch format {
            case .table: print(report.table(), terminator: "")
            case .markdown: print(report.markdown(), terminator: "")
            case .json: print(report.json.serializedString)
            }
            if let out {
                do {
                    try report.json.serializedString.write(toFile: out, atomically: true, encoding: .utf8)
                } catch {
                    throw ValidationError("--out: cannot write \(out): \(error.localizedDescription)")
                }
            }
        }

        /// Managed replicas' measured load seconds from `/admin/backends`.
        static func engineLoads(_ gateway: String, token: String?) async throws -> [StorageReport.EngineLoad] {
            let body = try await AdminGet.fetch(gateway, "/admin/backends", token: token, timeout: 10)
            guard let json = try? JSONParser.parse(body.readableBytesView) else {
                throw ValidationError("--model-load-from: \(gateway)/admin/backends did not answer JSON")
            }
            var loads: [StorageReport.EngineLoad] = []
            for model in json["models"]?.arrayValue ?? [] {
                for b in model["backends"]?.arrayValue ?? [] {
                    if let seconds = b["load_seconds"]?.doubleValue {
                        loads.append(.init(replica: b["name"]?.stringValue ?? b["id"]?.stringValue ?? "?", loadSeconds: seconds))
                    }
                }
            }
            if loads.isEmpty { FileHandle.standardError.write(Data("warning: no managed replica at \(gateway) reports a load time\n".utf8)) }
            return loads
        }
    }

    struct Compare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Storage probe reports side by side (JSON from probe storage --format json or --out).")

        @Argument(help: "Two or more JSON reports.") var reports: [String]
        @Option(help: "table or markdown.") var format: Format = .table

        func run() async throws {
            guard reports.count >= 2 else { throw ValidationError("give two or more reports") }
            var loaded: [StorageReport] = []
            for file in reports {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8), let json = try? JSONParser.parse(text) else {
                    throw ValidationError("\(file): cannot read it as JSON")
                }
                do {
                    loaded.append(try StorageReport.decode(json, source: file))
                } catch {
                    throw ValidationError("\(error)")
                }
            }
            print(StorageComparison.table(loaded, markdown: format == .markdown), terminator: "")
        }
    }

    struct Path: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "DNS, TCP connect, TLS and time to first byte, straight to a server and through the gateway: what each hop adds.",
            discussion: """
                Each sample opens a new connection and sends a one-token chat completion (POST
                BASE/chat/completions, max_tokens 1). With --via, the same request through the gateway:
                the difference is what the gateway adds, and its Server-Timing header says where (queue,
                connect, backend, gateway overhead). Medians over --samples.
                """
        )

        @Argument(help: "A model server's OpenAI base URL (http[s]://host:port/v1).") var url: String
        @Option(help: "The gateway's OpenAI base URL, to compare with.") var via: String?
        @Option(help: "Model name to ask for (the gateway's public name with --via).") var model: String = "default"
        @Option(name: .customLong("backend-model"), help: "Model name the server itself expects (default: --model).") var backendModel: String?
        @Option(help: "Requests per path.") var samples: Int = 5
        @Option(help: "table or json.") var format: String = "table"
        @Option(name: .customLong("cacert"), help: "PEM file of the CA(s) to verify HTTPS servers with (instead of the system roots).")
        var caFile: String?
        @Flag(help: "Accept any TLS certificate (test servers).") var insecure = false

        func validate() throws {
            guard (1...1000).contains(samples) else { throw ValidationError("--samples must be 1…1000") }
            guard ["table", "json"].contains(format) else { throw ValidationError("--format must be table or json") }
            if let caFile, !FileManager.default.isReadableFile(atPath: caFile) { throw ValidationError("--cacert: cannot read \(caFile)") }
        }

        var trust: PathTiming.Trust { insecure ? .anyCertificate : caFile.map { .caFile($0) } ?? .systemRoots }

        func run() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            var paths: [(String, PathTiming)] = []
            do {
                paths.append(
                    (
                        "direct",
                        try await PathTiming.measure(
                            url, model: backendModel ?? model, samples: samples, trust: trust, group: group)
                    ))
                if let via {
                    paths.append(("via gateway", try await PathTiming.measure(via, model: model, samples: samples, trust: trust, group: group)))
                }
                try? await group.shutdownGracefully()
            } catch let error as PathTiming.Failure {
                try? await group.shutdownGracefully()
                throw ValidationError(error.description)
            }
            if format == "json" {
                let json = JSONValue.object(paths.map { ($0.0.replacingOccurrences(of: " ", with: "_"), $0.1.json) })
                print(json.serializedString)
                return
            }
            print(Self.table(paths))
        }

        static func table(_ paths: [(String, PathTiming)]) -> String {
            func ms(_ v: Double?) -> String { v.map { String(format: "%.2f ms", $0 * 1000) } ?? "-" }
            var rows = [["hop"] + paths.map(\.0)]
            if paths.count == 2 { rows[0].append("added") }
            for (name, key) in [
                ("DNS", \PathTiming.dns), ("TCP connect", \.connect), ("TLS", \.tls), ("time to first byte", \.ttfb), ("total", \.total),
            ] {
                var row = [name] + paths.map { ms($0.1[keyPath: key]) }
                if paths.count == 2 {
                    let a = paths[0].1[keyPath: key], b = paths[1].1[keyPath: key]
                    row.append(a != nil && b != nil ? ms(b! - a!) : "-")
                }
                rows.append(row)
            }
            let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
            var lines = rows.map { row in row.enumerated().map { $1.padding(toLength: widths[$0] + 2, withPad: " ", startingAt: 0) }.joined() }
            if let via = paths.last, paths.count == 2, !via.1.serverTiming.isEmpty {
                lines.append("")
                lines.append(
                    "the gateway's Server-Timing (medians): "
                        + via.1.serverTiming.map { String(format: "%@ %.2f ms", $0.0, $0.1 * 1000) }.joined(separator: ", "))
            }
            return lines.joined(separator: "\n")
        }
    }
}

/// Median hop times of one path (seconds), over fresh connections.
struct PathTiming: Sendable {
    var dns: Double?
    var connect: Double?
    /// Nil without TLS.
    var tls: Double?
    var ttfb: Double?
    var total: Double?
    /// The answer's `Server-Timing` entries (a gateway's), medians in seconds, in its order.
    var serverTiming: [(String, Double)] = []
    var status: Int?

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// How an HTTPS server's certificate is checked.
    enum Trust: Sendable {
        case systemRoots
        case caFile(String)
        /// Not checked at all (`--insecure`).
        case anyCertificate

        func context() throws(Failure) -> NIOSSLContext {
            var c = TLSConfiguration.makeClientConfiguration()
            switch self {
            case .systemRoots: break
            case .caFile(let path):
                do {
                    c.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
                } catch {
                    throw Failure(description: "--cacert \(path): not a PEM certificate file (\(error))")
                }
            case .anyCertificate: c.certificateVerification = .none
            }
            do {
                return try NIOSSLContext(configuration: c)
            } catch {
                throw Failure(description: "TLS client: \(error)")
            }
        }
    }

    var json: JSONValue {
        func num(_ v: Double?) -> JSONValue { v.map { .number(String(format: "%.6f", $0)) } ?? .null }
        return .object([
            ("dns", num(dns)), ("connect", num(connect)), ("tls", num(tls)), ("ttfb", num(ttfb)), ("total", num(total)),
            ("status", status.map { .number($0) } ?? .null),
            ("server_timing", .object(serverTiming.map { ($0.0, num($0.1)) })),
        ])
    }

    static func measure(_ base: String, model: String, samples: Int, trust: Trust, group: MultiThreadedEventLoopGroup) async throws -> PathTiming {
        guard let url = URL(string: base), let scheme = url.scheme, ["http", "https"].contains(scheme), let host = url.host else {
            throw Failure(description: "\(base): not an http(s) base URL")
        }
        let tls = scheme == "https"
        let port = url.port ?? (tls ? 443 : 80)
        let path = (url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path) + "/chat/completions"
        let body = #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}],"max_tokens":1}"#
        let sslContext = tls ? try trust.context() : nil
        var samplesTaken: [Sample] = []
        for _ in 0..<samples {
            samplesTaken.append(try await Sample.take(host: host, port: port, tls: sslContext, path: path, body: body, group: group))
        }
        func median(_ values: [Double]) -> Double? {
            guard !values.isEmpty else { return nil }
            let s = values.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        var timing = PathTiming(
            dns: median(samplesTaken.map(\.dns)), connect: median(samplesTaken.map(\.connect)),
            tls: tls ? median(samplesTaken.compactMap(\.tls)) : nil, ttfb: median(samplesTaken.map(\.ttfb)), total: median(samplesTaken.map(\.total)),
            status: samplesTaken.last?.status)
        let names = samplesTaken.first?.serverTiming.map(\.0) ?? []
        timing.serverTiming = names.compactMap { name in
            median(samplesTaken.compactMap { s in s.serverTiming.first { $0.0 == name }?.1 }).map { (name, $0) }
        }
        return timing
    }

    /// One request on a new connection.
    struct Sample: Sendable {
        var dns: Double
        var connect: Double
        var tls: Double?
        var ttfb: Double
        var total: Double
        var status: Int
        var serverTiming: [(String, Double)]

        static func take(
            host: String, port: Int, tls sslContext: NIOSSLContext?, path: String, body: String, group: MultiThreadedEventLoopGroup
        ) async throws -> Sample {
            let tls = sslContext != nil
            let start = ContinuousClock.now
            let address: SocketAddress
            do {
                address = try SocketAddress.makeAddressResolvingHost(host, port: port)
            } catch {
                throw Failure(description: "DNS: cannot resolve \(host): \(error)")
            }
            let resolved = ContinuousClock.now
            let handler = TimingHandler(eventLoop: group.next())
            let channel: any Channel
            do {
                channel = try await ClientBootstrap(group: handler.eventLoop)
                    .connectTimeout(.seconds(10))
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            if let sslContext {
                                try channel.pipeline.syncOperations.addHandler(
                                    try NIOSSLClientHandler(context: sslContext, serverHostname: host.first?.isNumber == true ? nil : host))
                            }
                            try channel.pipeline.syncOperations.addHTTPClientHandlers()
                            try channel.pipeline.syncOperations.addHandler(handler)
                        }
                    }
                    .connect(to: address).get()
            } catch {
                handler.fail(error)
                throw Failure(description: "connect to \(host):\(port): \(error)")
            }
            defer { channel.close(promise: nil) }
            // Both instants are taken on the event loop as they happen: this task may resume
            // after the handshake is already done.
            let connected = try await handler.activeAt.futureResult.get()
            var handshaken = connected
            if tls {
                do {
                    handshaken = try await handler.handshake.futureResult.get()
                } catch {
                    throw Failure(description: "TLS with \(host):\(port): \(error)")
                }
            }
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
            head.headers.add(name: "host", value: "\(host):\(port)")
            head.headers.add(name: "content-type", value: "application/json")
            head.headers.add(name: "content-length", value: String(body.utf8.count))
            head.headers.add(name: "connection", value: "close")
            let sent = ContinuousClock.now
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            let response: HTTPResponseHead
            do {
                response = try await handler.head.futureResult.get()
                _ = try await handler.end.futureResult.get()
            } catch {
                throw Failure(description: "request to \(host):\(port)\(path): \(error)")
            }
            let firstByte = try await handler.firstByteAt.futureResult.get()
            let done = ContinuousClock.now
            // Waits for the close (TLS: both close_notify alerts), so the server is not left holding
            // a half-closed connection when this probe exits.
            try? await channel.close()
            return Sample(
                dns: (resolved - start).seconds, connect: (connected - resolved).seconds, tls: tls ? (handshaken - connected).seconds : nil,
                ttfb: (firstByte - sent).seconds, total: (done - start).seconds, status: Int(response.status.code),
                serverTiming: Self.serverTiming(response.headers.first(name: "server-timing")))
        }

        /// `name;dur=1.2;desc="…", …` → (name, seconds).
        static func serverTiming(_ header: String?) -> [(String, Double)] {
            (header ?? "").split(separator: ",").compactMap { entry in
                let fields = entry.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
                guard let name = fields.first, let dur = fields.first(where: { $0.hasPrefix("dur=") }), let ms = Double(dur.dropFirst(4)) else {
                    return nil
                }
                return (name, ms / 1000)
            }
        }
    }

    /// Notes when the connection was made, the TLS handshake, the response's first byte, its head
    /// and its end.
    final class TimingHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let eventLoop: any EventLoop
        let activeAt: EventLoopPromise<ContinuousClock.Instant>
        let handshake: EventLoopPromise<ContinuousClock.Instant>
        let firstByteAt: EventLoopPromise<ContinuousClock.Instant>
        let head: EventLoopPromise<HTTPResponseHead>
        let end: EventLoopPromise<Void>

        init(eventLoop: any EventLoop) {
            self.eventLoop = eventLoop
            activeAt = eventLoop.makePromise()
            handshake = eventLoop.makePromise()
            firstByteAt = eventLoop.makePromise()
            head = eventLoop.makePromise()
            end = eventLoop.makePromise()
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .handshakeCompleted = event as? TLSUserEvent { handshake.succeed(.now) }
            context.fireUserInboundEventTriggered(event)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                firstByteAt.succeed(.now)
                head.succeed(h)
            case .body: break
            case .end: end.succeed(())
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            fail(error)
            context.close(promise: nil)
        }

        func channelActive(context: ChannelHandlerContext) {
            activeAt.succeed(.now)
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            fail(ChannelError.eof)
            context.fireChannelInactive()
        }

        /// Ends every promise not yet kept (a promise left pending is a leak NIO reports).
        func fail(_ error: any Error) {
            activeAt.fail(error)
            handshake.fail(error)
            firstByteAt.fail(error)
            head.fail(error)
            end.fail(error)
        }
    }
}
