import SwitchyardCore
import Yams

/// `--expect FILE`: what this host should have. Every mismatch is a failure.
///
/// ```yaml
/// gpus: { count: 8, product: NVIDIA H200 }
/// nics: { count: 8, rate_gbps: 400 }
/// mtu: 9000
/// gid_type: RoCE v2
/// sriov_vfs: 8
/// nccl_ib_gid_index: 3
/// ```
package struct TopologyExpectations: Sendable, Equatable {
    package var gpuCount: Int?
    package var gpuProduct: String?
    package var nicCount: Int?
    package var nicRateGbps: Double?
    package var mtu: Int?
    package var gidType: String?
    package var sriovVfs: Int?
    package var ncclIBGIDIndex: Int?

    package init() {}

    package static func load(yaml: String) throws -> TopologyExpectations {
        guard let any = try Yams.load(yaml: yaml) else { return TopologyExpectations() }
        guard let top = any as? [String: Any] else {
            throw ConfigError(issues: [ConfigIssue(path: "", message: "expected a mapping")])
        }
        var e = TopologyExpectations()
        var issues: [ConfigIssue] = []
        let allowed: Set<String> = ["gpus", "nics", "mtu", "gid_type", "sriov_vfs", "nccl_ib_gid_index"]
        for key in top.keys where !allowed.contains(key) {
            issues.append(ConfigIssue(path: key, message: "unknown field; allowed: \(allowed.sorted().joined(separator: ", "))"))
        }
        func int(_ value: Any?, _ path: String) -> Int? {
            guard let value else { return nil }
            if let i = value as? Int { return i }
            issues.append(ConfigIssue(path: path, message: "expected an integer, got '\(value)'"))
            return nil
        }
        if let gpus = top["gpus"] as? [String: Any] {
            e.gpuCount = int(gpus["count"], "gpus.count")
            e.gpuProduct = gpus["product"].map { "\($0)" }
        }
        if let nics = top["nics"] as? [String: Any] {
            e.nicCount = int(nics["count"], "nics.count")
            if let rate = nics["rate_gbps"] {
                if let d = rate as? Double {
                    e.nicRateGbps = d
                } else if let i = rate as? Int {
                    e.nicRateGbps = Double(i)
                } else {
                    issues.append(ConfigIssue(path: "nics.rate_gbps", message: "expected a number, got '\(rate)'"))
                }
            }
        }
        e.mtu = int(top["mtu"], "mtu")
        e.gidType = top["gid_type"].map { "\($0)" }
        e.sriovVfs = int(top["sriov_vfs"], "sriov_vfs")
        e.ncclIBGIDIndex = int(top["nccl_ib_gid_index"], "nccl_ib_gid_index")
        if !issues.isEmpty { throw ConfigError(issues: issues) }
        return e
    }
}
