import Foundation
import Testing

@testable import SwitchyardProbe

@Suite struct NvidiaParserTests {
    /// `nvidia-smi topo -m`, recent drivers: NIC columns and a NIC Legend, GPU NUMA ID column.
    static let topoNew = """
        \t\u{1B}[4mGPU0\tGPU1\tGPU2\tGPU3\tNIC0\tNIC1\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\u{1B}[0m
        GPU0\t X \tNV18\tNV18\tNV18\tPIX\tSYS\t0-47,96-143\t0\t\tN/A
        GPU1\tNV18\t X \tNV18\tNV18\tPIX\tSYS\t0-47,96-143\t0\t\tN/A
        GPU2\tNV18\tNV18\t X \tNV12\tSYS\tPIX\t48-95,144-191\t1\t\tN/A
        GPU3\tNV18\tNV18\tNV12\t X \tSYS\tPIX\t48-95,144-191\t1\t\tN/A
        NIC0\tPIX\tPIX\tSYS\tSYS\t X \tSYS
        NIC1\tSYS\tSYS\tPIX\tPIX\tSYS\t X

        Legend:

          X    = Self
          SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)
          NV#  = Connection traversing a bonded set of # NVLinks

        NIC Legend:

          NIC0: mlx5_0
          NIC1: mlx5_1

        """

    /// Older drivers: NICs named `mlx5_N` directly, no legend, no GPU NUMA ID.
    static let topoOld = """
        \tGPU0\tGPU1\tmlx5_0\tCPU Affinity\tNUMA Affinity
        GPU0\t X \tNV12\tPXB\t0-23\t0
        GPU1\tNV12\t X \tPXB\t0-23\t0
        mlx5_0\tPXB\tPXB\t X \t

        Legend:

          X    = Self
        """

    @Test func parsesTheNewLayout() throws {
        let m = try NvidiaTopoMatrix.parse(Self.topoNew)
        #expect(m.gpus == ["GPU0", "GPU1", "GPU2", "GPU3"])
        #expect(m.nics == ["mlx5_0", "mlx5_1"])
        #expect(m.link("GPU0", "mlx5_0") == "PIX")
        #expect(m.link("GPU2", "GPU3") == "NV12")
        #expect(m.cpuAffinity["GPU2"] == "48-95,144-191")
        #expect(m.numaAffinity["GPU3"] == "1")
    }

    @Test func parsesTheOldLayout() throws {
        let m = try NvidiaTopoMatrix.parse(Self.topoOld)
        #expect(m.gpus == ["GPU0", "GPU1"])
        #expect(m.nics == ["mlx5_0"])
        #expect(m.link("mlx5_0", "GPU1") == "PXB")
        #expect(m.numaAffinity["GPU1"] == "0")
    }

    @Test func nvlinkUniformityFlagsTheDegradedPair() throws {
        var host = HostTopology(hostname: "h")
        host.nvidiaTopology = try NvidiaTopoMatrix.parse(Self.topoNew)
        let results = TopologyChecks().run(host).filter { $0.id == "nvlink.uniform" }
        #expect(results.map(\.status) == [.fail])
        #expect(results.first?.subject == "GPU2-GPU3")
        host.nvidiaTopology = try NvidiaTopoMatrix.parse(Self.topoOld)
        #expect(TopologyChecks().run(host).first { $0.id == "nvlink.uniform" }?.status == .pass)
    }

    @Test func rejectsGarbage() {
        #expect(throws: NvidiaTopoMatrix.ParseError.self) { try NvidiaTopoMatrix.parse("no matrix here") }
        #expect(throws: NvidiaSMIXML.ParseError.self) { try NvidiaSMIXML.parse(Data("<html>".utf8)) }
    }

    static let xml = """
        <?xml version="1.0" ?>
        <!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">
        <nvidia_smi_log>
          <timestamp>Sun Nov 29 21:00:00 2026</timestamp>
          <driver_version>560.35.03</driver_version>
          <cuda_version>12.6</cuda_version>
          <attached_gpus>2</attached_gpus>
          <gpu id="00000000:18:00.0">
            <product_name>NVIDIA H200</product_name>
            <pci>
              <pci_bus_id>00000000:18:00.0</pci_bus_id>
              <pci_gpu_link_info>
                <pcie_gen>
                  <max_link_gen>5</max_link_gen>
                  <current_link_gen>1</current_link_gen>
                  <device_current_link_gen>1</device_current_link_gen>
                  <max_device_link_gen>5</max_device_link_gen>
                  <max_host_link_gen>5</max_host_link_gen>
                </pcie_gen>
                <link_widths>
                  <max_link_width>16x</max_link_width>
                  <current_link_width>16x</current_link_width>
                </link_widths>
              </pci_gpu_link_info>
            </pci>
          </gpu>
          <gpu id="00000000:19:00.0">
            <product_name>NVIDIA H200</product_name>
            <pci><pci_gpu_link_info><pcie_gen><max_link_gen>5</max_link_gen><current_link_gen>5</current_link_gen></pcie_gen>
              <link_widths><max_link_width>16x</max_link_width><current_link_width>8x</current_link_width></link_widths></pci_gpu_link_info></pci>
          </gpu>
        </nvidia_smi_log>
        """

    @Test func parsesNvidiaSMIXML() throws {
        let (driver, gpus) = try NvidiaSMIXML.parse(Data(Self.xml.utf8))
        #expect(driver == "560.35.03")
        #expect(gpus.count == 2)
        #expect(
            gpus[0]
                == NvidiaGPUInfo(
                    pciAddress: "0000:18:00.0", product: "NVIDIA H200", currentLinkGen: 1, maxLinkGen: 5,
                    currentLinkWidth: 16, maxLinkWidth: 16))
        #expect(gpus[1].currentLinkWidth == 8)
    }

    @Test func expectationsFileErrorsNameTheField() {
        #expect(throws: (any Error).self) { try TopologyExpectations.load(yaml: "gpus: { count: eight }\ncolour: red\n") }
        let e = try? TopologyExpectations.load(yaml: "gpus: { count: 8, product: NVIDIA H200 }\nnics: { count: 8, rate_gbps: 400 }\nmtu: 9000\n")
        #expect(e?.gpuCount == 8 && e?.gpuProduct == "NVIDIA H200" && e?.nicRateGbps == 400 && e?.mtu == 9000)
    }
}
