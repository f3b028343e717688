import Foundation
import Testing

@testable import SwitchyardProbe

@Suite struct TopologyChecksTests {
    static var expectations: TopologyExpectations {
        var e = TopologyExpectations()
        e.gpuCount = 8
        e.nicCount = 8
        e.nicRateGbps = 400
        e.mtu = 9000
        e.gidType = "RoCE v2"
        e.sriovVfs = 8
        return e
    }

    func run(_ faults: Set<SysfsFixture.Fault>, ncclGIDIndex: Int? = nil) throws -> (HostTopology, [CheckResult]) {
        let fixture = try SysfsFixture(faults: faults)
        defer { fixture.remove() }
        let host = TopologyProbe(root: fixture.root.path).probe(hostname: "hgx-test")
        return (host, TopologyChecks(expectations: Self.expectations, ncclIBGIDIndex: ncclGIDIndex).run(host))
    }

    static func failing(_ results: [CheckResult]) -> Set<String> { Set(results.filter { $0.status == .fail }.map(\.id)) }
    static func warning(_ results: [CheckResult]) -> Set<String> { Set(results.filter { $0.status == .warn }.map(\.id)) }

    @Test func healthyHGXHostReadsCorrectlyAndPasses() throws {
        let (host, results) = try run([])
        #expect(host.numaNodes.map(\.id) == [0, 1])
        #expect(host.gpus.count == 8)
        #expect(host.rdmaDevices.count == 8)
        #expect(host.pciDevices.filter { $0.kind == .nvme }.count == 4)
        #expect(host.interfaces.first { $0.name == "ens0np0" }?.rdmaDevices == ["mlx5_0"])
        let gpu0 = try #require(host.gpus.first { $0.address == "0000:18:00.0" })
        #expect(gpu0.chain == ["pci0000:15", "0000:15:01.0", "0000:16:00.0", "0000:17:00.0", "0000:18:00.0"])
        #expect(gpu0.currentGen == 5)
        let (nic, path) = try #require(TopologyChecks.nearestRdmaNic(gpu0, in: host))
        #expect(path == .pix)
        #expect(nic.address == "0000:1a:00.0")
        let port = try #require(host.rdmaDevices.first?.ports.first)
        #expect(port.gids.first { $0.index == 3 }?.isRoCEv2IPv4 == true)
        #expect(port.gids.first { $0.index == 3 }?.ipv4 == "10.12.1.0")
        #expect(Self.failing(results).isEmpty, "\(results.filter { $0.status == .fail })")
        #expect(Self.warning(results).isEmpty)
    }

    @Test(arguments: [
        (SysfsFixture.Fault.nicDowntrainedToX8, "pcie.width"),
        (.gpuNearestNICOnOtherNUMA, "gpu.nic_locality"),
        (.oneInterfaceMTU1500, "net.mtu_consistent"),
        (.noRoCEv2IPv4GID, "rdma.roce_gid"),
        (.fewerSRIOVVFs, "sriov.vfs"),
    ])
    func eachFaultIsCaughtByItsCheckAlone(fault: SysfsFixture.Fault, check: String) throws {
        let (_, results) = try run([fault])
        #expect(Self.failing(results) == [check], "\(results.filter { $0.status == .fail }.map { "\($0.id) \($0.subject): \($0.message)" })")
        let failure = try #require(results.first { $0.id == check && $0.status == .fail })
        #expect(!failure.evidence.isEmpty)
        #expect(failure.hint != nil)
    }

