/// `switchyard topo compare`: hosts that should be alike, checked for drift.
package enum TopoCompare {
    package static func compare(_ reports: [TopoReport]) -> [CheckResult] {
        var results: [CheckResult] = []
        func field(_ id: String, _ what: String, hint: String, _ value: (TopoReport) -> String?) {
            let values = reports.map { ($0.host.hostname, value($0) ?? "-") }
            let distinct = Set(values.map(\.1))
            if distinct.count <= 1 {
                results.append(
                    CheckResult(id: id, status: .pass, subject: "hosts", message: "\(what) \(distinct.first ?? "-") on all \(reports.count) hosts"))
                return
            }
            var counts: [String: Int] = [:]
            for (_, v) in values { counts[v, default: 0] += 1 }
            let majority = counts.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }!.key
            for (host, v) in values where v != majority {
                results.append(
                    CheckResult(
                        id: id, status: .fail, subject: host, message: "\(what) \(v), most hosts have \(majority)",
                        evidence: values.map { Evidence($0.0, $0.1) }, hint: hint))
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
        return results
    }
}
