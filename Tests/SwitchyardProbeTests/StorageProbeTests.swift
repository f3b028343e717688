import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardProbe

/// The storage probe on a tmpfs and on the work disk: numbers in the expected direction, nothing
/// left behind, a clear error where it may not write. Timing-tagged: it measures the machine.
@Suite(.serialized, .tags(.timing)) struct StorageProbeTests {
    static func settings() -> StorageProbe.Settings {
        var s = StorageProbe.Settings()
        s.bytes = 96 << 20
        s.streams = 2
        s.files = 300
        s.randomReads = 500
        s.timeLimit = .seconds(20)
        return s
    }

    static func leftovers(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix(".switchyard-probe-") }
    }

    @Test func tmpfsBeatsTheDiskAndNothingIsLeftBehind() throws {
        let disk = FileManager.default.temporaryDirectory.appendingPathComponent("storage-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: disk) }
        let memory = try #require(["/dev/shm"].first { StorageProbe.filesystem(of: $0)?.hasPrefix("tmpfs") == true }, "no tmpfs here")
        let onDisk = try StorageProbe(path: disk, settings: Self.settings()).run()
        let inMemory = try StorageProbe(path: memory, settings: Self.settings()).run()
        let names = [
            "model_load_single", "checkpoint_write", "model_load_sharded", "random_read_4k", "metadata_create", "metadata_stat", "metadata_open_read",
            "metadata_unlink",
        ]
        #expect(onDisk.results.map(\.name) == names && inMemory.results.map(\.name) == names)
        #expect(onDisk.results.allSatisfy { $0.value > 0 && !$0.truncated }, "\(onDisk.table())")
        #expect(onDisk.filesystem?.hasPrefix("ext4") == true || onDisk.filesystem?.hasPrefix("overlay") == true, "\(onDisk.filesystem ?? "-")")
        #expect(inMemory.filesystem?.hasPrefix("tmpfs") == true)
        func value(_ r: StorageReport, _ name: String) -> Double { r.results.first { $0.name == name }?.value ?? 0 }
        // fsync is free in memory and costs a device flush on disk.
        #expect(value(inMemory, "checkpoint_write") > value(onDisk, "checkpoint_write"), "\(inMemory.table())\n\(onDisk.table())")
        #expect(value(inMemory, "metadata_create") > value(onDisk, "metadata_create"), "\(inMemory.table())\n\(onDisk.table())")
        #expect(Self.leftovers(disk).isEmpty && Self.leftovers(memory).isEmpty, "the work folders are removed")
        // The JSON round-trips and two reports compare side by side.
        let back = try StorageReport.decode(try JSONParser.parse(onDisk.json.serializedString), source: "a.json")
        #expect(back.results.map(\.name) == names && back.path == disk)
        let compared = StorageComparison.table([onDisk, inMemory], markdown: false)
        #expect(compared.contains("checkpoint write") && compared.contains("(best)"), "\(compared)")
    }

    @Test func aPathItMayNotWriteIsAClearError() {
        do {
            _ = try StorageProbe(path: "/proc", settings: Self.settings()).run()
            Issue.record("the probe wrote under /proc")
        } catch {
            #expect(error.description.contains("/proc: cannot write here"), "\(error)")
        }
        do {
            _ = try StorageProbe(path: "/nonexistent-\(UUID().uuidString)", settings: Self.settings()).run()
            Issue.record("a missing path was probed")
        } catch {
            #expect(error.description.contains("not a directory"), "\(error)")
        }
    }

    /// `--phases`: only the named results are reported; what they need (the model file for random
    /// reads, the shards for the sharded load) is still written, and removed.
    @Test func onlyTheChosenPhasesAreReported() throws {
        let disk = FileManager.default.temporaryDirectory.appendingPathComponent("storage-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: disk) }
        for phases in [["checkpoint_write"], ["model_load_sharded", "random_read_4k"], ["metadata"]] {
            var settings = Self.settings()
            settings.bytes = 8 << 20
            settings.phases = Set(phases)
            let report = try StorageProbe(path: disk, settings: settings).run()
            let expected = phases == ["metadata"] ? ["metadata_create", "metadata_stat", "metadata_open_read", "metadata_unlink"] : phases
            #expect(report.results.map(\.name) == expected)
            #expect(report.results.allSatisfy { $0.value > 0 && !$0.truncated })
            #expect(Self.leftovers(disk).isEmpty)
        }
    }
}
