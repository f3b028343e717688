/// How two PCI devices are connected, in NVML's terms (best first).
package enum PathClass: String, Sendable, Codable, Comparable, CaseIterable {
    /// At most one PCIe switch between them.
    case pix = "PIX"
    /// Several PCIe bridges, without crossing the host bridge.
    case pxb = "PXB"
    /// Through the PCIe host bridge (same root complex).
    case phb = "PHB"
    /// Between host bridges of one NUMA node.
    case node = "NODE"
    /// Across the inter-socket interconnect.
    case sys = "SYS"

    static let order: [PathClass] = [.pix, .pxb, .phb, .node, .sys]

    package static func < (a: PathClass, b: PathClass) -> Bool {
        order.firstIndex(of: a)! < order.firstIndex(of: b)!
    }

    /// Classifies from the devices' sysfs chains (root complex first, then each upstream port).
    ///
    /// Below a common upstream port, each device at most two levels down (switch downstream port,
    /// device) is PIX; anything deeper is PXB. No common port under the same root is PHB.
    package static func between(_ a: PCIDevice, _ b: PCIDevice) -> PathClass {
        guard a.root == b.root, !a.root.isEmpty else {
            if let na = a.numaNode, let nb = b.numaNode, na == nb { return .node }
            return .sys
        }
        let ca = Array(a.chain.dropFirst())
        let cb = Array(b.chain.dropFirst())
        var common = 0
        while common < ca.count, common < cb.count, ca[common] == cb[common] { common += 1 }
        if common == 0 { return .phb }
        let hops = (ca.count - common) + (cb.count - common)
        return hops <= 4 ? .pix : .pxb
    }
}
