/// Checks that Slurm agrees with itself and with the hardware: node states and their reasons,
/// every node in the topology, GRES against gres.conf and against the host's GPUs, and GRES
/// `Cores=` on the GPU's NUMA node (with `switchyard topo --format json` of the hosts).
package struct SlurmChecks: Sendable {
    /// Host topology reports by hostname (`topo --format json`), when given.
    package var hosts: [String: TopoReport]

    package init(hosts: [String: TopoReport] = [:]) {
        self.hosts = hosts
    }

    static let badStates: Set<String> = ["DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "NOT_RESPONDING", "INVALID_REG", "INVALID"]

    package func run(_ s: SlurmSnapshot) -> [CheckResult] {
        nodeStates(s) + partitions(s) + topology(s) + gres(s) + gresCores(s)
    }

    /// Partitions that are not `up`: jobs submitted to them queue and never start.
    func partitions(_ s: SlurmSnapshot) -> [CheckResult] {
        guard let partitions = s.partitions else { return [] }
        let down = partitions.filter { $0.value != "up" }.sorted { $0.key < $1.key }
        guard !down.isEmpty else { return [Self.pass("slurm.partition", "\(partitions.count) partitions up")] }
        return down.map { name, avail in
            CheckResult(
                id: "slurm.partition", status: .fail, subject: name, message: "partition is \(avail): jobs submitted to it queue and do not start",
                evidence: [Evidence("sinfo AVAIL", avail)], hint: "scontrol update partitionname=\(name) state=up once it may run jobs again")
        }
    }

    static func pass(_ id: String, _ message: String) -> CheckResult { CheckResult(id: id, status: .pass, subject: "cluster", message: message) }

    func nodeStates(_ s: SlurmSnapshot) -> [CheckResult] {
        var results: [CheckResult] = []
        for node in s.nodes {
            let bad = node.states.filter(Self.badStates.contains)
            guard !bad.isEmpty else { continue }
            let reason = node.reason ?? "no reason given"
            let (kind, hint) = Self.explain(reason)
            results.append(
                CheckResult(
                    id: "slurm.node_state", status: .fail, subject: node.name, message: "\(node.states.joined(separator: "+")): \(kind)\(reason)",
                    evidence: [Evidence("State", node.states.joined(separator: "+")), Evidence("Reason", reason)], hint: hint))
        }
        if results.isEmpty { results.append(Self.pass("slurm.node_state", "\(s.nodes.count) nodes up, none drained or down")) }
        return results
    }

    static func typed(_ types: Set<String>) -> String { types.isEmpty ? "" : " (\(types.sorted().joined(separator: ", ")))" }

    /// What a drain reason says, and what to do about it.
    static func explain(_ reason: String) -> (String, String) {
        if reason.hasPrefix("NHC") {
            return (
                "node health check (NHC) failed: ",
                "fix what NHC names on the node, run nhc there, then: scontrol update nodename=<node> state=resume"
            )
        }
        if reason.contains("gres/gpu count reported lower than configured") || reason.lowercased().contains("gres") {
            return (
                "the node's GPUs disagree with its configuration: ",
                "compare nvidia-smi on the node with Gres= in slurm.conf and gres.conf; fix the config or the GPU, restart slurmd"
            )
        }
        if reason.contains("Not responding") || reason.contains("NO NETWORK ADDRESS") {
            return ("slurmd unreachable: ", "check slurmd and munge on the node, and the network to slurmctld")
        }
        if reason.lowercased().contains("kill task failed") {
            return ("stuck job processes: ", "find unkillable processes (D state, GPU hangs); reboot if needed")
        }
        return ("", "read the reason, fix the node, then: scontrol update nodename=<node> state=resume")
    }

    func topology(_ s: SlurmSnapshot) -> [CheckResult] {
        guard let topology = s.topology else {
            return [
                CheckResult(
                    id: "slurm.topology", status: .warn, subject: "cluster", message: "unknown: no topology.conf in the input",
                    hint:
                        "without a topology Slurm places jobs with no regard to switches: capture topology.conf (TopologyPlugin=topology/tree or block)"
                )
            ]
        }
        let placed = Set(topology.values.joined())
        var results: [CheckResult] = []
        for node in s.nodes where !placed.contains(node.name) {
            results.append(
                CheckResult(
                    id: "slurm.topology", status: .fail, subject: node.name, message: "not in any switch or block of topology.conf",
                    evidence: [Evidence("topology.conf", "\(topology.count) switches/blocks, \(placed.count) nodes")],
                    hint: "add \(node.name) to its leaf switch (or block); otherwise jobs spanning it ignore the network's shape"))
        }
        let known = Set(s.nodes.map(\.name))
        let unknown = placed.subtracting(known).sorted()
        if !unknown.isEmpty {
            results.append(
                CheckResult(
                    id: "slurm.topology_extra", status: .warn, subject: "topology.conf",
                    message: "\(unknown.count) nodes in topology.conf that Slurm does not list",
                    evidence: [Evidence("nodes", unknown.prefix(20).joined(separator: ","))], hint: "remove retired nodes from topology.conf"))
        }
        if !results.contains(where: { $0.status == .fail }) {
            results.append(Self.pass("slurm.topology", "every node (\(s.nodes.count)) is in topology.conf"))
        }
        return results
    }

    func gres(_ s: SlurmSnapshot) -> [CheckResult] {
        var results: [CheckResult] = []
        var checked = 0
        for node in s.nodes {
            let reported = node.gres.filter { $0.name == "gpu" }
            let count = reported.reduce(0) { $0 + $1.count }
            if let configured = s.configuredGres(for: node.name)?.filter({ $0.name == "gpu" }), !configured.isEmpty || count > 0 {
                checked += 1
                let want = configured.reduce(0) { $0 + $1.count }
                let wantTypes = Set(configured.compactMap(\.type))
                let gotTypes = Set(reported.compactMap(\.type))
                if want != count || (!wantTypes.isEmpty && !gotTypes.isEmpty && wantTypes != gotTypes) {
                    results.append(
                        CheckResult(
                            id: "slurm.gres", status: .fail, subject: node.name,
                            message:
                                "Gres says \(count) GPUs \(gotTypes.sorted().joined(separator: ",")), gres.conf \(want) \(wantTypes.sorted().joined(separator: ","))",
                            evidence: [
                                Evidence(
                                    "scontrol Gres",
                                    node.fields["Gres"] ?? reported.map { "\($0.name):\($0.type ?? ""):\($0.count)" }.joined(separator: ",")),
                                Evidence(
                                    "gres.conf",
                                    configured.map { "\($0.type ?? "-") x\($0.count) \($0.files.joined(separator: ","))" }.joined(separator: "; ")),
                            ],
                            hint: "make slurm.conf's Gres= and gres.conf name the same type and count; restart slurmd on the node"))
                }
            }
            if let host = hosts[node.name] {
                checked += 1
                let gpus = host.host.gpus
                let product = host.summary.gpuProduct ?? ""
                var problems: [String] = []
                if gpus.count != count { problems.append("\(count) GPUs in Slurm, \(gpus.count) on the host") }
                for type in Set(reported.compactMap(\.type)) where !product.isEmpty && !product.lowercased().contains(type.lowercased()) {
                    problems.append("type \(type) but the host has \(product)")
                }
                if !problems.isEmpty {
                    results.append(
                        CheckResult(
                            id: "slurm.gres", status: .fail, subject: node.name, message: problems.joined(separator: "; "),
                            evidence: [
                                Evidence("scontrol Gres", node.fields["Gres"] ?? "\(count)"), Evidence("topo gpus", "\(gpus.count) \(product)"),
                            ],
                            hint: "Slurm schedules GPUs the node does not have (or hides ones it has): fix Gres=, or the failed GPU"))
                }
            }
        }
        if !results.contains(where: { $0.id == "slurm.gres" }) {
            results.append(
                checked == 0
                    ? CheckResult(
                        id: "slurm.gres", status: .warn, subject: "cluster",
                        message: "unknown: no gres.conf and no host topology to check the nodes' GRES against",
                        hint: "capture gres.conf, or give --hosts DIR of `switchyard topo --format json` files")
                    : Self.pass("slurm.gres", "GRES agrees on \(checked) checks"))
        }
        return results
    }

    /// GRES `Cores=` must be CPUs of the GPU's NUMA node (`/dev/nvidiaN` is the host's GPU N in
    /// PCI order).
    func gresCores(_ s: SlurmSnapshot) -> [CheckResult] {
        guard !hosts.isEmpty, let conf = s.gresConf else { return [] }
        var results: [CheckResult] = []
        var checked = 0
        for node in s.nodes {
            guard let host = hosts[node.name] else { continue }
            let gpus = host.host.gpus.sorted { $0.address < $1.address }
            for line in conf where line.gres.name == "gpu" && (line.nodes.contains(node.name) || line.nodes == ["*"]) {
                guard let cores = line.gres.cores, let coreSet = CPUList.parse(cores) else { continue }
                for file in line.gres.files {
                    guard let index = Int(file.drop(while: { !$0.isNumber })), index < gpus.count else { continue }
                    checked += 1
                    let gpu = gpus[index]
                    guard let numa = gpu.numaNode, let cpus = host.host.numaNodes.first(where: { $0.id == numa }).flatMap({ CPUList.parse($0.cpus) })
                    else {
                        results.append(
                            CheckResult(
                                id: "slurm.gres_cores", status: .warn, subject: "\(node.name) \(file)",
                                message: "unknown: the GPU's NUMA node or its CPUs are not in the host report",
                                evidence: [Evidence("gpu", gpu.address)]))
                        continue
                    }
                    if !coreSet.isSubset(of: cpus) {
                        results.append(
                            CheckResult(
                                id: "slurm.gres_cores", status: .fail, subject: "\(node.name) \(file)",
                                message:
                                    "Cores=\(cores) are not on the GPU's NUMA node \(numa) (CPUs \(host.host.numaNodes.first { $0.id == numa }?.cpus ?? "?"))",
                                evidence: [Evidence("gres.conf Cores", cores), Evidence("\(gpu.address) numa_node", String(numa))],
                                hint:
                                    "bind each GPU to its own socket's cores in gres.conf (or use AutoDetect=nvml), or jobs pay a cross-socket hop per transfer"
                            ))
                    }
                }
            }
        }
        if results.isEmpty && checked > 0 { results.append(Self.pass("slurm.gres_cores", "\(checked) GPUs' Cores= on their NUMA node")) }
        return results
    }
}

/// Linux CPU lists (`0-47,96-143`).
package enum CPUList {
    package static func parse(_ text: String) -> Set<Int>? {
        var out = Set<Int>()
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-")
            if bounds.count == 2, let lo = Int(bounds[0]), let hi = Int(bounds[1]), lo <= hi {
                out.formUnion(lo...hi)
            } else if bounds.count == 1, let n = Int(bounds[0]) {
                out.insert(n)
            } else {
                return nil
            }
        }
        return out
    }
}
