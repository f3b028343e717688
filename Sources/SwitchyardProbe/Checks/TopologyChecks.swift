/// The host checks of `switchyard topo`, rules from the topology reference. Pure: a model in,
/// verdicts out. Each check reports its failures one subject at a time, or one pass when clean.
package struct TopologyChecks: Sendable {
    package var expectations: TopologyExpectations
    /// `NCCL_IB_GID_INDEX` from the environment (or the expectations), when set.
    package var ncclIBGIDIndex: Int?

    package init(expectations: TopologyExpectations = TopologyExpectations(), ncclIBGIDIndex: Int? = nil) {
        self.expectations = expectations
        self.ncclIBGIDIndex = ncclIBGIDIndex ?? expectations.ncclIBGIDIndex
    }

    package func run(_ host: HostTopology) -> [CheckResult] {
        // Every host has PCI devices: none read means sysfs was not readable (a wrong --root, a
        // container without /sys), and "no GPUs, nothing to check" would pass on missing data.
        // What nvidia-smi's matrix says stands on its own.
        guard !host.pciDevices.isEmpty else {
            return [
                CheckResult(
                    id: "host.pci_devices", status: .warn, subject: host.hostname,
                    message: "unknown: no PCI devices could be read, so the PCIe, locality, RDMA and network checks could not run",
                    evidence: [Evidence("/sys/bus/pci/devices", "missing or empty")],
                    hint: "run topo on the host itself with /sys mounted, or point --root at a full sysfs capture")
            ] + (host.nvidiaTopology == nil ? [] : nvlinkUniformity(host)) + expected(host)
        }
        return pcieLinks(host) + gpuNICLocality(host) + nvlinkUniformity(host) + rdmaPorts(host) + roceGIDs(host)
            + mtu(host) + sriov(host) + expected(host)
    }

    static func pass(_ id: String, _ message: String) -> CheckResult {
        CheckResult(id: id, status: .pass, subject: "host", message: message)
    }

    func ev(_ device: PCIDevice, _ file: String, _ value: Any?) -> Evidence {
        Evidence("\(device.sysfsPath)/\(file)", value.map { "\($0)" } ?? "missing")
    }

    // 1. PCIe width below max → fail (GPU, NIC, NVMe, switch ports). Speed below max → fail for
    //    NIC/NVMe, warn for GPUs (they lower the link speed when idle).
    func pcieLinks(_ host: HostTopology) -> [CheckResult] {
        var results: [CheckResult] = []
        let relevant = host.pciDevices.filter {
            [.gpu, .nic, .infiniband, .nvme, .bridge, .nvswitch].contains($0.kind) && $0.physicalFunction == nil
        }
        for d in relevant {
            if let cur = d.currentWidth, let max = d.maxWidth, cur > 0, cur < max {
                results.append(
                    CheckResult(
                        id: "pcie.width", status: .fail, subject: d.address,
                        message: "\(d.kind.rawValue) link trained to x\(cur), capable of x\(max)",
                        evidence: [ev(d, "current_link_width", cur), ev(d, "max_link_width", max)],
                        hint:
                            "Reseat the card or riser, check the slot's bifurcation setting in BIOS; a narrow link is a hardware fault, not a power state."
                    ))
            }
            if let cur = d.currentGen, let max = d.maxGen, cur < max, d.kind != .bridge {
                let isGPU = d.kind == .gpu
                results.append(
                    CheckResult(
                        id: "pcie.speed", status: isGPU ? .warn : .fail, subject: d.address,
                        message: "\(d.kind.rawValue) link at Gen\(cur), capable of Gen\(max)\(isGPU ? " (GPUs lower the link speed when idle)" : "")",
                        evidence: [ev(d, "current_link_speed", d.currentSpeed), ev(d, "max_link_speed", d.maxSpeed)],
                        hint: isGPU
                            ? "Re-check under load (nvidia-smi -q -d PCIE); a GPU that stays slow under load has a link fault."
                            : "Check the slot, riser and BIOS PCIe speed setting; the link should train at its maximum."))
            }
        }
        // Only links that could be read count toward a pass; the others are named (a virtual
        // device, e.g. virtio, has no link attributes at all; a capture may have left them out).
        let readableWidth = relevant.filter { ($0.currentWidth ?? 0) > 0 && ($0.maxWidth ?? 0) > 0 }
        let readableSpeed = relevant.filter { $0.kind != .bridge && $0.currentGen != nil && $0.maxGen != nil }
        for (id, readable, files, what) in [
            ("pcie.width", readableWidth, ["current_link_width", "max_link_width"], "width"),
            ("pcie.speed", readableSpeed, ["current_link_speed", "max_link_speed"], "speed"),
        ] {
            let found = results.contains { $0.id == id }
            let unreadable = relevant.filter { d in (id == "pcie.width" || d.kind != .bridge) && !readable.contains { $0.address == d.address } }
            if !unreadable.isEmpty {
                results.append(
                    CheckResult(
                        id: id, status: .warn, subject: unreadable.count == 1 ? unreadable[0].address : host.hostname,
                        message:
                            "unknown: link \(what) of \(unreadable.map { "\($0.kind.rawValue) \($0.address)" }.joined(separator: ", ")) not readable",
                        evidence: unreadable.prefix(4).flatMap { d in files.map { Evidence("\(d.sysfsPath)/\($0)", "missing or unknown") } },
                        hint: "a virtual device (virtio) has no PCIe link to check; on bare metal, read the files as root or capture them"))
            }
            if !found, !readable.isEmpty { results.append(Self.pass(id, "\(readable.count) PCIe links at full \(what)")) }
        }
        return results
    }

    /// The RDMA NIC closest to `gpu` (physical functions only), with its path class.
    package static func nearestRdmaNic(_ gpu: PCIDevice, in host: HostTopology) -> (PCIDevice, PathClass)? {
        let nics = host.rdmaNICAddresses.compactMap { host.device($0) }.filter { $0.physicalFunction == nil }
        return nics.map { ($0, PathClass.between(gpu, $0)) }
            .min { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0.address < $1.0.address }
    }

    // 2. Each GPU has an RDMA NIC at PIX/PXB on its own NUMA node.
    func gpuNICLocality(_ host: HostTopology) -> [CheckResult] {
        let gpus = host.gpus.filter { $0.physicalFunction == nil }
        guard !gpus.isEmpty else { return [Self.pass("gpu.nic_locality", "not applicable: no GPUs")] }
        guard !host.rdmaNICAddresses.isEmpty else {
            // RDMA devices that cannot be tied to a PCI function are missing data, not absent NICs.
            let untied = host.rdmaDevices.filter { $0.pciAddress == nil }.map(\.name)
            guard untied.isEmpty else {
                return [
                    CheckResult(
                        id: "gpu.nic_locality", status: .warn, subject: host.hostname,
                        message: "unknown: RDMA devices \(untied.joined(separator: ", ")) exist but none could be tied to a PCI function",
                        evidence: untied.map { Evidence("/sys/class/infiniband/\($0)/device", "missing or unresolvable") },
                        hint: "capture /sys/class/infiniband with its device links (or run topo on the host itself)")
                ]
            }
            return [Self.pass("gpu.nic_locality", "not applicable: no RDMA NICs")]
        }
        var results: [CheckResult] = []
        for gpu in gpus {
            guard let (nic, path) = Self.nearestRdmaNic(gpu, in: host) else { continue }
            guard let gpuNUMA = gpu.numaNode, let nicNUMA = nic.numaNode else {
                // A missing NUMA node is not a match.
                results.append(
                    CheckResult(
                        id: "gpu.nic_locality", status: .warn, subject: gpu.address,
                        message: "unknown: NUMA node of \(gpu.numaNode == nil ? "the GPU" : "its nearest RDMA NIC \(nic.address)") is not readable",
                        evidence: [ev(gpu, "numa_node", gpu.numaNode), ev(nic, "numa_node", nic.numaNode)],
                        hint: "read numa_node from the device's sysfs directory (a capture may have left it out)"))
                continue
            }
            let sameNUMA = gpuNUMA == nicNUMA
            if path > .pxb || !sameNUMA {
                let hca = host.rdmaDevices.first { $0.pciAddress == nic.address }?.name ?? nic.address
                results.append(
                    CheckResult(
                        id: "gpu.nic_locality", status: .fail, subject: gpu.address,
                        message:
                            "nearest RDMA NIC \(hca) (\(nic.address)) is \(path.rawValue), NUMA \(nic.numaNode.map(String.init) ?? "?") vs GPU NUMA \(gpu.numaNode.map(String.init) ?? "?")",
                        evidence: [
                            ev(gpu, "numa_node", gpu.numaNode), ev(nic, "numa_node", nic.numaNode),
                            Evidence("pcie path", gpu.chain.joined(separator: "/") + " ↔ " + nic.chain.joined(separator: "/")),
                        ],
                        hint:
                            "GPUDirect RDMA traffic will cross \(path == .sys ? "sockets" : "host bridges"): move the NIC to the GPU's PCIe switch, or pin NCCL_IB_HCA per GPU."
                    ))
            }
        }
        if results.isEmpty { results.append(Self.pass("gpu.nic_locality", "every GPU (\(gpus.count)) has an RDMA NIC at PIX/PXB on its NUMA node")) }
        return results
    }

    // 3. NVLink platforms: every GPU pair NV# with the same count.
    func nvlinkUniformity(_ host: HostTopology) -> [CheckResult] {
        guard let matrix = host.nvidiaTopology else { return [] }
        let gpus = matrix.gpus
        var counts: [String: [(String, String)]] = [:]
        for (i, a) in gpus.enumerated() {
            for b in gpus[(i + 1)...] {
                counts[matrix.link(a, b) ?? "?", default: []].append((a, b))
            }
        }
        let nvKinds = counts.keys.filter { $0.hasPrefix("NV") }
        guard !nvKinds.isEmpty else { return [Self.pass("nvlink.uniform", "not applicable: no NVLink between GPUs")] }
        guard counts.count > 1 else { return [Self.pass("nvlink.uniform", "all \(gpus.count) GPUs linked pairwise by \(nvKinds[0])")] }
        let majority = counts.max { $0.value.count < $1.value.count }!.key
        return counts.filter { $0.key != majority }.flatMap { kind, pairs in
            pairs.map { a, b in
                CheckResult(
                    id: "nvlink.uniform", status: .fail, subject: "\(a)-\(b)",
                    message: "\(a)↔\(b) is \(kind), most pairs are \(majority)",
                    evidence: [Evidence("nvidia-smi topo -m", "\(a) \(b) \(kind)")],
                    hint: "An NVLink is down or degraded: check nvidia-smi nvlink -s and the fabric manager; drain the node before use.")
            }
        }
    }

    // 4a. RDMA ports ACTIVE / LinkUp, at the expected rate.
    func rdmaPorts(_ host: HostTopology) -> [CheckResult] {
        guard !host.rdmaDevices.isEmpty else { return [] }
        var results: [CheckResult] = []
        for device in host.rdmaDevices {
            for port in device.ports {
                let subject = "\(device.name)/\(port.number)"
                if !port.isActive {
                    results.append(
                        CheckResult(
                            id: "rdma.port_state", status: .fail, subject: subject, message: "port is \(port.state), \(port.physState)",
                            evidence: [Evidence("\(port.sysfsPath)/state", port.state), Evidence("\(port.sysfsPath)/phys_state", port.physState)],
                            hint: "Check the cable and switch port; for InfiniBand, that a subnet manager is running."))
                }
                if let want = expectations.nicRateGbps, let have = port.rateGbps, have < want {
                    results.append(
                        CheckResult(
                            id: "rdma.rate", status: .fail, subject: subject, message: "port rate \(port.rate), expected \(Int(want)) Gb/sec",
                            evidence: [Evidence("\(port.sysfsPath)/rate", port.rate)],
                            hint: "Link negotiated below its rated speed: check cable, transceiver and switch port configuration."))
                } else if let want = expectations.nicRateGbps, port.rateGbps == nil {
                    results.append(
                        CheckResult(
                            id: "rdma.rate", status: .warn, subject: subject,
                            message: "unknown: port rate '\(port.rate)' not readable, expected \(Int(want)) Gb/sec",
                            evidence: [Evidence("\(port.sysfsPath)/rate", port.rate)], hint: "read the port's rate file on the host itself"))
                }
            }
        }
        if !results.contains(where: { $0.id == "rdma.port_state" }) {
            let ports = host.rdmaDevices.flatMap(\.ports).count
            results.append(Self.pass("rdma.port_state", ports == 0 ? "not applicable: no RDMA ports" : "\(ports) RDMA ports ACTIVE/LinkUp"))
        }
        return results
    }

    // 4b. RoCE: an IPv4-mapped RoCE v2 GID bound to a netdev; NCCL_IB_GID_INDEX points at one.
    func roceGIDs(_ host: HostTopology) -> [CheckResult] {
        let ports = host.rdmaDevices.flatMap { d in d.ports.filter { $0.linkLayer == "Ethernet" }.map { (d, $0) } }
        guard !ports.isEmpty else { return [] }
        var results: [CheckResult] = []
        for (device, port) in ports {
            let subject = "\(device.name)/\(port.number)"
            let gidEvidence = port.gids.map { Evidence("\(port.sysfsPath)/gids/\($0.index)", "\($0.gid) \($0.type ?? "?") \($0.netdev ?? "-")") }
            if !port.gids.contains(where: { $0.isRoCEv2IPv4 && $0.netdev != nil }) {
                results.append(
                    CheckResult(
                        id: "rdma.roce_gid", status: .fail, subject: subject, message: "no RoCE v2 IPv4-mapped GID bound to a netdev",
                        evidence: gidEvidence,
                        hint:
                            "Assign an IPv4 address to the RoCE netdev (GIDs are derived from its addresses) and check the RoCE mode (cma_roce_mode)."
                    ))
            }
            if let index = ncclIBGIDIndex, index >= 0 {
                let entry = port.gids.first { $0.index == index }
                if entry?.isRoCEv2IPv4 != true {
                    results.append(
                        CheckResult(
                            id: "rdma.nccl_gid_index", status: .fail, subject: subject,
                            message:
                                "NCCL_IB_GID_INDEX=\(index) is \(entry.map { "\($0.type ?? "?") \($0.ipv4 ?? $0.gid)" } ?? "empty"), not RoCE v2 IPv4",
                            evidence: [Evidence("NCCL_IB_GID_INDEX", String(index))] + gidEvidence,
                            hint:
                                "Set NCCL_IB_GID_INDEX to \(port.gids.first(where: \.isRoCEv2IPv4).map { String($0.index) } ?? "a RoCE v2 IPv4 entry"), or unset it (-1) to let NCCL pick."
                        ))
                }
            }
        }
        if !results.contains(where: { $0.id == "rdma.roce_gid" }) {
            results.append(Self.pass("rdma.roce_gid", "\(ports.count) RoCE ports have a RoCE v2 IPv4 GID"))
        }
        return results
    }

    // 5. Fabric MTU equal across interfaces; RoCE netdev MTU < 4200 → warn.
    func mtu(_ host: HostTopology) -> [CheckResult] {
        let fabric = host.interfaces.filter { !$0.rdmaDevices.isEmpty || ($0.pciAddress.map(host.rdmaNICAddresses.contains) ?? false) }
        guard !fabric.isEmpty else {
            // An expected fabric MTU with no fabric to read it from is not a pass.
            if let want = expectations.mtu {
                return [
                    CheckResult(
                        id: "net.mtu_consistent", status: .warn, subject: host.hostname,
                        message: "unknown: no fabric (RDMA) interface to check the expected MTU \(want) on",
                        evidence: [Evidence("/sys/class/net/*/device/infiniband", "none")],
                        hint: "check that the RDMA NICs and their drivers are present")
                ]
            }
            return [Self.pass("net.mtu_consistent", "not applicable: no fabric (RDMA) interfaces")]
        }
        var results: [CheckResult] = []
        var byMTU: [Int: Int] = [:]
        for i in fabric { if let m = i.mtu { byMTU[m, default: 0] += 1 } }
        let want = expectations.mtu ?? byMTU.max { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key }?.key
        for i in fabric {
            guard let m = i.mtu else { continue }
            if let want, m != want {
                results.append(
                    CheckResult(
                        id: "net.mtu_consistent", status: .fail, subject: i.name,
                        message: "MTU \(m), the fabric uses \(want)",
                        evidence: [Evidence("/sys/class/net/\(i.name)/mtu", String(m))],
                        hint: "Set MTU \(want) on \(i.name) (and its switch port); mismatched MTUs drop or fragment RDMA traffic."))
            }
            let isRoCE = i.type == 1
            if isRoCE, m < 4200 {
                results.append(
                    CheckResult(
                        id: "net.roce_mtu", status: .warn, subject: i.name, message: "RoCE netdev MTU \(m) < 4200: RDMA messages use 1024-byte MTU",
                        evidence: [Evidence("/sys/class/net/\(i.name)/mtu", String(m))],
                        hint: "Use MTU 9000 on RoCE fabrics so the 4096-byte RDMA MTU fits."))
            }
        }
        if !results.contains(where: { $0.id == "net.mtu_consistent" }) {
            results.append(Self.pass("net.mtu_consistent", "\(fabric.count) fabric interfaces at MTU \(want.map(String.init) ?? "?")"))
        }
        return results
    }

    // SR-IOV: VFs enabled as expected, and the kernel's count agrees with the VF links.
    func sriov(_ host: HostTopology) -> [CheckResult] {
        let pfs = host.pciDevices.filter { ($0.sriovTotalVfs ?? 0) > 0 && host.rdmaNICAddresses.contains($0.address) }
        guard !pfs.isEmpty else {
            guard let want = expectations.sriovVfs, want > 0 else { return [] }
            return [
                CheckResult(
                    id: "sriov.vfs", status: .fail, subject: host.hostname, message: "\(want) VFs expected, but no RDMA NIC offers SR-IOV",
                    evidence: [Evidence("/sys/bus/pci/devices/*/sriov_totalvfs", "none on an RDMA NIC")],
                    hint: "enable SR-IOV in the NIC's firmware and BIOS, or fix the expectation")
            ]
        }
        var results: [CheckResult] = []
        for pf in pfs {
            let num = pf.sriovNumVfs ?? 0
            if num != pf.virtualFunctions.count {
                results.append(
                    CheckResult(
                        id: "sriov.vfs", status: .fail, subject: pf.address,
                        message: "sriov_numvfs says \(num) but \(pf.virtualFunctions.count) VFs are present",
                        evidence: [ev(pf, "sriov_numvfs", num)], hint: "VF creation failed part-way: check dmesg for the PF's driver."))
            } else if let want = expectations.sriovVfs, num < want {
                results.append(
                    CheckResult(
                        id: "sriov.vfs", status: .fail, subject: pf.address, message: "\(num) VFs enabled, expected \(want)",
                        evidence: [ev(pf, "sriov_numvfs", num), ev(pf, "sriov_totalvfs", pf.sriovTotalVfs)],
                        hint: "echo \(want) > \(pf.sysfsPath)/sriov_numvfs (or fix the SR-IOV network operator's policy)."))
            }
        }
        if results.isEmpty { results.append(Self.pass("sriov.vfs", "\(pfs.count) SR-IOV PFs with their VFs")) }
        return results
    }

    // --expect: counts, product, rate, MTU, GID type.
    func expected(_ host: HostTopology) -> [CheckResult] {
        let e = expectations
        var results: [CheckResult] = []
        func check(_ id: String, _ ok: Bool, _ message: String, _ evidence: [Evidence]) {
            results.append(
                CheckResult(
                    id: id, status: ok ? .pass : .fail, subject: "host", message: message, evidence: evidence,
                    hint: ok ? nil : "The host differs from the --expect file: fix the host or the expectation."))
        }
        let gpus = host.gpus.filter { $0.physicalFunction == nil }
        if let want = e.gpuCount {
            check(
                "expect.gpu_count", gpus.count == want, "\(gpus.count) GPUs, expected \(want)",
                [Evidence("/sys/bus/pci/devices (class 0x03*)", String(gpus.count))])
        }
        if let want = e.gpuProduct {
            let products = Set(host.gpuInfo.map(\.product))
            check(
                "expect.gpu_product", products == [want],
                products.isEmpty
                    ? "GPU product unknown (give --nvidia-smi-xml), expected \(want)"
                    : "GPU product \(products.sorted().joined(separator: ", ")), expected \(want)",
                [Evidence("nvidia-smi -q -x product_name", products.sorted().joined(separator: ", "))])
        }
        let rdmaNics = host.rdmaNICAddresses.compactMap { host.device($0) }.filter { $0.physicalFunction == nil }
        if let want = e.nicCount {
            check(
                "expect.nic_count", rdmaNics.count == want, "\(rdmaNics.count) RDMA NICs, expected \(want)",
                [Evidence("/sys/class/infiniband", String(rdmaNics.count))])
        }
        if let want = e.gidType {
            let ports = host.rdmaDevices.flatMap(\.ports)
            let missing = ports.filter { port in !port.gids.contains { $0.type == want } }
            // No port at all is not "every port has one".
            check(
                "expect.gid_type", !ports.isEmpty && missing.isEmpty,
                ports.isEmpty
                    ? "no RDMA port found to carry a \(want) GID"
                    : missing.isEmpty ? "every RDMA port (\(ports.count)) has a \(want) GID" : "\(missing.count) ports have no \(want) GID",
                ports.isEmpty
                    ? [Evidence("/sys/class/infiniband", "no ports")] : missing.map { Evidence("\($0.sysfsPath)/gid_attrs/types", "no \(want)") })
        }
        return results
    }
}
