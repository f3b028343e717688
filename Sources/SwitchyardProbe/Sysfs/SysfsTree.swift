import Foundation

/// Read access to a sysfs-like tree under `root` (`/` on a live host, a captured folder in tests).
/// Every read is recorded as evidence-friendly `path = value`.
package struct SysfsTree: Sendable {
    package let root: String

    package init(root: String = "/") {
        self.root = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
    }

    /// Absolute path on this machine for a path under the root (`/sys/...`).
    package func path(_ relative: String) -> String {
        root == "/" ? relative : root + relative
    }

    /// Path as shown in evidence: relative to the root, as on the host.
    package func display(_ absolute: String) -> String {
        guard root != "/", absolute.hasPrefix(root) else { return absolute }
        return String(absolute.dropFirst(root.count))
    }

    package func read(_ relative: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path(relative)),
            let text = String(data: data, encoding: .utf8)
        else { return nil }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    package func readInt(_ relative: String) -> Int? {
        read(relative).flatMap { Int($0) ?? (($0.hasPrefix("0x")) ? Int($0.dropFirst(2), radix: 16) : nil) }
    }

    package func list(_ relative: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path(relative))) ?? []).sorted()
    }

    package func exists(_ relative: String) -> Bool {
        FileManager.default.fileExists(atPath: path(relative))
    }

    /// Target of a symbolic link, resolved to a path under the root (sysfs links are relative).
    package func resolve(_ relative: String) -> String? {
        let absolute = path(relative)
        guard (try? FileManager.default.destinationOfSymbolicLink(atPath: absolute)) != nil else { return nil }
        let resolved = URL(fileURLWithPath: absolute).resolvingSymlinksInPath().path
        return display(resolved)
    }

    /// Last path component of a link's target (`device/driver` → `nvme`), without resolving.
    package func linkName(_ relative: String) -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path(relative)) else { return nil }
        return target.split(separator: "/").last.map(String.init)
    }
}
