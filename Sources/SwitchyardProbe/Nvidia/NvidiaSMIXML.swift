import Foundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// One GPU from `nvidia-smi -q -x`.
package struct NvidiaGPUInfo: Sendable, Equatable, Codable {
    /// PCI address normalised to sysfs form (`0000:1a:00.0`).
    package var pciAddress: String
    package var product: String
    package var currentLinkGen: Int?
    package var maxLinkGen: Int?
    package var currentLinkWidth: Int?
    package var maxLinkWidth: Int?
    /// `<vbios_version>`.
    package var vbios: String? = nil
}

package enum NvidiaSMIXML {
    package struct ParseError: Error, CustomStringConvertible {
        package var description: String
    }

    /// Parses `nvidia-smi -q -x`; returns the driver version and one entry per `<gpu>`.
    package static func parse(_ data: Data) throws -> (driver: String?, gpus: [NvidiaGPUInfo]) {
        let document: XMLDocument
        do {
            document = try XMLDocument(data: data)
        } catch {
            throw ParseError(description: "not valid XML: \(error.localizedDescription)")
        }
        guard let root = document.rootElement(), root.name == "nvidia_smi_log" else {
            throw ParseError(description: "root element is not <nvidia_smi_log>")
        }
        let driver = root.elements(forName: "driver_version").first?.stringValue
        let gpus = root.elements(forName: "gpu").map { gpu -> NvidiaGPUInfo in
            func text(_ path: String) -> String? {
                var node: XMLElement? = gpu
                for name in path.split(separator: "/") { node = node?.elements(forName: String(name)).first }
                return node?.stringValue?.trimmingCharacters(in: .whitespaces)
            }
            func number(_ path: String) -> Int? {
                text(path).flatMap { Int($0.filter(\.isNumber)) }
            }
            let busID = gpu.attribute(forName: "id")?.stringValue ?? text("pci/pci_bus_id") ?? ""
            return NvidiaGPUInfo(
                pciAddress: normaliseBusID(busID), product: text("product_name") ?? "",
                currentLinkGen: number("pci/pci_gpu_link_info/pcie_gen/current_link_gen"),
                maxLinkGen: number("pci/pci_gpu_link_info/pcie_gen/max_link_gen"),
                currentLinkWidth: number("pci/pci_gpu_link_info/link_widths/current_link_width"),
                maxLinkWidth: number("pci/pci_gpu_link_info/link_widths/max_link_width"),
                vbios: text("vbios_version")
            )
        }
        return (driver, gpus)
    }

    /// `00000000:1A:00.0` → `0000:1a:00.0`.
    static func normaliseBusID(_ id: String) -> String {
        let parts = id.lowercased().split(separator: ":")
        guard parts.count == 3 else { return id.lowercased() }
        return "\(parts[0].suffix(4)):\(parts[1]):\(parts[2])"
    }
}
