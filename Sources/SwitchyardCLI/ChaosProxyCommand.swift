import ArgumentParser
import Foundation
import SwitchyardCore
import SwitchyardEvidence

/// `switchyard chaos-proxy`: a fault-injecting HTTP proxy in front of a loopback server.
struct ChaosProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos-proxy",
        abstract: "Forward HTTP to a loopback server, injecting latency, connection resets, 503s and mid-stream stalls."
    )

    @Option(help: "Origin to forward to, e.g. http://127.0.0.1:8080 (loopback only).") var upstream: String
    @Option(help: "Listen address.") var host: String = "127.0.0.1"
    @Option(help: "Listen port (0 picks a free one).") var port: Int = 0
    @Option(help: "Added before each request is forwarded (e.g. 100ms).") var latency: String = "0s"
    @Option(name: .customLong("reset-rate"), help: "Share of requests whose connection is reset (0…1).") var resetRate: Double = 0
    @Option(name: .customLong("status-503-rate"), help: "Share of requests answered 503 with Retry-After: 1 (0…1).") var status503Rate: Double = 0
    @Option(name: .customLong("stall-rate"), help: "Share of responses that stall mid-body (0…1).") var stallRate: Double = 0
    @Option(name: .customLong("stall-after"), help: "Body chunks relayed before a stall.") var stallAfter: Int = 3
    @Option(name: .customLong("stall-for"), help: "Length of a stall.") var stallFor: String = "5s"
    @Option(help: "Seed of the fault dice.") var seed: UInt64 = 1

    func validate() throws {
        for (name, v) in [("--reset-rate", resetRate), ("--status-503-rate", status503Rate), ("--stall-rate", stallRate)] where !(0...1).contains(v) {
            throw ValidationError("\(name) must be between 0 and 1, got \(v)")
        }
        if Duration.parse(latency) == nil { throw ValidationError("--latency: not a duration: '\(latency)'") }
        if Duration.parse(stallFor) == nil { throw ValidationError("--stall-for: not a duration: '\(stallFor)'") }
    }

    func run() async throws {
        var faults = ChaosFaults()
        faults.latency = Duration.parse(latency) ?? .zero
        faults.resetRate = resetRate
        faults.status503Rate = status503Rate
        faults.stallRate = stallRate
        faults.stallAfterChunks = stallAfter
        faults.stallFor = Duration.parse(stallFor) ?? .seconds(5)
        let proxy: ChaosProxy
        do {
            proxy = try ChaosProxy(upstream: upstream, faults: faults, seed: seed)
        } catch {
            throw ValidationError("\(error)")
        }
        try await proxy.run(host: host, port: port) { bound in
            print("chaos-proxy: http://\(host):\(bound) → \(proxy.upstream); faults: \(proxy.current.summary)")
        }
    }
}
