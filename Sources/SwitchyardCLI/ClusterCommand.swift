import ArgumentParser
import Foundation
import SwitchyardCore
import SwitchyardProbe

/// `switchyard cluster k8s|slurm|hosts|capture`: do Kubernetes and Slurm agree with the hardware?
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Check that Kubernetes and Slurm agree with the hardware (and the hosts with each other).",
        discussion: "Exit status: 0 when no check failed (warnings fail only with --strict), 2 when a check failed.",
        subcommands: [Kube.self, Slurm.self, Hosts.self, Capture.self]
    )

    struct Output: ParsableArguments {
        @Option(help: "Output format: table, markdown or json.") var format: TopoCommand.Format = .table
        @Flag(help: "Warnings fail too.") var strict = false

        func emit(_ report: ClusterReport) throws {
            switch format {
            case .table: print(report.table)
            case .markdown: print(report.markdown)
            case .json: print(report.json())
            }
            if report.summary.fail > 0 || (strict && report.summary.warn > 0) { throw ExitCode(2) }
        }
    }

    struct Kube: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "k8s", abstract: "Check nodes, GPU labels and pods' secondary networks from `kubectl get … -o json` dumps.")
        @Option(help: "Folder of kubectl JSON dumps (nodes, pods, network-attachment-definitions; one file per kind or one List).")
        var from: String?
        @Option(help: "Read the live API as this kubeconfig says (CA verified; bearer token or client certificate).") var kubeconfig: String?
        @Option(help: "The kubeconfig context (default: its current-context).") var context: String?
        @OptionGroup var output: Output

        func validate() throws {
            guard (from == nil) != (kubeconfig == nil) else {
                throw ValidationError("give --from DIR (kubectl dumps) or --kubeconfig FILE (the live API)")
            }
        }

        func run() async throws {
            let snapshot: KubeSnapshot
            do {
                if let kubeconfig {
                    snapshot = try await KubeAPI.fetch(try Kubeconfig.load(path: kubeconfig, context: context))
                } else {
                    snapshot = try KubeSnapshot.load(directory: from ?? ".")
                }
            } catch let error as ValidationError {
                throw error
            } catch {
                throw ValidationError("\(error)")
            }
            let report = ClusterReport(
                scope: "k8s", sources: snapshot.sources,
                counts: ["nodes": snapshot.nodes.count, "pods": snapshot.pods.count, "network attachment definitions": snapshot.nads.count],
                checks: KubeChecks().run(snapshot))
            try output.emit(report)
        }
    }

    struct Slurm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "slurm",
            abstract: "Check node states, topology and GRES from scontrol/gres.conf/topology.conf (captured, or live where Slurm runs).")
        @Option(help: "Folder written by `cluster capture` (default: ask scontrol and read the Slurm config here).") var from: String?
        @Option(help: "Folder of `switchyard topo --format json` reports, one per host, to check GRES against the GPUs.")
        var hosts: String?
        @Option(help: "Slurm on Kubernetes: kubectl dumps of the cluster its slurmd pods run in (each Slurm node → its pod).")
        var k8sFrom: String?
        @OptionGroup var output: Output

        func run() async throws {
            var snapshot: SlurmSnapshot
            do {
                if let from {
                    snapshot = try SlurmSnapshot.load(directory: from)
                } else {
                    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-slurm-\(UUID().uuidString)").path
                    defer { try? FileManager.default.removeItem(atPath: dir) }
                    try Capture.slurm(into: dir)
                    snapshot = try SlurmSnapshot.load(directory: dir)
                    snapshot.sources = ["scontrol show node -o (live)"]
                }
            } catch let error as SlurmSnapshot.ParseError {
                throw ValidationError("\(error)")
            }
            let reports = try hosts.map(Hosts.load) ?? []
            let byName = Dictionary(reports.map { ($0.host.hostname, $0) }, uniquingKeysWith: { a, _ in a })
            var checks = SlurmChecks(hosts: byName).run(snapshot)
            var sources = snapshot.sources
            var counts = ["slurm nodes": snapshot.nodes.count, "host reports": reports.count]
            if let k8sFrom {
                do {
                    let kube = try KubeSnapshot.load(directory: k8sFrom)
                    checks += SlurmOnKubeChecks().run(slurm: snapshot, kube: kube)
                    sources += kube.sources
                    counts["pods"] = kube.pods.count
                } catch {
                    throw ValidationError("\(error)")
                }
            }
            let report = ClusterReport(scope: k8sFrom == nil ? "slurm" : "slurm+k8s", sources: sources, counts: counts, checks: checks)
            try output.emit(report)
        }
    }

    struct Hosts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hosts",
            abstract: "Fleet consistency over `switchyard topo --format json` reports: MTU, GID index, driver, GPU/NIC counts and links.")
        @Argument(help: "Folder of topo JSON reports (*.json).") var directory: String
        @OptionGroup var output: Output

        static func load(_ directory: String) throws -> [TopoReport] {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
            guard !files.isEmpty else { throw ValidationError("\(directory): no topo JSON reports (*.json)") }
            return try files.map { file in
                let path = (directory as NSString).appendingPathComponent(file)
                guard let data = FileManager.default.contents(atPath: path), let report = try? TopoReport.decoder.decode(TopoReport.self, from: data)
                else {
                    throw ValidationError("\(path): not a `switchyard topo --format json` report")
                }
                return report
            }
        }

        func run() async throws {
            let reports = try Self.load(directory)
            guard reports.count >= 2 else { throw ValidationError("\(directory): fleet checks need at least two host reports") }
            try output.emit(
                ClusterReport(
                    scope: "hosts", sources: reports.map(\.host.hostname), counts: ["hosts": reports.count], checks: TopoCompare.compare(reports)))
        }
    }

    struct Capture: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Save what `cluster k8s|slurm --from` read: kubectl and scontrol output where they are installed, gres.conf and topology.conf.")
        @Option(help: "Folder to write (created).") var out: String

        func run() async throws {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            var wrote: [String] = []
            if Self.which("kubectl") != nil {
                for (kind, file) in [
                    ("nodes", "nodes.json"), ("pods", "pods.json"), ("network-attachment-definitions", "network-attachment-definitions.json"),
                ] {
                    let (status, text) = Self.run("kubectl", ["get", kind, "-A", "-o", "json"])
                    if status == 0 {
                        try text.write(toFile: (out as NSString).appendingPathComponent(file), atomically: true, encoding: .utf8)
                        wrote.append(file)
                    } else {
                        FileHandle.standardError.write(Data("capture: kubectl get \(kind) failed: \(text.prefix(300))\n".utf8))
                    }
                }
            }
            if Self.which("scontrol") != nil {
                let slurm = (out as NSString).appendingPathComponent("slurm")
                try Self.slurm(into: slurm)
                wrote.append("slurm/")
            }
            guard !wrote.isEmpty else { throw ValidationError("neither kubectl nor scontrol is installed here: nothing to capture") }
            print("captured \(wrote.joined(separator: ", ")) into \(out)")
        }

        /// `scontrol show node -o`, `sinfo`, and the gres.conf and topology.conf of the Slurm config.
        static func slurm(into dir: String) throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let (status, nodes) = run("scontrol", ["show", "node", "-o"])
            guard status == 0 else { throw SlurmSnapshot.ParseError(description: "scontrol show node -o failed: \(nodes.prefix(300))") }
            try nodes.write(toFile: (dir as NSString).appendingPathComponent("scontrol-show-node.txt"), atomically: true, encoding: .utf8)
            let (sinfoStatus, sinfo) = run("sinfo", [])
            if sinfoStatus == 0 { try sinfo.write(toFile: (dir as NSString).appendingPathComponent("sinfo.txt"), atomically: true, encoding: .utf8) }
            let (_, config) = run("scontrol", ["show", "config"])
            let confPath =
                config.split(separator: "\n").first { $0.hasPrefix("SLURM_CONF") }.flatMap { $0.split(separator: "=").last }
                .map { $0.trimmingCharacters(in: .whitespaces) } ?? "/etc/slurm/slurm.conf"
            let confDir = (confPath as NSString).deletingLastPathComponent
            for file in ["gres.conf", "topology.conf"] {
                let path = (confDir as NSString).appendingPathComponent(file)
                if FileManager.default.fileExists(atPath: path) {
                    try FileManager.default.copyItem(atPath: path, toPath: (dir as NSString).appendingPathComponent(file))
                }
            }
        }

        static func which(_ tool: String) -> String? {
            let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            return paths.map { "\($0)/\(tool)" }.first(where: FileManager.default.isExecutableFile)
        }

        static func run(_ tool: String, _ arguments: [String]) -> (Int32, String) {
            guard let path = which(tool) else { return (127, "\(tool) not found") }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            do { try process.run() } catch { return (126, "\(error)") }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
    }
}
