/// `switchyard topo compare`: hosts that should be alike, checked for drift.
package enum TopoCompare {
    package static func compare(_ reports: [TopoReport]) -> [CheckResult] {
        var results: [CheckResult] = []
        func field(_ id: String, _ what: String, hint: String, _ value: (TopoReport) -> String?) {
            let values = reports.map { ($0.host.hostname, value($0)) }
            // A host whose report lacks the value is unknown, never counted as agreeing.
            let missing = values.filter { $0.1 == nil }.map(\.0)
            if !missing.isEmpty {
                results.append(
                    CheckResult(
                        id: id, status: .warn, subject: missing.count == reports.count ? "hosts" : missing.joined(separator: ","),
                        message: "unknown: \(what) not in the report of \(missing.count) of \(reports.count) hosts",
                        evidence: missing.map { Evidence($0, "absent") }, hint: "run topo on those hosts with nvidia-smi and RDMA visible"))
            }
            let known = values.compactMap { host, v in v.map { (host, $0) } }
            guard !known.isEmpty else { return }
            let distinct = Set(known.map(\.1))
            if distinct.count <= 1 {
                if missing.isEmpty {
                    results.append(
                        CheckResult(
                            id: id, status: .pass, subject: "hosts", message: "\(what) \(distinct.first ?? "-") on all \(reports.count) hosts"))
                }
                return
            }
            var counts: [String: Int] = [:]
            for (_, v) in known { counts[v, default: 0] += 1 }
            let majority = counts.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }!.key
            for (host, v) in known where v != majority {
                results.append(
                    CheckResult(
                        id: id, status: .fail, subject: host, message: "\(what) \(v), most hosts have \(majority)",
                        evidence: known.map { Evidence($0.0, $0.1) }, hint: hint))
            }
        }
        field("compare.mtu", "fabric MTU", hint: "Use one MTU on every fabric interface of every node.") { $0.summary.fabricMtu.map(String.init) }
        field(
            "compare.gid_index", "RoCE v2 IPv4 GID index",
            hint: "NCCL_IB_GID_INDEX can only be set cluster-wide when every node has its RoCE v2 IPv4 GID at the same index."
        ) {
            $0.summary.roceGidIndex.map(String.init)
        }
        field("compare.gpu_product", "GPU product", hint: "Mixed GPU products in one pool break capacity plans and NCCL tuning.") {
            $0.summary.gpuProduct
        }
        field("compare.driver", "driver", hint: "Roll out one driver version per pool.") { $0.summary.driverVersion }
        field("compare.nic_rate", "NIC rate", hint: "A slower NIC limits every collective that node joins.") {
            $0.summary.nicRateGbps.map { "\(Int($0)) Gb/s" }
        }
        field("compare.gpu_count", "GPU count", hint: "A node with fewer GPUs has a GPU fallen off the bus or disabled.") { String($0.summary.gpus) }
        field("compare.nic_count", "RDMA NIC count", hint: "A node with fewer NICs has one down, unbound or missing its driver.") {
            String($0.summary.rdmaNics)
        }
        field("compare.gpu_link", "GPU PCIe links", hint: "Like GPUs should train at the same generation and width; reseat or check the riser.") {
            $0.host.gpus.isEmpty ? nil : Set($0.host.gpus.map(\.link)).sorted().joined(separator: ", ")
        }
        field(
            "compare.nic_firmware", "RDMA NIC firmware",
            hint: "Run one NIC firmware per pool (mlxfwmanager / mstflint); mixed firmware breaks RoCE and adaptive routing in subtle ways."
        ) {
            let versions = Set($0.host.rdma.compactMap(\.firmware))
            if $0.host.rdma.isEmpty { return "none (no RDMA NICs)" }
            return versions.isEmpty ? nil : versions.sorted().joined(separator: ", ")
        }
        field("compare.gpu_vbios", "GPU VBIOS", hint: "Flash one VBIOS per GPU product and pool.") { report -> String? in
            let versions = Set(report.host.gpus.compactMap(\.vbios))
            return versions.isEmpty ? nil : versions.sorted().joined(separator: ", ")
        }
        field("compare.nic_link", "NIC PCIe links", hint: "Like NICs should train at the same generation and width.") {
            $0.host.nics.isEmpty ? nil : Set($0.host.nics.map(\.link)).sorted().joined(separator: ", ")
        }
        return results
    }
}
