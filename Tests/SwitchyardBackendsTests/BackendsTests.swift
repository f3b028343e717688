import Foundation
import Logging
import Testing

@testable import SwitchyardBackends

@Suite struct DataDirectoryTests {
    @Test func theFlagWinsThenTheEnvironmentThenTheDefault() {
        #expect(DataDirectory(flag: "/tmp/a", environment: ["SWITCHYARD_DATA_DIR": "/tmp/b"]).url.path == "/tmp/a")
        #expect(DataDirectory(flag: nil, environment: ["SWITCHYARD_DATA_DIR": "/tmp/b"]).url.path == "/tmp/b")
        #expect(DataDirectory(flag: nil, environment: [:]).url.lastPathComponent == ".switchyard")
        let dir = DataDirectory(flag: "/tmp/a", environment: [:])
        #expect(dir.python.path == "/tmp/a/venv/bin/python")
        #expect(dir.launcher.lastPathComponent == "switchyard_launcher.py")
    }
}

/// The launcher ships inside the binary (an embedded resource) and is written to the data folder.
@Suite struct LauncherTests {
    @Test func theWrittenLauncherIsTheResourceAndPythonRunsIt() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("launcher-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let environment = PythonEnvironment(directory: DataDirectory(flag: root.path, environment: [:]), logger: Logger(label: "test"))
        try environment.writeLauncher()
        let written = try String(contentsOf: environment.directory.launcher, encoding: .utf8)
        let resource = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/SwitchyardBackends/Resources/switchyard_launcher.py")
        #expect(written == (try String(contentsOf: resource, encoding: .utf8)))
        #expect(written.hasPrefix(#""""Switchyard's launcher"#))

        // Python parses it and its argument parser answers.
        let python = try #require(PythonEnvironment.systemPython(), "python3 is needed")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [environment.directory.launcher.path, "--help"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("usage:"))
    }
}

@Suite struct ExitDescriptionTests {
    @Test func exitsAndSignalsAreNamed() {
        #expect(ReplicaSupervisor.describe(0, reason: .exit) == "exit 0")
        #expect(ReplicaSupervisor.describe(137, reason: .exit) == "exit 137 (signal 9)")
        #expect(ReplicaSupervisor.describe(15, reason: .uncaughtSignal) == "killed by signal 15")
    }
}

/// The installer's steps run through swift-subprocess: a failing step names itself.
@Suite struct InstallStepTests {
    let environment = PythonEnvironment(directory: DataDirectory(flag: "/tmp/unused", environment: [:]), logger: Logger(label: "test"))

    @Test func aStepThatSucceedsPasses() async throws {
        try await environment.run("/bin/sh", ["-c", "exit 0"], failure: "step")
    }

    @Test func aStepThatFailsSaysHowAndWhat() async throws {
        let error = await #expect(throws: PythonEnvironment.InstallError.self) {
            try await environment.run("/bin/sh", ["-c", "exit 3"], failure: "pip could not install x")
        }
        #expect(
            error?.description.hasPrefix("pip could not install x (/bin/sh -c exit 3 ended: exited(3))") == true, "\(error.map { "\($0)" } ?? "-")")
    }

    @Test func aMissingProgramIsNamed() async throws {
        let error = await #expect(throws: PythonEnvironment.InstallError.self) {
            try await environment.run("/nonexistent/python3", [], failure: "no venv")
        }
        #expect(error?.description.contains("/nonexistent/python3") == true)
    }
}