    @Test func anRDMADeviceIsTiedToItsNICThroughTheClassLinkAndNeverPassesWhenItCannotBe() throws {
        // The real layout without `device` links: the same verdicts as the healthy host.
        let (host, results) = try run([.rdmaClassLinkOnly])
        #expect(host.rdmaDevices.count == 8 && host.rdmaDevices.allSatisfy { $0.pciAddress != nil })
        #expect(Self.failing(results).isEmpty && Self.warning(results).isEmpty, "\(results.filter { $0.status != .pass })")
        // No way to tie them: missing data is a warning that says so, never "no RDMA NICs".
        let (_, untied) = try run([.rdmaUntied])
        let locality = untied.filter { $0.id == "gpu.nic_locality" }
        #expect(locality.count == 1 && locality[0].status == .warn, "\(locality)")
        #expect(locality[0].message.hasPrefix("unknown:") && !locality[0].message.contains("not applicable"))
    }

    @Test func faultSubjectsAndEvidence() throws {
        let (_, narrow) = try run([.nicDowntrainedToX8])
        let width = try #require(narrow.first { $0.id == "pcie.width" && $0.status == .fail })
        #expect(width.subject == "0000:a0:00.0")
        #expect(width.evidence.contains(Evidence("/sys/bus/pci/devices/0000:a0:00.0/current_link_width", "8")))

        let (_, locality) = try run([.gpuNearestNICOnOtherNUMA])
        #expect(Set(locality.filter { $0.id == "gpu.nic_locality" && $0.status == .fail }.map(\.subject)) == ["0000:18:00.0", "0000:19:00.0"])

        let (_, mtu) = try run([.oneInterfaceMTU1500])
        #expect(mtu.first { $0.id == "net.mtu_consistent" && $0.status == .fail }?.subject == "ens2np0")
        #expect(Self.warning(mtu) == ["net.roce_mtu"], "a 1500 RoCE MTU is also worth a warning")
    }

    @Test func ncclGIDIndexOnARoCEv1EntryFails() throws {
        let (_, good) = try run([], ncclGIDIndex: 3)
        #expect(Self.failing(good).isEmpty)
        let (_, bad) = try run([.ncclGIDIndexOnRoCEv1], ncclGIDIndex: 2)
        #expect(Self.failing(bad) == ["rdma.nccl_gid_index"])
        #expect(bad.first { $0.id == "rdma.nccl_gid_index" }?.hint?.contains("Set NCCL_IB_GID_INDEX to 3") == true)
    }

    /// A link whose attributes are missing (a virtio device, a partial capture) is unknown, named
    /// in a warning; the pass counts only the links read. With none readable there is no pass.
    @Test func anUnreadableLinkIsUnknownNeverAPass() throws {
        let fixture = try SysfsFixture()
        defer { fixture.remove() }
        let nic = try #require(fixture.nics.first)
        let dir = URL(fileURLWithPath: fixture.root.path + "/sys/bus/pci/devices/\(nic)").resolvingSymlinksInPath().path
        for file in ["current_link_width", "max_link_width", "current_link_speed", "max_link_speed"] {
            try FileManager.default.removeItem(atPath: "\(dir)/\(file)")
        }
        let host = TopologyProbe(root: fixture.root.path).probe(hostname: "hgx-test")
        let results = TopologyChecks(expectations: Self.expectations).run(host)
        for id in ["pcie.width", "pcie.speed"] {
            let warn = try #require(results.first { $0.id == id && $0.status == .warn }, "\(id): \(results)")
            #expect(warn.subject == nic && warn.message.hasPrefix("unknown:") && warn.message.contains(nic))
            let pass = try #require(results.first { $0.id == id && $0.status == .pass })
            let all = try run([]).1.first { $0.id == id && $0.status == .pass }?.message ?? ""
            #expect(pass.message != all, "one link fewer is counted: \(pass.message) vs \(all)")
        }
        var bare = host
        bare.pciDevices = host.pciDevices.map { d in
            var d = d
            d.currentWidth = nil
            d.currentSpeed = nil
            return d
        }
        let none = TopologyChecks(expectations: Self.expectations).run(bare)
        #expect(!none.contains { $0.id.hasPrefix("pcie.") && $0.status == .pass }, "nothing read, nothing passed")
    }

