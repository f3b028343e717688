import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// The real `switchyard bench` binary against the real llama.cpp server: a bundle with every file,
/// consistent with its requests, and a report.html that headless Chromium renders with charts.
@Suite(.serialized, .tags(.timing)) struct BenchCommandTests {
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try TestProcess.run(executable, arguments)
    }

    /// ``run(_:_:)`` on a dispatch thread, so a long process does not hold a task thread.
    static func runDetached(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try run(executable, arguments) }) }
        }
    }

    @Test func benchWritesABundleThatChromiumRenders() async throws {
        let url = try await LlamaServer.shared.url()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let (status, output) = try Self.run(
            ServeProcessTests.binary,
            [
                "bench", "--url", url, "--model", "smollm2", "--rate", "4", "--requests", "8", "--output-tokens", "8",
                "--input-tokens", "uniform:16:32", "--slo", "ttft=30s", "--out", out,
            ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("lane default: 8 requests, 8 ok"), "\(output)")
        for file in ["manifest.json", "requests.jsonl", "summary.json", "report.md", "report.html"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file) missing")
        }
        let lines = try String(contentsOfFile: out + "/requests.jsonl", encoding: .utf8).split(separator: "\n")
        let summary = try JSONParser.parse(Array(try String(contentsOfFile: out + "/summary.json", encoding: .utf8).utf8))
        let lane = try #require(summary["lanes"]?.arrayValue?.first)
        #expect(lines.count == 8)
        #expect(lane["succeeded"]?.intValue == lines.filter { $0.contains(#""ok":true"#) }.count, "summary agrees with requests.jsonl")
        #expect(lane["attainment"]?.doubleValue == 1)

        let script = LlamaServer.repoRoot.appendingPathComponent("scripts/report-screenshot.sh").path
        let (shot, shotOutput) = try Self.run("/bin/bash", [script, out, out + "/report.png"])
        #expect(shot == 0, "\(shotOutput)")
        #expect(shotOutput.contains("drawn SVG paths"))
    }

    @Test func badArgumentsAreNamed() throws {
        let (status, output) = try Self.run(ServeProcessTests.binary, ["bench", "--url", "http://127.0.0.1:1/v1", "--model", "m", "--rate", "5"])
        #expect(status != 0)
        #expect(output.contains("--duration and/or --requests"))
        let (status2, output2) = try Self.run(
            ServeProcessTests.binary,
            [
                "bench", "--url", "http://127.0.0.1:1/v1", "--model", "m",
                "--concurrency", "2", "--requests", "2", "--input-tokens", "zipf:3",
            ])
        #expect(status2 != 0)
        #expect(output2.contains("--input-tokens"))
    }
}
