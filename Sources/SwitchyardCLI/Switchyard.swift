import ArgumentParser

/// The `switchyard` command: the serving path and the tools that prove a platform is ready.
@available(macOS 10.15, *)
package struct Switchyard: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "SLO-aware OpenAI-compatible gateway and readiness tooling for model serving.",
        version: SwitchyardVersion.current,
        subcommands: [
            ServeCommand.self, BatchCommand.self, BenchCommand.self, AcceptCommand.self, ChaosProxyCommand.self, ConfigCommand.self, TopoCommand.self,
            ClusterCommand.self, KeysCommand.self, PlanCommand.self, DescribeCommand.self, ProbeCommand.self,
        ]
    )

    package init() {}
}

package enum SwitchyardVersion {
    package static let current = "0.1.0"
}

extension Switchyard {
    /// Parses the command line and runs the chosen subcommand (async ones included), then exits.
    package static func runMain(_ arguments: [String]? = nil) async {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