    /// A root with nothing under it (a wrong --root, no /sys) is unknown, never "no GPUs: not
    /// applicable" passes; expectations still fail against it.
    @Test func anUnreadableSysfsPassesNothing() {
        let host = TopologyProbe(root: "/nonexistent-\(UUID().uuidString)").probe(hostname: "h")
        let results = TopologyChecks().run(host)
        #expect(results.map(\.id) == ["host.pci_devices"] && results.first?.status == .warn, "\(results)")
        var expecting = Self.expectations
        expecting.ncclIBGIDIndex = nil
        let expected = TopologyChecks(expectations: expecting).run(host)
        #expect(!expected.contains { $0.status == .pass }, "\(expected)")
        #expect(expected.contains { $0.id.hasPrefix("expect.") && $0.status == .fail }, "\(expected)")
    }

    /// Expectations about a fabric that is not there are not met by default: no RDMA NIC means no
    /// expected MTU confirmed (unknown), no SR-IOV VFs (fail), no RoCE GID (fail).
    @Test func expectationsOfAMissingFabricAreNotPasses() throws {
        var (host, _) = try run([])
        host.rdmaDevices = []
        host.interfaces = host.interfaces.map { i in
            var i = i
            i.rdmaDevices = []
            return i
        }
        var expecting = Self.expectations
        expecting.mtu = 9000
        expecting.sriovVfs = 4
        let results = TopologyChecks(expectations: expecting).run(host)
        func status(_ id: String) -> [CheckStatus] { results.filter { $0.id == id }.map(\.status) }
        #expect(status("net.mtu_consistent") == [.warn], "\(results.filter { $0.id == "net.mtu_consistent" })")
        #expect(status("sriov.vfs") == [.fail])
        #expect(status("expect.gid_type") == [.fail])
        #expect(!results.contains { $0.id.hasPrefix("rdma.") && $0.status == .pass }, "no port, no port check passed")
    }

    @Test func idleGPUAtGen1IsOnlyAWarning() throws {
        let (_, results) = try run([.idleGPUAtGen1])
        #expect(Self.failing(results).isEmpty)
        #expect(Self.warning(results) == ["pcie.speed"])
        #expect(results.first { $0.id == "pcie.speed" && $0.status == .warn }?.subject == "0000:3a:00.0")
    }

    @Test func expectationsMismatchFail() throws {
        let fixture = try SysfsFixture()
        defer { fixture.remove() }
        var host = TopologyProbe(root: fixture.root.path).probe(hostname: "h")
        host.gpuInfo = fixture.gpus.map { NvidiaGPUInfo(pciAddress: $0, product: "NVIDIA H100 80GB HBM3") }
        var e = Self.expectations
        e.gpuCount = 4
        e.gpuProduct = "NVIDIA H200"
        e.nicRateGbps = 800
        let results = TopologyChecks(expectations: e).run(host)
        #expect(Self.failing(results) == ["expect.gpu_count", "expect.gpu_product", "rdma.rate"])
    }

    @Test func pathClasses() {
        func dev(_ chain: [String], numa: Int) -> PCIDevice {
            PCIDevice(address: chain.last!, classCode: "", vendor: "", device: "", kind: .gpu, numaNode: numa, chain: chain, sysfsPath: "")
        }
        let a = dev(["pci0000:15", "0000:15:01.0", "0000:16:00.0", "0000:17:00.0", "0000:18:00.0"], numa: 0)
        let sameSwitch = dev(["pci0000:15", "0000:15:01.0", "0000:16:00.0", "0000:17:02.0", "0000:1a:00.0"], numa: 0)
        let deeper = dev(["pci0000:15", "0000:15:01.0", "0000:16:00.0", "0000:17:03.0", "0000:1b:00.0", "0000:1c:00.0", "0000:1d:00.0"], numa: 0)
        let otherPort = dev(["pci0000:15", "0000:15:02.0", "0000:30:00.0"], numa: 0)
        let otherRoot = dev(["pci0000:36", "0000:36:01.0", "0000:37:00.0"], numa: 0)
        let otherSocket = dev(["pci0000:9a", "0000:9a:01.0", "0000:9b:00.0"], numa: 1)
        #expect(PathClass.between(a, sameSwitch) == .pix)
        #expect(PathClass.between(a, deeper) == .pxb)
        #expect(PathClass.between(a, otherPort) == .phb)
        #expect(PathClass.between(a, otherRoot) == .node)
        #expect(PathClass.between(a, otherSocket) == .sys)
    }

