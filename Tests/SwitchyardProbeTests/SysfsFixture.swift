import Foundation

/// Writes realistic sysfs trees for tests: an 8-GPU HGX-style host (2 NUMA nodes, 4 PCIe
/// switches each with 2 GPUs, 2 RDMA NICs and an NVMe drive, RoCE v2 at MTU 9000), a management
/// NIC, and optional faults.
struct SysfsFixture {
    enum Fault: CaseIterable {
        case nicDowntrainedToX8
        case gpuNearestNICOnOtherNUMA
        case oneInterfaceMTU1500
        case noRoCEv2IPv4GID
        case ncclGIDIndexOnRoCEv1
        case idleGPUAtGen1
        case fewerSRIOVVFs
        /// `/sys/class/infiniband/X` is the real layout's link to the device's own directory, and
        /// `X/device` is missing (as in some captures): resolved through the class link.
        case rdmaClassLinkOnly
        /// Neither: the RDMA devices cannot be tied to a PCI function (missing data).
        case rdmaUntied
    }

    let root: URL
    var faults: Set<Fault>

    /// GPU addresses in order GPU0…GPU7.
    private(set) var gpus: [String] = []
    private(set) var nics: [String] = []

    init(faults: Set<Fault> = []) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sysfs-\(UUID().uuidString)")
        self.faults = faults
        try build()
    }

    func remove() { try? FileManager.default.removeItem(at: root) }

    private func write(_ path: String, _ value: String) throws {
        let url = root.appendingPathComponent(String(path.dropFirst()))
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try (value + "\n").write(to: url, atomically: true, encoding: .utf8)
    }

    private func link(_ path: String, to target: String) throws {
        let url = root.appendingPathComponent(String(path.dropFirst()))
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: url.path, withDestinationPath: target)
    }

    /// `/sys/devices/<chain>`, plus the `/sys/bus/pci/devices` link and the attribute files.
    private func device(
        _ chain: [String], cls: String, vendor: String = "0x10de", numa: Int,
        speed: (String, String) = ("32.0 GT/s PCIe", "32.0 GT/s PCIe"), width: (Int, Int) = (16, 16)
    ) throws -> String {
        let dir = "/sys/devices/" + chain.joined(separator: "/")
        let address = chain.last!
        try write("\(dir)/class", cls)
        try write("\(dir)/vendor", vendor)
        try write("\(dir)/device", "0x2335")
        try write("\(dir)/numa_node", String(numa))
        try write("\(dir)/current_link_speed", speed.0)
        try write("\(dir)/max_link_speed", speed.1)
        try write("\(dir)/current_link_width", String(width.0))
        try write("\(dir)/max_link_width", String(width.1))
        try link("/sys/bus/pci/devices/\(address)", to: "../../.." + dir.dropFirst(4))
        return dir
    }

    private mutating func build() throws {
        try write("/sys/devices/system/node/online", "0-1")
        try write("/sys/devices/system/node/node0/cpulist", "0-47,96-143")
        try write("/sys/devices/system/node/node1/cpulist", "48-95,144-191")
        // Management NIC on NUMA 0, outside the fabric.
        let mgmt = try device(["pci0000:00", "0000:00:1c.0", "0000:03:00.0"], cls: "0x020000", vendor: "0x8086", numa: 0, width: (4, 4))
        try netdev("eno1", deviceDir: mgmt, mtu: 1500, speed: 25000)

        let roots = [0x15, 0x36, 0x9a, 0xbb]
        var nicIndex = 0
        for (s, bus) in roots.enumerated() {
            let numa = s < 2 ? 0 : 1
            let rootName = String(format: "pci0000:%02x", bus)
            let rootPort = String(format: "0000:%02x:01.0", bus)
            let usp = String(format: "0000:%02x:00.0", bus + 1)
            let base = [rootName, rootPort, usp]
            try _ = device([rootName, rootPort], cls: "0x060400", vendor: "0x8086", numa: numa)
            try _ = device(base, cls: "0x060400", vendor: "0x1000", numa: numa)
            func dsp(_ n: Int) -> String { String(format: "0000:%02x:%02x.0", bus + 2, n) }
            for n in 0..<5 { try _ = device(base + [dsp(n)], cls: "0x060400", vendor: "0x1000", numa: numa) }
            for g in 0..<2 {
                let address = String(format: "0000:%02x:00.0", bus + 3 + g)
                let gpuIndex = s * 2 + g
                let idle = faults.contains(.idleGPUAtGen1) && gpuIndex == 3
                try _ = device(
                    base + [dsp(g), address], cls: "0x030200", numa: numa,
                    speed: (idle ? "2.5 GT/s PCIe" : "32.0 GT/s PCIe", "32.0 GT/s PCIe"))
                gpus.append(address)
            }
            for k in 0..<2 {
                let address = String(format: "0000:%02x:00.0", bus + 5 + k)
                var chain = base + [dsp(2 + k), address]
                var nicNUMA = numa
                if faults.contains(.gpuNearestNICOnOtherNUMA) && s == 0 {
                    // Switch 0's NICs moved to a slot on socket 1: GPU0/GPU1 lose their local NIC.
                    chain = ["pci0000:f0", String(format: "0000:f0:%02x.0", k + 1), String(format: "0000:f%d:00.0", k + 1)]
                    nicNUMA = 1
                }
                let narrow = faults.contains(.nicDowntrainedToX8) && nicIndex == 5
                let dir = try device(
                    chain, cls: "0x020000", vendor: "0x15b3", numa: nicNUMA,
                    speed: ("32.0 GT/s PCIe", "32.0 GT/s PCIe"), width: (narrow ? 8 : 16, 16))
                let pciAddress = chain.last!
                let hca = "mlx5_\(nicIndex)"
                let ifname = "ens\(nicIndex)np0"
                let mtu = faults.contains(.oneInterfaceMTU1500) && nicIndex == 2 ? 1500 : 9000
                try netdev(ifname, deviceDir: dir, mtu: mtu, speed: 400_000)
                try rdma(hca, deviceDir: dir, netdev: ifname, nicIndex: nicIndex)
                try sriov(dir: dir, address: pciAddress, vfs: faults.contains(.fewerSRIOVVFs) && nicIndex == 7 ? 4 : 8)
                nics.append(pciAddress)
                nicIndex += 1
            }
            let nvme = String(format: "0000:%02x:00.0", bus + 7)
            try _ = device(
                base + [dsp(4), nvme], cls: "0x010802", vendor: "0x144d", numa: numa, speed: ("16.0 GT/s PCIe", "16.0 GT/s PCIe"), width: (4, 4))
        }
    }

    private func netdev(_ name: String, deviceDir: String, mtu: Int, speed: Int) throws {
        let base = "/sys/class/net/\(name)"
        try write("\(base)/mtu", String(mtu))
        try write("\(base)/speed", String(speed))
        try write("\(base)/operstate", "up")
        try write("\(base)/type", "1")
        try link("\(base)/device", to: "../../.." + deviceDir.dropFirst(4))
    }

    private func rdma(_ hca: String, deviceDir: String, netdev: String, nicIndex: Int) throws {
        var base = "/sys/class/infiniband/\(hca)"
        if faults.contains(.rdmaClassLinkOnly) {
            base = "\(deviceDir)/infiniband/\(hca)"
            try write("\(base)/node_type", "1: CA")
            try link("/sys/class/infiniband/\(hca)", to: "../../devices" + base.dropFirst("/sys/devices".count))
        } else if !faults.contains(.rdmaUntied) {
            try link("\(base)/device", to: "../../.." + deviceDir.dropFirst(4))
        }
        try write("\(base)/fw_ver", "28.39.1002")
        let port = "\(base)/ports/1"
        try write("\(port)/state", "4: ACTIVE")
        try write("\(port)/phys_state", "5: LinkUp")
        try write("\(port)/link_layer", "Ethernet")
        try write("\(port)/rate", "400 Gb/sec (4X NDR)")
        let ip = String(format: "0a0c:%04x", 0x0100 + nicIndex)
        var entries: [(String, String)] = [
            ("fe80:0000:0000:0000:0e42:a1ff:fe00:00\(String(format: "%02x", nicIndex))", "IB/RoCE v1"),
            ("fe80:0000:0000:0000:0e42:a1ff:fe00:00\(String(format: "%02x", nicIndex))", "RoCE v2"),
            ("0000:0000:0000:0000:0000:ffff:\(ip)", "IB/RoCE v1"),
            ("0000:0000:0000:0000:0000:ffff:\(ip)", "RoCE v2"),
        ]
        if faults.contains(.noRoCEv2IPv4GID) { entries.removeLast() }
        for (i, (gid, type)) in entries.enumerated() {
            try write("\(port)/gids/\(i)", gid)
            try write("\(port)/gid_attrs/types/\(i)", type)
            try write("\(port)/gid_attrs/ndevs/\(i)", netdev)
        }
        for i in entries.count..<8 { try write("\(port)/gids/\(i)", "0000:0000:0000:0000:0000:0000:0000:0000") }
    }

    private func sriov(dir: String, address: String, vfs: Int) throws {
        try write("\(dir)/sriov_totalvfs", "16")
        try write("\(dir)/sriov_numvfs", String(vfs))
        let parent = (dir as NSString).deletingLastPathComponent
        let parts = address.split(separator: ":")
        for v in 0..<vfs {
            let vf = "\(parts[0]):\(parts[1]):\(String(format: "%02x", 1 + v / 8)).\(v % 8)"
            let vfDir = "\(parent)/\(vf)"
            try write("\(vfDir)/class", "0x020000")
            try write("\(vfDir)/vendor", "0x15b3")
            try write("\(vfDir)/numa_node", "0")
            try link("\(vfDir)/physfn", to: "../\(address)")
            try link("\(dir)/virtfn\(v)", to: "../\(vf)")
            try link("/sys/bus/pci/devices/\(vf)", to: "../../.." + vfDir.dropFirst(4))
        }
    }
}
