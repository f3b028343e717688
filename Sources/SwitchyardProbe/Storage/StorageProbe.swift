import Foundation
import SwitchyardCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What AI workloads do to a filesystem, measured under one path: model load (large sequential
/// reads with the file's page cache dropped, one stream and N shards at once), checkpoint write
/// (large sequential writes with fsync, N writers), metadata pressure (create, stat, open and
/// unlink of many small files in a tree) and small random reads. Everything is written in a
/// fresh folder under the path (never outside it) and removed afterwards; every phase is bounded
/// by size and by time.
package struct StorageProbe: Sendable {
    package struct Settings: Sendable {
        /// The model-sized file (and the checkpoint's total).
        package var bytes: Int64 = 1 << 30
        /// Parallel shards (reads) and writers.
        package var streams = 4
        /// Small files of the metadata phase.
        package var files = 2000
        /// Random 4 KiB reads.
        package var randomReads = 4000
        /// Per phase: it stops early past this (and says so).
        package var timeLimit: Duration = .seconds(60)
        package var blockSize = 4 << 20
        /// Which results to measure (``phaseNames``); what one needs but is not asked for (the
        /// model file, the shards) is written without being reported.
        package var phases: Set<String> = Set(StorageProbe.phaseNames)

        package init() {}
    }

    /// The results the probe can measure, in the order it measures them; `metadata` stands for
    /// its four results.
    package static let phaseNames = ["model_load_single", "checkpoint_write", "model_load_sharded", "random_read_4k", "metadata"]

    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    let root: String
    let settings: Settings

    package init(path: String, settings: Settings) {
        root = path
        self.settings = settings
    }

    /// Runs every phase; the work folder is removed whatever happens.
    package func run(log: (String) -> Void = { _ in }) throws(Failure) -> StorageReport {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Failure(description: "\(root): not a directory")
        }
        let base = URL(fileURLWithPath: root).resolvingSymlinksInPath().path
        let work = base + "/.switchyard-probe-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(work, 0o700) == 0 else {
            throw Failure(
                description: "\(root): cannot write here (\(String(cString: strerror(errno)))): the probe needs a folder it may create files in")
        }
        // Never outside PATH: the folder just made must resolve under it.
        guard URL(fileURLWithPath: work).resolvingSymlinksInPath().path.hasPrefix(base + "/") else {
            rmdir(work)
            throw Failure(description: "\(root): the work folder resolved outside the path; refusing to write")
        }
        defer { try? FileManager.default.removeItem(atPath: work) }
        var report = StorageReport(path: root, filesystem: Self.filesystem(of: base), settings: .init(settings))
        let wanted = settings.phases
        do {
            let model = work + "/model.bin"
            if wanted.contains("model_load_single") || wanted.contains("random_read_4k") {
                log("model load: writing a \(Self.size(settings.bytes)) file")
                _ = try write([model], total: settings.bytes, name: "model_file", label: "model file")
            }
            if wanted.contains("model_load_single") {
                try dropCache(model)
                log("model load: one stream")
                report.results.append(try read([model], name: "model_load_single", label: "model load, 1 stream"))
            }
            if wanted.contains("checkpoint_write") || wanted.contains("model_load_sharded") {
                let shards = (0..<settings.streams).map { work + "/shard-\($0).bin" }
                log("checkpoint write: \(settings.streams) writers")
                let written = try write(
                    shards, total: settings.bytes, name: "checkpoint_write", label: "checkpoint write, \(settings.streams) writers + fsync")
                if wanted.contains("checkpoint_write") { report.results.append(written) }
                if wanted.contains("model_load_sharded") {
                    for shard in shards { try dropCache(shard) }
                    log("model load: \(settings.streams) shards at once")
                    report.results.append(try read(shards, name: "model_load_sharded", label: "model load, \(settings.streams) shards"))
                }
            }
            if wanted.contains("random_read_4k") {
                log("small random reads")
                try dropCache(model)
                report.results.append(try randomReads(model))
            }
            if wanted.contains("metadata") {
                log("metadata: \(settings.files) small files")
                report.results.append(contentsOf: try metadata(work + "/tree"))
            }
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(description: "\(error)")
        }
        return report
    }

    // MARK: Phases

    /// Writes `total` bytes spread over `paths` (one writer each, at once), fsync per file.
    func write(_ paths: [String], total: Int64, name: String, label: String) throws -> StorageResult {
        let per = total / Int64(paths.count)
        let block = settings.blockSize
        let deadline = ContinuousClock.now + settings.timeLimit
        let written = Mutex([Int64](repeating: 0, count: paths.count))
        let errors = Mutex<[String]>([])
        // Incompressible bytes, as weights and optimizer state are (and as fio writes): storage
        // that compresses or skips zeros would otherwise look faster than it is for checkpoints.
        // Made before the clock starts, a block per writer as each fio job has its own (writers
        // sharing one block copy from the CPU cache, faster than a checkpoint's tensors in memory).
        var rng = SplitMix64(seed: 0x5EED)
        let buffers = (0..<min(paths.count, 16)).map { _ in
            [UInt64](unsafeUninitializedCapacity: (block + 7) / 8) { words, count in
                for j in words.indices { words[j] = rng.next() }
                count = words.count
            }
        }
        let start = ContinuousClock.now
        Self.parallel(paths.count) { i in
            let fd = open(paths[i], O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            guard fd >= 0 else { return errors.withLock { $0.append("open \(paths[i]): \(String(cString: strerror(errno)))") } }
            defer { close(fd) }
            let buffer = buffers[i % buffers.count]
            var done: Int64 = 0
            while done < per, ContinuousClock.now < deadline {
                let n = Int(min(Int64(block), per - done))
                let w = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, n) }
                guard w > 0 else { return errors.withLock { $0.append("write \(paths[i]): \(String(cString: strerror(errno)))") } }
                done += Int64(w)
            }
            if fsync(fd) != 0 { errors.withLock { $0.append("fsync \(paths[i]): \(String(cString: strerror(errno)))") } }
            written.withLock { $0[i] = done }
        }
        let seconds = (ContinuousClock.now - start).seconds
        if let first = errors.withLock({ $0.first }) { throw Failure(description: first) }
        let bytes = written.withLock { $0.reduce(0, +) }
        return StorageResult(
            name: name, label: label, value: Double(bytes) / seconds / 1e6, unit: "MB/s", bytes: bytes, seconds: seconds,
            truncated: bytes < per * Int64(paths.count))
    }

    /// Reads `paths` whole (one reader each, at once) in blocks.
    func read(_ paths: [String], name: String, label: String) throws -> StorageResult {
        let block = settings.blockSize
        let deadline = ContinuousClock.now + settings.timeLimit
        let read = Mutex([Int64](repeating: 0, count: paths.count))
        let errors = Mutex<[String]>([])
        let start = ContinuousClock.now
        Self.parallel(paths.count) { i in
            let fd = open(paths[i], O_RDONLY)
            guard fd >= 0 else { return errors.withLock { $0.append("open \(paths[i]): \(String(cString: strerror(errno)))") } }
            defer { close(fd) }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: block, alignment: 4096)
            defer { buffer.deallocate() }
            var done: Int64 = 0
            while ContinuousClock.now < deadline {
                let r = Glibc.read(fd, buffer, block)
                if r == 0 { break }
                guard r > 0 else { return errors.withLock { $0.append("read \(paths[i]): \(String(cString: strerror(errno)))") } }
                done += Int64(r)
            }
            read.withLock { $0[i] = done }
        }
        let seconds = (ContinuousClock.now - start).seconds
        if let first = errors.withLock({ $0.first }) { throw Failure(description: first) }
        let bytes = read.withLock { $0.reduce(0, +) }
        let expected = paths.reduce(Int64(0)) { total, path in
            var st = stat()
            return total + (stat(path, &st) == 0 ? Int64(st.st_size) : 0)
        }
        return StorageResult(
            name: name, label: label, value: Double(bytes) / seconds / 1e6, unit: "MB/s", bytes: bytes, seconds: seconds, truncated: bytes < expected)
    }

    /// 4 KiB reads at random aligned offsets of `path`: IOPS, and latency percentiles.
    func randomReads(_ path: String) throws -> StorageResult {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Failure(description: "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        let pages = max(1, Int64(st.st_size) / 4096)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buffer.deallocate() }
        var rng = SplitMix64(seed: 42)
        var latencies: [Double] = []
        latencies.reserveCapacity(settings.randomReads)
        let deadline = ContinuousClock.now + settings.timeLimit
        let start = ContinuousClock.now
        while latencies.count < settings.randomReads, ContinuousClock.now < deadline {
            let offset = off_t(Int64(rng.next() % UInt64(pages)) * 4096)
            let t = ContinuousClock.now
            guard pread(fd, buffer, 4096, offset) == 4096 else { throw Failure(description: "pread \(path): \(String(cString: strerror(errno)))") }
            latencies.append((ContinuousClock.now - t).seconds)
        }
        let seconds = (ContinuousClock.now - start).seconds
        latencies.sort()
        func q(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(p * Double(latencies.count)))] }
        return StorageResult(
            name: "random_read_4k", label: "random 4 KiB reads", value: Double(latencies.count) / seconds, unit: "IOPS",
            bytes: Int64(latencies.count) * 4096, seconds: seconds, truncated: latencies.count < settings.randomReads,
            p50: q(0.5), p99: q(0.99))
    }

    /// create, stat, open+read and unlink of many 4 KiB files in folders of 100.
    func metadata(_ tree: String) throws -> [StorageResult] {
        let n = settings.files
        guard mkdir(tree, 0o700) == 0 else { throw Failure(description: "mkdir \(tree): \(String(cString: strerror(errno)))") }
        var paths: [String] = []
        for i in 0..<n {
            let dir = tree + "/d\(i / 100)"
            if i % 100 == 0, mkdir(dir, 0o700) != 0 { throw Failure(description: "mkdir \(dir): \(String(cString: strerror(errno)))") }
            paths.append(dir + "/f\(i)")
        }
        let payload = [UInt8](repeating: 7, count: 4096)
        func timed(_ name: String, _ label: String, _ body: (String) -> Bool) throws -> StorageResult {
            let deadline = ContinuousClock.now + settings.timeLimit
            let start = ContinuousClock.now
            var done = 0
            for path in paths {
                guard ContinuousClock.now < deadline else { break }
                guard body(path) else { throw Failure(description: "\(label) \(path): \(String(cString: strerror(errno)))") }
                done += 1
            }
            let seconds = (ContinuousClock.now - start).seconds
            return StorageResult(
                name: name, label: label, value: Double(done) / seconds, unit: "ops/s", bytes: 0, seconds: seconds, truncated: done < n)
        }
        let create = try timed("metadata_create", "create 4 KiB files") { path in
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            return payload.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, 4096) } == 4096
        }
        let statted = try timed("metadata_stat", "stat") { path in
            var st = stat()
            return stat(path, &st) == 0
        }
        var scratch = [UInt8](repeating: 0, count: 4096)
        let opened = try timed("metadata_open_read", "open + read") { path in
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            return scratch.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) } >= 0
        }
        let unlinked = try timed("metadata_unlink", "unlink") { path in unlink(path) == 0 }
        return [create, statted, opened, unlinked]
    }

    /// Runs `body(0..<n)` on `n` threads at once (not a pool sized to the cores: I/O streams must
    /// all be in flight together, as fio's jobs are), and waits for all.
    static func parallel(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for i in 0..<n {
            group.enter()
            let thread = Thread {
                body(i)
                group.leave()
            }
            thread.start()
        }
        group.wait()
    }

    /// Drops `path`'s pages from the page cache (after writing them back), so a read goes to the
    /// device, as a cold model load does.
    func dropCache(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Failure(description: "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        fdatasync(fd)
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
    }

    /// The filesystem type of the mount holding `path` (from /proc/self/mounts: the longest
    /// mount point that prefixes it); nil when unknown.
    static func filesystem(of path: String) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return nil }
        var best: (Int, String)?
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 3 else { continue }
            let mount = String(f[1])
            if path == mount || path.hasPrefix(mount == "/" ? "/" : mount + "/"), mount.count > (best?.0 ?? -1) {
                best = (mount.count, "\(f[2]) on \(mount)")
            }
        }
        return best?.1
    }

    static func size(_ bytes: Int64) -> String {
        bytes >= 1 << 30 ? String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) : String(format: "%.0f MiB", Double(bytes) / Double(1 << 20))
    }
}