    @Test func reportJSONHasTheStableShapeAndRoundTrips() throws {
        let (host, results) = try run([.nicDowntrainedToX8])
        let report = TopoReport(host: host, checks: results)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        #expect(Set(json.keys) == ["host", "summary", "checks"])
        let check = try #require((json["checks"] as? [[String: Any]])?.first { ($0["status"] as? String) == "fail" })
        #expect(Set(check.keys).isSuperset(of: ["id", "status", "subject", "message", "evidence", "fix"]))
        let summary = try #require(json["summary"] as? [String: Any])
        #expect(summary["fail"] as? Int == 1)
        #expect(summary["fabric_mtu"] as? Int == 9000)
        #expect(summary["roce_gid_index"] as? Int == 3)
        let decoded = try TopoReport.decoder.decode(TopoReport.self, from: Data(report.json().utf8))
        #expect(decoded == report)
        #expect(TopoRenderer.table(report).contains("FAIL          pcie.width"))
        #expect(TopoRenderer.markdown(report).contains("| FAIL | `pcie.width` | 0000:a0:00.0 |"))
    }

    @Test func compareFindsTheOddHostOut() throws {
        let (a, ra) = try run([])
        let (b, rb) = try run([])
        let (c, rc) = try run([.oneInterfaceMTU1500])
        var reports = [TopoReport(host: a, checks: ra), TopoReport(host: b, checks: rb), TopoReport(host: c, checks: rc)]
        reports[0].host.hostname = "node-a"
        reports[1].host.hostname = "node-b"
        reports[2].host.hostname = "node-c"
        reports[2].summary.fabricMtu = 1500
        reports[1].summary.driverVersion = "550.54"
        reports[0].summary.driverVersion = "560.35"
        reports[2].summary.driverVersion = "560.35"
        let results = TopoCompare.compare(reports)
        let failures = results.filter { $0.status == .fail }
        #expect(Set(failures.map { "\($0.id) \($0.subject)" }) == ["compare.mtu node-c", "compare.driver node-b"])
    }

    @Test func theFleetCheckNamesOddFirmwareAndNeverAgreesOnMissingValues() throws {
        let (a, _) = try run([])
        var reports = (0..<3).map { i -> TopoReport in
            var r = TopoReport(host: a, checks: [])
            r.host.hostname = "node-\(i)"
            return r
        }
        reports[2].host.rdma[0].firmware = "28.36.1010"
        reports[1].summary.driverVersion = "560.35"
        reports[2].summary.driverVersion = "560.35"
        let results = TopoCompare.compare(reports)
        #expect(results.filter { $0.status == .fail }.map { "\($0.id) \($0.subject)" } == ["compare.nic_firmware node-2"])
        #expect(results.first { $0.id == "compare.nic_firmware" && $0.status == .fail }?.message.contains("28.36.1010, 28.39.1002") == true)
        // The driver is missing on one host and the VBIOS on all (no nvidia-smi): unknown, not agreement.
        #expect(results.contains { $0.id == "compare.driver" && $0.status == .warn && $0.subject == "node-0" })
        #expect(results.contains { $0.id == "compare.gpu_vbios" && $0.status == .warn && $0.message.hasPrefix("unknown") })
        #expect(!results.contains { $0.id == "compare.gpu_vbios" && $0.status == .pass })
    }
}
