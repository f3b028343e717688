import Foundation

/// The stable output of `switchyard topo --format json`:
/// `{"host":…, "summary":{…}, "checks":[{"id","status","subject","message","evidence":[…],"fix"}]}`.
package struct TopoReport: Sendable, Codable, Equatable {
    package var host: HostSection
    package var summary: Summary
    package var checks: [CheckResult]

    package struct HostSection: Sendable, Codable, Equatable {
        package var hostname: String
        package var numaNodes: [NUMANode]
        package var gpus: [GPUEntry]
        package var nics: [NICEntry]
        package var interfaces: [NetInterface]
        package var rdma: [RDMADevice]
        package var nvme: [PCIDevice]
        package var blockDevices: [BlockDevice]
        package var mounts: [Mount]
        package var driverVersion: String?
    }

    package struct GPUEntry: Sendable, Codable, Equatable {
        package var address: String
        package var product: String?
        package var vbios: String? = nil
        package var numaNode: Int?
        package var link: String
        package var nearestRdmaNic: String?
        package var nearestPath: PathClass?
    }

    package struct NICEntry: Sendable, Codable, Equatable {
        package var address: String
        package var rdmaDevice: String?
        package var interfaces: [String]
        package var numaNode: Int?
        package var link: String
        package var sriovVfs: Int?
    }

    package struct Summary: Sendable, Codable, Equatable {
        package var gpus: Int
        package var gpuProduct: String?
        package var driverVersion: String?
        package var rdmaNics: Int
        package var nicRateGbps: Double?
        package var numaNodes: Int
        package var fabricMtu: Int?
        package var roceGidIndex: Int?
        package var pass: Int
        package var warn: Int
        package var fail: Int
    }

    package init(host: HostTopology, checks: [CheckResult]) {
        func link(_ d: PCIDevice) -> String {
            "Gen\(d.currentGen.map(String.init) ?? "?")/\(d.maxGen.map(String.init) ?? "?") x\(d.currentWidth.map(String.init) ?? "?")/\(d.maxWidth.map(String.init) ?? "?")"
        }
        let gpus = host.gpus.filter { $0.physicalFunction == nil }.map { gpu -> GPUEntry in
            let nearest = TopologyChecks.nearestRdmaNic(gpu, in: host)
            return GPUEntry(
                address: gpu.address, product: host.gpuInfo.first { $0.pciAddress == gpu.address }?.product,
                vbios: host.gpuInfo.first { $0.pciAddress == gpu.address }?.vbios,
                numaNode: gpu.numaNode, link: link(gpu),
                nearestRdmaNic: nearest.map { n in host.rdmaDevices.first { $0.pciAddress == n.0.address }?.name ?? n.0.address },
                nearestPath: nearest?.1)
        }
        let nics = host.nics.filter { $0.physicalFunction == nil }.map { nic in
            NICEntry(
                address: nic.address, rdmaDevice: host.rdmaDevices.first { $0.pciAddress == nic.address }?.name,
                interfaces: host.interfaces.filter { $0.pciAddress == nic.address }.map(\.name),
                numaNode: nic.numaNode, link: link(nic), sriovVfs: nic.sriovNumVfs)
        }
        self.host = HostSection(
            hostname: host.hostname, numaNodes: host.numaNodes, gpus: gpus, nics: nics, interfaces: host.interfaces,
            rdma: host.rdmaDevices, nvme: host.pciDevices.filter { $0.kind == .nvme }, blockDevices: host.blockDevices,
            mounts: host.mounts, driverVersion: host.driverVersion)
        let fabric = host.interfaces.filter { !$0.rdmaDevices.isEmpty }.compactMap(\.mtu)
        let ports = host.rdmaDevices.flatMap(\.ports)
        let roceIndexes = ports.filter { $0.linkLayer == "Ethernet" }.map { $0.gids.first(where: \.isRoCEv2IPv4)?.index }
        let products = Set(host.gpuInfo.map(\.product))
        summary = Summary(
            gpus: gpus.count, gpuProduct: products.count == 1 ? products.first : (products.isEmpty ? nil : products.sorted().joined(separator: ", ")),
            driverVersion: host.driverVersion, rdmaNics: host.rdmaDevices.count, nicRateGbps: ports.compactMap(\.rateGbps).max(),
            numaNodes: host.numaNodes.count, fabricMtu: Set(fabric).count == 1 ? fabric.first : fabric.max(),
            roceGidIndex: Set(roceIndexes).count == 1 ? roceIndexes.first ?? nil : nil,
            pass: checks.filter { $0.status == .pass }.count, warn: checks.filter { $0.status == .warn }.count,
            fail: checks.filter { $0.status == .fail }.count)
        self.checks = checks
    }

    package static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.keyEncodingStrategy = .convertToSnakeCase
        return e
    }()

    package static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }()

    package func json() -> String {
        String(decoding: (try? Self.encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}
