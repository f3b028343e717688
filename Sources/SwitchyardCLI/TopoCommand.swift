import ArgumentParser
import Foundation
import SwitchyardCore
import SwitchyardProbe

/// `switchyard topo`: topology summary and checks for a GPU host.
struct TopoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topo",
        abstract: "Summarise a GPU host's topology and check it (PCIe, GPU↔NIC locality, NVLink, RDMA, MTU, SR-IOV).",
        discussion: "Exit status: 0 when no check failed (warnings fail only with --strict), 2 when a check failed.",
        subcommands: [Check.self, Compare.self],
        defaultSubcommand: Check.self
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, markdown, json
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "check", abstract: "Check this host (the default).")

        @Option(help: "Root of the sysfs tree to read (a captured tree for offline analysis).")
        var root: String = "/"

        @Option(name: .customLong("nvidia-smi-topo"), help: "Output of `nvidia-smi topo -m` (default: run nvidia-smi when present).")
        var nvidiaSMITopo: String?

        @Option(name: .customLong("nvidia-smi-xml"), help: "Output of `nvidia-smi -q -x` (default: run nvidia-smi when present).")
        var nvidiaSMIXML: String?

        @Option(help: "YAML file of expectations: gpus {count, product}, nics {count, rate_gbps}, mtu, gid_type, sriov_vfs, nccl_ib_gid_index.")
        var expect: String?

        @Option(help: "Output format: table, markdown or json.")
        var format: Format = .table

        @Flag(help: "Warnings fail too.")
        var strict = false

        @Option(help: "Host name to report (default: the host's own).")
        var hostname: String?

        func run() async throws {
            var host = TopologyProbe(root: root).probe(hostname: hostname)
            let live = root == "/"
            if let text = try TopoCommand.input(nvidiaSMITopo, live: live, command: ["topo", "-m"]) {
                do {
                    host.nvidiaTopology = try NvidiaTopoMatrix.parse(text)
                } catch {
                    throw ValidationError("\(nvidiaSMITopo ?? "nvidia-smi topo -m"): \(error)")
                }
            }
            if let text = try TopoCommand.input(nvidiaSMIXML, live: live, command: ["-q", "-x"]) {
                do {
                    let parsed = try NvidiaSMIXML.parse(Data(text.utf8))
                    host.driverVersion = parsed.driver
                    host.gpuInfo = parsed.gpus
                } catch {
                    throw ValidationError("\(nvidiaSMIXML ?? "nvidia-smi -q -x"): \(error)")
                }
            }
            var expectations = TopologyExpectations()
            if let expect {
                guard let text = try? String(contentsOfFile: expect, encoding: .utf8) else {
                    throw ValidationError("cannot read --expect file '\(expect)'")
                }
                do {
                    expectations = try TopologyExpectations.load(yaml: text)
                } catch let error as ConfigError {
                    throw ValidationError("\(expect): \(error)")
                }
            }
            var gidIndex: Int?
            if let env = ProcessInfo.processInfo.environment["NCCL_IB_GID_INDEX"] {
                guard let value = Int(env) else { throw ValidationError("NCCL_IB_GID_INDEX must be an integer, got '\(env)'") }
                gidIndex = value
            }
            let checks = TopologyChecks(expectations: expectations, ncclIBGIDIndex: gidIndex).run(host)
            let report = TopoReport(host: host, checks: checks)
            TopoCommand.emit(report, format: format)
            if report.summary.fail > 0 || (strict && report.summary.warn > 0) { throw ExitCode(2) }
        }
    }

    struct Compare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "compare",
            abstract: "Check that hosts agree (MTU, GID index, GPU product, driver, NIC rate) from their `topo --format json` reports.")

        @Argument(help: "Two or more JSON reports.")
        var reports: [String]

        @Option(help: "Output format: table, markdown or json.")
        var format: Format = .table

        func run() async throws {
            guard reports.count >= 2 else { throw ValidationError("compare needs at least two reports") }
            let loaded = try reports.map { path -> TopoReport in
                guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read '\(path)'") }
                do {
                    return try TopoReport.decoder.decode(TopoReport.self, from: data)
                } catch {
                    throw ValidationError("\(path): not a `switchyard topo --format json` report (\(error))")
                }
            }
            let checks = TopoCompare.compare(loaded)
            let failed = checks.filter { $0.status == .fail }.count
            switch format {
            case .json:
                struct Out: Encodable {
                    let hosts: [String]
                    let checks: [CheckResult]
                }
                print(String(decoding: try TopoReport.encoder.encode(Out(hosts: loaded.map(\.host.hostname), checks: checks)), as: UTF8.self))
            case .table, .markdown:
                for c in checks {
                    print(
                        "\(c.status.rawValue.uppercased().padding(toLength: 6, withPad: " ", startingAt: 0)) \(c.id.padding(toLength: 22, withPad: " ", startingAt: 0)) \(c.subject): \(c.message)"
                    )
                    if c.status == .fail { c.evidence.forEach { print("       \($0.source) = \($0.value)") } }
                }
                print("\(checks.count - failed) passed, \(failed) failed")
            }
            if failed > 0 { throw ExitCode(2) }
        }
    }

    static func emit(_ report: TopoReport, format: Format) {
        switch format {
        case .table: print(TopoRenderer.table(report))
        case .markdown: print(TopoRenderer.markdown(report))
        case .json: print(report.json())
        }
    }

    /// A file's text, or on a live host nvidia-smi's output when it is installed.
    static func input(_ path: String?, live: Bool, command: [String]) throws -> String? {
        if let path {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read '\(path)'") }
            return text
        }
        guard live, let smi = ["/usr/bin/nvidia-smi", "/usr/local/bin/nvidia-smi"].first(where: FileManager.default.isExecutableFile) else {
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: smi)
        process.arguments = command
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }
}
