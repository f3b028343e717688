import Foundation

/// Builds a ``HostTopology`` from sysfs, `/proc/mounts` and optional nvidia-smi output.
package struct TopologyProbe: Sendable {
    package let tree: SysfsTree

    package init(root: String = "/") {
        tree = SysfsTree(root: root)
    }

    package func probe(hostname: String? = nil) -> HostTopology {
        var host = HostTopology(hostname: hostname ?? tree.read("/proc/sys/kernel/hostname") ?? ProcessInfo.processInfo.hostName)
        host.numaNodes = numaNodes()
        host.pciDevices = pciDevices()
        host.rdmaDevices = rdmaDevices()
        host.interfaces = interfaces(rdma: host.rdmaDevices)
        host.blockDevices = blockDevices()
        host.mounts = mounts()
        return host
    }

    func numaNodes() -> [NUMANode] {
        tree.list("/sys/devices/system/node").compactMap { name -> NUMANode? in
            guard name.hasPrefix("node"), let id = Int(name.dropFirst(4)) else { return nil }
            return NUMANode(id: id, cpus: tree.read("/sys/devices/system/node/\(name)/cpulist") ?? "")
        }.sorted { $0.id < $1.id }
    }

    static func isPCIAddress(_ s: Substring) -> Bool {
        // DDDD:BB:DD.F
        let parts = s.split(separator: ":")
        return parts.count == 3 && parts[0].count == 4 && parts[1].count == 2 && parts[2].contains(".")
    }

    func pciDevices() -> [PCIDevice] {
        tree.list("/sys/bus/pci/devices").compactMap { address -> PCIDevice? in
            let base = "/sys/bus/pci/devices/\(address)"
            let classCode = tree.read("\(base)/class") ?? ""
            let vendor = tree.read("\(base)/vendor") ?? ""
            let resolved = tree.resolve(base) ?? "/sys/devices/\(address)"
            var chain: [String] = []
            for component in resolved.split(separator: "/") {
                if component.hasPrefix("pci") && component.contains(":") && !component.contains(".") {
                    chain = [String(component)]
                } else if Self.isPCIAddress(component) {
                    chain.append(String(component))
                }
            }
            if chain.last != address { chain.append(address) }
            let numa = tree.readInt("\(base)/numa_node").flatMap { $0 < 0 ? nil : $0 }
            var device = PCIDevice(
                address: address, classCode: classCode, vendor: vendor, device: tree.read("\(base)/device") ?? "",
                kind: Self.kind(classCode: classCode), numaNode: numa,
                currentSpeed: tree.read("\(base)/current_link_speed"), maxSpeed: tree.read("\(base)/max_link_speed"),
                currentWidth: tree.readInt("\(base)/current_link_width"), maxWidth: tree.readInt("\(base)/max_link_width"),
                chain: chain, sriovTotalVfs: tree.readInt("\(base)/sriov_totalvfs"), sriovNumVfs: tree.readInt("\(base)/sriov_numvfs"),
                sysfsPath: base
            )
            device.virtualFunctions = tree.list(base).filter { $0.hasPrefix("virtfn") }
                .compactMap { tree.linkName("\(base)/\($0)") }
            device.physicalFunction = tree.linkName("\(base)/physfn")
            return device
        }
    }

    static func kind(classCode: String) -> DeviceKind {
        let c = classCode.lowercased().replacingOccurrences(of: "0x", with: "")
        if c.hasPrefix("0302") || c.hasPrefix("0300") { return .gpu }
        if c.hasPrefix("0200") { return .nic }
        if c.hasPrefix("0207") { return .infiniband }
        if c.hasPrefix("010802") { return .nvme }
        if c.hasPrefix("0604") { return .bridge }
        if c.hasPrefix("0680") { return .nvswitch }
        return .other
    }

    func rdmaDevices() -> [RDMADevice] {
        tree.list("/sys/class/infiniband").map { name in
            let base = "/sys/class/infiniband/\(name)"
            // The `device` link, else the class link's own real path
            // (/sys/devices/pci…/0000:17:00.0/infiniband/mlx5_0) when a capture lacks the link.
            let pci = [tree.resolve("\(base)/device"), tree.resolve(base)].lazy.compactMap { $0 }.compactMap { path in
                path.split(separator: "/").last(where: { Self.isPCIAddress($0) }).map(String.init)
            }.first
            let ports = tree.list("\(base)/ports").compactMap { p -> RDMAPort? in
                guard let number = Int(p) else { return nil }
                let portBase = "\(base)/ports/\(p)"
                let gids = tree.list("\(portBase)/gids").compactMap { g -> GIDEntry? in
                    guard let index = Int(g), let gid = tree.read("\(portBase)/gids/\(g)"),
                        gid != "0000:0000:0000:0000:0000:0000:0000:0000"
                    else { return nil }
                    return GIDEntry(
                        index: index, gid: gid, type: tree.read("\(portBase)/gid_attrs/types/\(g)"),
                        netdev: tree.read("\(portBase)/gid_attrs/ndevs/\(g)"))
                }.sorted { $0.index < $1.index }
                return RDMAPort(
                    number: number, state: tree.read("\(portBase)/state") ?? "", physState: tree.read("\(portBase)/phys_state") ?? "",
                    linkLayer: tree.read("\(portBase)/link_layer") ?? "", rate: tree.read("\(portBase)/rate") ?? "",
                    gids: gids, sysfsPath: portBase)
            }.sorted { $0.number < $1.number }
            return RDMADevice(name: name, pciAddress: pci, ports: ports, firmware: tree.read("\(base)/fw_ver"))
        }
    }

    func interfaces(rdma: [RDMADevice]) -> [NetInterface] {
        tree.list("/sys/class/net").map { name in
            let base = "/sys/class/net/\(name)"
            let pci = tree.resolve("\(base)/device").flatMap { path in
                path.split(separator: "/").last(where: { Self.isPCIAddress($0) }).map(String.init)
            }
            let speed = tree.readInt("\(base)/speed").flatMap { $0 < 0 ? nil : $0 }
            var hcas = tree.list("\(base)/device/infiniband")
            if hcas.isEmpty, let pci { hcas = rdma.filter { $0.pciAddress == pci }.map(\.name) }
            return NetInterface(
                name: name, mtu: tree.readInt("\(base)/mtu"), speedMbps: speed, operState: tree.read("\(base)/operstate"),
                type: tree.readInt("\(base)/type"), pciAddress: pci, rdmaDevices: hcas)
        }
    }

    func blockDevices() -> [BlockDevice] {
        tree.list("/sys/block").filter { !$0.hasPrefix("loop") && !$0.hasPrefix("ram") && !$0.hasPrefix("zram") }.map { name in
            let base = "/sys/block/\(name)"
            let sectors = tree.read("\(base)/size").flatMap { Int64($0) }
            let pci = tree.resolve("\(base)/device").flatMap { path in
                path.split(separator: "/").last(where: { Self.isPCIAddress($0) }).map(String.init)
            }
            return BlockDevice(
                name: name, sizeBytes: sectors.map { $0 * 512 }, model: tree.read("\(base)/device/model"),
                pciAddress: pci, rotational: tree.readInt("\(base)/queue/rotational").map { $0 == 1 })
        }
    }

    /// Mounts that hold data (models, checkpoints): real block devices and network filesystems.
    func mounts() -> [Mount] {
        guard let text = tree.read("/proc/mounts") else { return [] }
        let skip: Set<String> = [
            "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "mqueue", "securityfs",
            "debugfs", "tracefs", "pstore", "bpf", "hugetlbfs", "fusectl", "configfs", "autofs", "binfmt_misc", "rpc_pipefs", "nsfs",
        ]
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count >= 3, !skip.contains(String(f[2])) else { return nil }
            return Mount(device: String(f[0]), mountPoint: String(f[1]).replacingOccurrences(of: "\\040", with: " "), fsType: String(f[2]))
        }
    }
}
