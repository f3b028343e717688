/// What a GPU host looks like, as read from sysfs (and nvidia-smi when present).
public struct HostTopology: Sendable, Equatable, Codable {
    public var hostname: String
    public var numaNodes: [NUMANode] = []
    public var pciDevices: [PCIDevice] = []
    public var interfaces: [NetInterface] = []
    public var rdmaDevices: [RDMADevice] = []
    public var blockDevices: [BlockDevice] = []
    public var mounts: [Mount] = []
    /// From `nvidia-smi -q -x` when given.
    public var gpuInfo: [NvidiaGPUInfo] = []
    public var driverVersion: String?
    /// From `nvidia-smi topo -m` when given.
    public var nvidiaTopology: NvidiaTopoMatrix?

    public init(hostname: String) {
        self.hostname = hostname
    }

    public var gpus: [PCIDevice] { pciDevices.filter { $0.kind == .gpu } }
    public var nics: [PCIDevice] { pciDevices.filter { $0.kind == .nic || $0.kind == .infiniband } }

    public func device(_ address: String) -> PCIDevice? { pciDevices.first { $0.address == address } }

    /// PCI addresses of NICs that carry an RDMA device (the GPU fabric).
    public var rdmaNICAddresses: Set<String> { Set(rdmaDevices.compactMap(\.pciAddress)) }
}

public struct NUMANode: Sendable, Equatable, Codable {
    public var id: Int
    public var cpus: String
}

public enum DeviceKind: String, Sendable, Codable {
    case gpu, nic, infiniband, nvme, bridge, nvswitch, other
}

public struct PCIDevice: Sendable, Equatable, Codable {
    public var address: String
    public var classCode: String
    public var vendor: String
    public var device: String
    public var kind: DeviceKind
    public var numaNode: Int?
    public var currentSpeed: String?
    public var maxSpeed: String?
    public var currentWidth: Int?
    public var maxWidth: Int?
    /// Upstream ports from the root complex down to this device: `["pci0000:17", "0000:17:01.0", …, address]`.
    public var chain: [String]
    public var sriovTotalVfs: Int?
    public var sriovNumVfs: Int?
    public var virtualFunctions: [String] = []
    /// Set on a VF: its PF.
    public var physicalFunction: String?
    /// sysfs directory the values came from (for evidence).
    public var sysfsPath: String

    public var currentGen: Int? { currentSpeed.flatMap(PCIeSpeed.generation) }
    public var maxGen: Int? { maxSpeed.flatMap(PCIeSpeed.generation) }
    public var root: String { chain.first ?? "" }
}

public enum PCIeSpeed {
    /// `32.0 GT/s PCIe` or `16 GT/s` → 5 or 4; `Unknown` → nil.
    public static func generation(_ text: String) -> Int? {
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

public struct NetInterface: Sendable, Equatable, Codable {
    public var name: String
    public var mtu: Int?
    /// Mb/s; nil when down or unknown.
    public var speedMbps: Int?
    public var operState: String?
    /// 1 Ethernet, 32 InfiniBand.
    public var type: Int?
    public var pciAddress: String?
    public var rdmaDevices: [String] = []
}

public struct RDMADevice: Sendable, Equatable, Codable {
    public var name: String
    public var pciAddress: String?
    public var ports: [RDMAPort]
}

public struct RDMAPort: Sendable, Equatable, Codable {
    public var number: Int
    public var state: String
    public var physState: String
    public var linkLayer: String
    public var rate: String
    public var gids: [GIDEntry]
    public var sysfsPath: String

    public var isActive: Bool { state.contains("ACTIVE") && physState.contains("LinkUp") }
    /// Gb/s parsed from `400 Gb/sec (4X NDR)`.
    public var rateGbps: Double? { Double(rate.split(separator: " ").first ?? "") }
}

public struct GIDEntry: Sendable, Equatable, Codable {
    public var index: Int
    public var gid: String
    public var type: String?
    public var netdev: String?

    /// IPv4-mapped: five zero words, then `ffff`, then the address.
    public var ipv4: String? {
        let words = gid.split(separator: ":").map { UInt16($0, radix: 16) }
        guard words.count == 8, words.allSatisfy({ $0 != nil }) else { return nil }
        let w = words.map { $0! }
        guard w[0...4].allSatisfy({ $0 == 0 }), w[5] == 0xFFFF else { return nil }
        return "\(w[6] >> 8).\(w[6] & 0xFF).\(w[7] >> 8).\(w[7] & 0xFF)"
    }

    public var isRoCEv2IPv4: Bool { type == "RoCE v2" && ipv4 != nil }
}

public struct BlockDevice: Sendable, Equatable, Codable {
    public var name: String
    public var sizeBytes: Int64?
    public var model: String?
    public var pciAddress: String?
    public var rotational: Bool?
}

public struct Mount: Sendable, Equatable, Codable {
    public var device: String
    public var mountPoint: String
    public var fsType: String
}
