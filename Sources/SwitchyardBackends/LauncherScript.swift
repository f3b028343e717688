/// The Python launcher written into the data folder and used to start every managed replica.
///
/// It runs the server as its own child in a new process group, and stops it (SIGTERM, then
/// SIGKILL after a grace) when it gets SIGTERM/SIGINT or when its parent — the gateway — is gone,
/// even after `kill -9`: it polls its parent pid, which does not depend on the parent thread
/// (unlike PR_SET_PDEATHSIG, which fires when the spawning *thread* exits).
enum LauncherScript {
    static let fileName = "switchyard_launcher.py"

    /// `Resources/switchyard_launcher.py`, compiled into the binary (no resource bundle beside it).
    static var source: String { String(decoding: PackageResources.switchyard_launcher_py, as: UTF8.self) }
}
