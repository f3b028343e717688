/// What a GPU host looks like, as read from sysfs (and nvidia-smi when present).
package struct HostTopology: Sendable, Equatable, Codable {
    package var hostname: String
    package var numaNodes: [NUMANode] = []
    package var pciDevices: [PCIDevice] = []
    package var interfaces: [NetInterface] = []
    package var rdmaDevices: [RDMADevice] = []
    package var blockDevices: [BlockDevice] = []
    package var mounts: [Mount] = []
    /// From `nvidia-smi -q -x` when given.
    package var gpuInfo: [NvidiaGPUInfo] = []
    package var driverVersion: String?
    /// From `nvidia-smi topo -m` when given.
    package var nvidiaTopology: NvidiaTopoMatrix?

    package init(hostname: String) {
        self.hostname = hostname
    }

    package var gpus: [PCIDevice] { pciDevices.filter { $0.kind == .gpu } }
    package var nics: [PCIDevice] { pciDevices.filter { $0.kind == .nic || $0.kind == .infiniband } }

    package func device(_ address: String) -> PCIDevice? { pciDevices.first { $0.address == address } }

    /// PCI addresses of NICs that carry an RDMA device (the GPU fabric).
    package var rdmaNICAddresses: Set<String> { Set(rdmaDevices.compactMap(\.pciAddress)) }
}

package struct NUMANode: Sendable, Equatable, Codable {
    package var id: Int
    package var cpus: String
}

package enum DeviceKind: String, Sendable, Codable {
    case gpu, nic, infiniband, nvme, bridge, nvswitch, other
}

package struct PCIDevice: Sendable, Equatable, Codable {
    package var address: String
    package var classCode: String
    package var vendor: String
    package var device: String
    package var kind: DeviceKind
    package var numaNode: Int?
    package var currentSpeed: String?
    package var maxSpeed: String?
    package var currentWidth: Int?
    package var maxWidth: Int?
    /// Upstream ports from the root complex down to this device: `["pci0000:17", "0000:17:01.0", …, address]`.
    package var chain: [String]
    package var sriovTotalVfs: Int?
    package var sriovNumVfs: Int?
    package var virtualFunctions: [String] = []
    /// Set on a VF: its PF.
    package var physicalFunction: String?
    /// sysfs directory the values came from (for evidence).
    package var sysfsPath: String

    package var currentGen: Int? { currentSpeed.flatMap(PCIeSpeed.generation) }
    package var maxGen: Int? { maxSpeed.flatMap(PCIeSpeed.generation) }
    package var root: String { chain.first ?? "" }
}

package enum PCIeSpeed {
    /// `32.0 GT/s PCIe` or `16 GT/s` → 5 or 4; `Unknown` → nil.
    package static func generation(_ text: String) -> Int? {
        guard let number = Double(text.split(separator: " ").first ?? "") else { return nil }
        switch number {
        case 2.5: return 1
        case 5: return 2
        case 8: return 3
        case 16: return 4
        case 32: return 5
        case 64: return 6
        case 128: return 7
        default: return nil
        }
    }
}

package struct NetInterface: Sendable, Equatable, Codable {
    package var name: String
    package var mtu: Int?
    /// Mb/s; nil when down or unknown.
    package var speedMbps: Int?
    package var operState: String?
    /// 1 Ethernet, 32 InfiniBand.
    package var type: Int?
    package var pciAddress: String?
    package var rdmaDevices: [String] = []
}

package struct RDMADevice: Sendable, Equatable, Codable {
    package var name: String
    package var pciAddress: String?
    package var ports: [RDMAPort]
    /// `fw_ver` (the NIC's firmware).
    package var firmware: String? = nil
}

package struct RDMAPort: Sendable, Equatable, Codable {
    package var number: Int
    package var state: String
    package var physState: String
    package var linkLayer: String
    package var rate: String
    package var gids: [GIDEntry]
    package var sysfsPath: String

    package var isActive: Bool { state.contains("ACTIVE") && physState.contains("LinkUp") }
    /// Gb/s parsed from `400 Gb/sec (4X NDR)`.
    package var rateGbps: Double? { Double(rate.split(separator: " ").first ?? "") }
}

package struct GIDEntry: Sendable, Equatable, Codable {
    package var index: Int
    package var gid: String
    package var type: String?
    package var netdev: String?

    /// IPv4-mapped: five zero words, then `ffff`, then the address.
    package var ipv4: String? {
        let words = gid.split(separator: ":").map { UInt16($0, radix: 16) }
        guard words.count == 8, words.allSatisfy({ $0 != nil }) else { return nil }
        let w = words.map { $0! }
        guard w[0...4].allSatisfy({ $0 == 0 }), w[5] == 0xFFFF else { return nil }
        return "\(w[6] >> 8).\(w[6] & 0xFF).\(w[7] >> 8).\(w[7] & 0xFF)"
    }

    package var isRoCEv2IPv4: Bool { type == "RoCE v2" && ipv4 != nil }
}

package struct BlockDevice: Sendable, Equatable, Codable {
    package var name: String
    package var sizeBytes: Int64?
    package var model: String?
    package var pciAddress: String?
    package var rotational: Bool?
}

package struct Mount: Sendable, Equatable, Codable {
    package var device: String
    package var mountPoint: String
    package var fsType: String
}
