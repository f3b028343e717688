import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// The gateway's admin API, as `accept` uses it: list backends, register, drain, resume, remove.
struct AdminClient: Sendable {
    let base: String
    let token: String
    let http: HTTPClient

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init(url: String, token: String, http: HTTPClient) {
        base = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.token = token
        self.http = http
    }

    /// Sends one admin request; a non-2xx answer throws with the gateway's error message.
    @discardableResult
    func call(
        _ method: HTTPMethod, _ path: String, body: JSONValue? = nil, text: String? = nil, timeout: Duration = .seconds(30)
    ) async throws -> JSONValue {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body.serialized()))
        } else if let text {
            request.headers.add(name: "content-type", value: "application/yaml")
            request.body = .bytes(ByteBuffer(string: text))
        }
        let response = try await http.execute(request, timeout: .seconds(timeout.components.seconds))
        let bytes = try await response.body.collect(upTo: 4 << 20)
        let json = (try? JSONParser.parse(bytes.readableBytesView)) ?? .null
        guard (200..<300).contains(response.status.code) else {
            throw Failure(
                description:
                    "\(method.rawValue) \(path) answered \(response.status.code): \(json["error"]?["message"]?.stringValue ?? String(buffer: bytes))")
        }
        return json
    }

    /// The backends of `model` as `/admin/backends` lists them.
    func backends(of model: String) async throws -> [JSONValue] {
        let json = try await call(.GET, "/admin/backends")
        return json["models"]?.arrayValue?.first { $0["model"]?.stringValue == model }?["backends"]?.arrayValue ?? []
    }
}

/// Chaos between the gateway and its backends (`at: backend`), set up through the admin API
/// without restarting anything: for each chosen backend a ``ChaosProxy`` to its origin is
/// registered as another backend of the model (kept alive by heartbeats), and the original's gate
/// is closed without stopping it, so all its traffic flows through the proxy. ``remove()`` opens
/// the original again and deregisters the proxy.
final class BackendChaos: Sendable {
    struct Route: Sendable {
        /// The original backend's admin id (`smollm2-0`) and, when managed, its name.
        let id: String
        let name: String?
        let proxy: ChaosProxy
        let task: Task<Void, any Error>
        /// The proxy's id once registered.
        let proxyID: String
        let registration: JSONValue
    }

    let routes: [Route]
    let admin: AdminClient
    let heartbeat: Task<Void, Never>
    let log: @Sendable (String) -> Void

    static let ttlSeconds = 30

    private init(routes: [Route], admin: AdminClient, log: @escaping @Sendable (String) -> Void) {
        self.routes = routes
        self.admin = admin
        self.log = log
        // Renews every proxy's registration well before its TTL runs out.
        heartbeat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(Self.ttlSeconds / 3))
                for route in routes where !Task.isCancelled {
                    _ = try? await admin.call(.POST, "/admin/backends", body: route.registration)
                }
            }
        }
    }

    /// Puts a proxy in front of `names` (ids or managed names; empty: every backend) of `model`.
    static func install(
        model: String, names: [String], admin: AdminClient, seed: UInt64, log: @escaping @Sendable (String) -> Void
    ) async throws -> BackendChaos {
        let listed = try await admin.backends(of: model)
        let eligible = listed.filter { $0["state"]?.stringValue != "drained" }
        let chosen =
            names.isEmpty
            ? eligible
            : try names.map { name in
                guard let b = listed.first(where: { $0["id"]?.stringValue == name || $0["name"]?.stringValue == name }) else {
                    let known = listed.compactMap { $0["id"]?.stringValue }.joined(separator: ", ")
                    throw AdminClient.Failure(description: "no backend '\(name)' of model '\(model)' (backends: \(known.isEmpty ? "none" : known))")
                }
                return b
            }
        guard !chosen.isEmpty else { throw AdminClient.Failure(description: "model '\(model)' has no backend to put chaos in front of") }
        var routes: [Route] = []
        do {
            for (i, backend) in chosen.enumerated() {
                routes.append(try await route(backend, model: model, admin: admin, seed: seed &+ UInt64(i) &* 104_729, log: log))
            }
        } catch {
            await BackendChaos(routes: routes, admin: admin, log: log).remove()
            throw error
        }
        return BackendChaos(routes: routes, admin: admin, log: log)
    }

    /// One proxy: started, registered (capacity discovered through it), then the original closed.
    private static func route(
        _ backend: JSONValue, model: String, admin: AdminClient, seed: UInt64, log: @Sendable (String) -> Void
    ) async throws -> Route {
        guard let id = backend["id"]?.stringValue, let urlText = backend["url"]?.stringValue, let url = HTTPURL(urlText) else {
            throw AdminClient.Failure(description: "/admin/backends lists a backend without id or url: \(backend)")
        }
        let proxy = try ChaosProxy(upstream: url.origin, seed: seed)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task { try await proxy.run(port: 0) { continuation.yield($0) } }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            task.cancel()
            throw AdminClient.Failure(description: "the chaos proxy for \(id) did not start")
        }
        var fields: [(String, JSONValue)] = [
            ("url", .string("http://127.0.0.1:\(port)\(url.path)")), ("model", .string(model)), ("ttl", .number(ttlSeconds)),
        ]
        for key in ["upstream_model", "weight", "max_inflight"] {
            if let value = backend[key], value != .null { fields.append((key, value)) }
        }
        let registration = JSONValue.object(fields)
        do {
            let answer = try await admin.call(.POST, "/admin/backends", body: registration, timeout: .seconds(60))
            guard let proxyID = answer["id"]?.stringValue else { throw AdminClient.Failure(description: "registration answered no id: \(answer)") }
            do {
                try await admin.call(.POST, "/admin/backends/\(id)/drain?stop=false", timeout: .seconds(120))
            } catch {
                _ = try? await admin.call(.DELETE, "/admin/backends/\(proxyID)")
                throw error
            }
            log("  chaos proxy on 127.0.0.1:\(port) in front of \(id) (\(url.origin)); its traffic now goes through \(proxyID)")
            return Route(id: id, name: backend["name"]?.stringValue, proxy: proxy, task: task, proxyID: proxyID, registration: registration)
        } catch {
            task.cancel()
            throw error
        }
    }

    /// Sets the faults on the proxies in front of `names` (empty: all), and clears the others.
    func set(_ faults: ChaosFaults, on names: [String]) {
        for route in routes {
            let chosen = names.isEmpty || names.contains(route.id) || route.name.map(names.contains) == true
            route.proxy.set(chosen ? faults : ChaosFaults())
        }
    }

    /// What each proxy did, as `<id> <what>` (e.g. `smollm2-0 reset`).
    var injected: [String: Int] {
        var out: [String: Int] = [:]
        for route in routes {
            for (what, n) in route.proxy.injected { out["\(route.id) \(what)"] = n }
        }
        return out
    }

    /// Undoes ``install``: every original opens again, then its proxy is deregistered and stopped.
    func remove() async {
        heartbeat.cancel()
        for route in routes {
            route.proxy.set(ChaosFaults())
            do {
                try await admin.call(.POST, "/admin/backends/\(route.id)/resume")
                try await admin.call(.DELETE, "/admin/backends/\(route.proxyID)")
            } catch {
                // Left for the operator: the log says what to call.
                log(
                    "  could not restore \(route.id) (\(error)); POST /admin/backends/\(route.id)/resume and DELETE /admin/backends/\(route.proxyID) by hand"
                )
            }
            route.task.cancel()
        }
        for route in routes { _ = await route.task.result }
    }
}
