import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import SwitchyardBackends
import SwitchyardCore
import SwitchyardGateway
import Synchronization

/// Wires managed model servers into a gateway: installs the venv, assigns ports, adds the
/// replicas as backends (closed until warmed up) and builds one supervisor per replica.
struct ManagedServers {
    /// The embedded default: SmolLM2-135M-Instruct on llama.cpp, 4 slots, on this machine's cores.
    static func embeddedDefault() -> ModelConfig {
        var managed = ManagedConfig()
        var llama = ManagedConfig.LlamaCppSettings()
        llama.threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
        managed.server = .llamacpp(llama)
        var model = ModelConfig(name: "smollm2", backends: [])
        model.managed = managed
        return model
    }

    struct Replica {
        let model: String
        let index: Int
        let port: Int
        let config: ManagedConfig
    }

    /// Adds each managed replica to its model's backends; returns the replicas to supervise.
    static func plan(_ config: inout GatewayConfig) throws -> [Replica] {
        var replicas: [Replica] = []
        for m in config.models.indices {
            guard let managed = config.models[m].managed else { continue }
            for r in 0..<managed.replicas {
                let port = try managed.port.map { $0 + r } ?? freePort()
                let index = config.models[m].backends.count
                var backend = BackendConfig(url: "http://127.0.0.1:\(port)/v1", maxInflight: managed.maxInflight)
                backend.managed = true
                config.models[m].backends.append(backend)
                replicas.append(Replica(model: config.models[m].name, index: index, port: port, config: managed))
            }
        }
        return replicas
    }

    static func prepare(_ replicas: [Replica], directory: DataDirectory, logger: Logger) async throws {
        let environment = PythonEnvironment(directory: directory, logger: logger)
        if replicas.contains(where: { if case .llamacpp = $0.config.server { return true } else { return false } }) {
            try await environment.prepare()
        } else if !replicas.isEmpty {
            try environment.writeLauncher()
        }
    }

    static func supervisors(
        _ replicas: [Replica], gateway: Gateway, directory: DataDirectory, client: HTTPClient, logger: Logger,
        onAllReady: @escaping @Sendable () -> Void
    ) -> [ReplicaSupervisor] {
        let readyNames = Mutex<Set<String>>([])
        let announced = Atomic<Bool>(false)
        let total = replicas.count
        return replicas.map { replica in
            let name = "\(replica.model)-\(replica.index)"
            let pool = gateway.pools[replica.model]!
            let supervisor = ReplicaSupervisor(
                name: name, port: replica.port, config: replica.config, directory: directory, client: client, logger: logger,
                onGate: { open in
                    // The supervisor has just seen /health answer and warmup succeed: count that as a
                    // passing active check so traffic flows now, not at the next check interval.
                    if open { pool.recordHealthCheck(replica.index, passed: true) }
                    pool.setGate(replica.index, open: open)
                    // Up (again): its capacity and its batching are asked about.
                    if open { gateway.replicaOpened(pool, replica.index) }
                },
                onEvent: { status in
                    gateway.recordReplica(status)
                    let count = readyNames.withLock { set -> Int in
                        if status.phase == .ready { set.insert(name) } else { set.remove(name) }
                        return set.count
                    }
                    if count == total, !announced.exchange(true, ordering: .relaxed) { onAllReady() }
                })
            gateway.registerManaged(model: replica.model, index: replica.index, control: supervisor)
            return supervisor
        }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ValidationError("cannot open a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ValidationError("cannot find a free loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
