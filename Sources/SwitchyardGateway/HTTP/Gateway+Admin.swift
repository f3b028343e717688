import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOSSL
import SwitchyardCore

/// The admin API: replica status, drain/resume, rollout, registration. Token-protected.
extension Gateway {
    /// Records a managed replica's lifecycle (from its supervisor) for `/admin/backends` and metrics.
    package func recordReplica(_ status: ReplicaStatus) {
        let previous = replicas.withLock { map -> ReplicaStatus? in
            defer { map[status.url] = status }
            return map[status.url]
        }
        metrics.replica(status, previousRestarts: previous?.restarts ?? 0)
    }

    /// Lets the admin API drain, pause and restart a managed replica (backend `index` of `model`).
    package func registerManaged(model: String, index: Int, control: any ManagedReplicaControl) {
        controls.withLock { $0.append((id: "\(model)-\(index)", model: model, index: index, control: control)) }
    }

    /// Admin ids are `<model>-<index>` for every backend, managed or not.
    func locate(_ id: String) -> (pool: ModelPool, index: Int)? {
        guard let dash = id.lastIndex(of: "-"), let index = Int(id[id.index(after: dash)...]),
            let pool = pools[String(id[..<dash])], pool.isLive(index)
        else { return nil }
        return (pool, index)
    }

    /// Waits until no request is in flight on the replica (or the shutdown grace passed).
    func waitIdle(_ pool: ModelPool, _ index: Int) async {
        let deadline = ContinuousClock.now + config.server.shutdownGrace
        while pool.inflight(index) > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Closes the replica's gate and waits for it to go idle; a managed replica's process is then
    /// stopped unless `stop` is false (it stays up, taking no traffic, until resumed).
    func drain(id: String, stop: Bool = true) async -> Response {
        guard let (pool, index) = locate(id) else {
            return GatewayResponses.error(
                APIError(
                    status: 404, message: "No backend '\(id)'; ids are <model>-<index> as listed by GET /admin/backends.",
                    type: "invalid_request_error", code: "backend_not_found"))
        }
        let started = ContinuousClock.now
        pool.setGate(index, open: false)
        await waitIdle(pool, index)
        let control = stop ? controls.withLock { $0.first { $0.id == id }?.control } : nil
        await control?.pause()
        logger.info("backend drained", metadata: ["backend": "\(id)", "stopped": "\(control != nil)"])
        return GatewayResponses.json(
            .object([
                ("id", .string(id)), ("drained", .bool(true)), ("inflight", .number(pool.inflight(index))),
                ("stopped", .bool(control != nil)), ("drain_ms", .number(Int(((ContinuousClock.now - started).seconds * 1000).rounded()))),
            ]))
    }

    func resume(id: String) -> Response {
        guard let (pool, index) = locate(id) else {
            return GatewayResponses.error(
                APIError(status: 404, message: "No backend '\(id)'.", type: "invalid_request_error", code: "backend_not_found"))
        }
        let control = controls.withLock { $0.first { $0.id == id }?.control }
        // A paused replica's supervisor opens the gate again once warmed up; one drained without
        // stopping is opened here, unless its supervisor is (re)starting it and will open it.
        if control?.resume() != true, control.map({ $0.status.phase == .ready }) ?? true {
            pool.setGate(index, open: true)
        }
        return GatewayResponses.json(.object([("id", .string(id)), ("resumed", .bool(true))]))
    }

    /// `POST /admin/backends {"url", "model", "ttl", "max_inflight"?, "upstream_model"?}`: registers a
    /// model server started elsewhere, or renews it (the heartbeat: post again before `ttl` ends).
    /// A new backend's capacity is discovered before the answer, which reports it.
    func register(body: ByteBuffer) async -> Response {
        let json: JSONValue
        do {
            json = try JSONParser.parse(body.readableBytesView)
        } catch {
            return GatewayResponses.error(.invalidRequest("Invalid JSON: \(error).", code: "invalid_json"))
        }
        guard let url = json["url"]?.stringValue, HTTPURL(url) != nil else {
            return GatewayResponses.error(.invalidRequest("'url' must be the server's OpenAI base URL, e.g. http://10.0.0.5:8000/v1.", param: "url"))
        }
        guard let model = json["model"]?.stringValue, let pool = pools[model] else {
            return GatewayResponses.error(
                .invalidRequest("'model' must name a configured model: \(config.models.map(\.name).joined(separator: ", ")).", param: "model"))
        }
        let ttl: Duration
        if let seconds = json["ttl"]?.doubleValue, seconds > 0 {
            ttl = .milliseconds(Int64(seconds * 1000))
        } else if let text = json["ttl"]?.stringValue, let parsed = Duration.parse(text), parsed > .zero {
            ttl = parsed
        } else {
            return GatewayResponses.error(.invalidRequest("'ttl' must be a positive number of seconds or a duration such as 30s.", param: "ttl"))
        }
        var maxInflight: Int?
        if let value = json["max_inflight"], value != .null {
            guard let n = value.intValue, n >= 0 else {
                return GatewayResponses.error(
                    .invalidRequest("'max_inflight' must be a whole number ≥ 0 (0 = unlimited), or left out to discover it.", param: "max_inflight"))
            }
            maxInflight = n
        }
        var backend = BackendConfig(url: url, upstreamModel: json["upstream_model"]?.stringValue, maxInflight: maxInflight)
        backend.weight = json["weight"]?.doubleValue ?? 1
        let (index, isNew) = pool.register(backend, ttl: ttl)
        if isNew {
            logger.info("backend registered", metadata: ["model": "\(model)", "backend": "\(url)", "ttl": "\(ttl.formatted)"])
            await capacityDiscovery.discover(pool, index)
        }
        let capacity = pool.capacity(index).map(\.json) ?? .null
        return GatewayResponses.json(
            .object([
                ("id", .string("\(model)-\(index)")), ("registered", .bool(isNew)), ("ttl_seconds", .number(String(ttl.seconds))),
                ("capacity", capacity),
            ]),
            status: isNew ? .created : .ok)
    }

    /// `DELETE /admin/backends/{id}`: a registered backend (a Slurm job ending) is closed to new
    /// requests, its requests in flight finish (within the shutdown grace), then it leaves.
    func deregister(id: String) async -> Response {
        guard let (pool, index) = locate(id) else {
            return GatewayResponses.error(
                APIError(status: 404, message: "No backend '\(id)'.", type: "invalid_request_error", code: "backend_not_found"))
        }
        guard pool.isRegistered(index) else {
            return GatewayResponses.error(
                APIError(
                    status: 409,
                    message: "Backend '\(id)' was not registered through the admin API: remove it from the configuration (or drain it).",
                    type: "invalid_request_error", code: "backend_not_registered"))
        }
        let started = ContinuousClock.now
        pool.setGate(index, open: false)
        await waitIdle(pool, index)
        let inflight = pool.inflight(index)
        pool.deregister(index)
        let ms = Int(((ContinuousClock.now - started).seconds * 1000).rounded())
        logger.info("backend deregistered", metadata: ["backend": "\(id)", "drain_ms": "\(ms)", "inflight_left": "\(inflight)"])
        return GatewayResponses.json(
            .object([("id", .string(id)), ("removed", .bool(true)), ("drain_ms", .number(ms)), ("inflight_left", .number(inflight))]))
    }

    /// Restarts managed replicas one at a time: drain → restart → ready → next.
    func rollout() async -> Response {
        let all = controls.withLock { $0 }
        var steps: [JSONValue] = []
        for entry in all {
            guard let pool = pools[entry.model] else { continue }
            let started = ContinuousClock.now
            let timeout = config.model(named: entry.model)?.managed?.readyTimeout ?? .seconds(120)
            let ok = await entry.control.rollingRestart(waitIdle: { [self] in await waitIdle(pool, entry.index) }, timeout: timeout)
            let seconds = (ContinuousClock.now - started).seconds
            steps.append(.object([("id", .string(entry.id)), ("ready", .bool(ok)), ("seconds", .number(String(format: "%.2f", seconds)))]))
            logger.info("rollout step", metadata: ["backend": "\(entry.id)", "ready": "\(ok)", "seconds": "\(String(format: "%.2f", seconds))"])
            if !ok {
                return GatewayResponses.json(.object([("completed", .bool(false)), ("steps", .array(steps))]), status: .internalServerError)
            }
        }
        return GatewayResponses.json(.object([("completed", .bool(true)), ("steps", .array(steps))]))
    }

    /// 403 unless the request carries `Authorization: Bearer <admin.token>` (compared in constant time).
    /// Who may call `/admin/*`: the bearer token (`admin.token`) and, with
    /// `admin.client_certificate`, a client certificate the client CA issued (its common name
    /// among `admin.client_subjects` when those are listed). Nil: allowed.
    func authorizeAdmin(_ request: Request, certificate: NIOSSLCertificate?) -> Response? {
        let admin = config.admin
        guard admin.token != nil || admin.clientCertificate else {
            return GatewayResponses.error(
                APIError(
                    status: 403, message: "The admin API is disabled: set admin.token (or server.tls.client_ca) in the configuration.",
                    type: "permission_error", code: "admin_disabled"))
        }
        if admin.clientCertificate {
            guard let certificate else {
                return GatewayResponses.error(
                    APIError(
                        status: 401, message: "The admin API requires a client certificate issued by the gateway's client CA.",
                        type: "authentication_error", code: "client_certificate_required"))
            }
            let name = ListenerTLS.commonName(certificate) ?? ""
            if !admin.clientSubjects.isEmpty && !admin.clientSubjects.contains(name) {
                return GatewayResponses.error(
                    APIError(
                        status: 403, message: "The client certificate's subject (CN=\(name)) is not among admin.client_subjects.",
                        type: "permission_error", code: "client_certificate_not_allowed"))
            }
        }
        if let token = admin.token {
            let given = request.headers[.authorization].map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 } ?? ""
            guard TenantKeys.constantTimeEqual(Array(given.utf8), Array(token.utf8)) else {
                return GatewayResponses.error(
                    APIError(status: 401, message: "Missing or wrong admin token.", type: "authentication_error", code: "invalid_admin_token"))
            }
        }
        return nil
    }

    func adminBackends() -> Response {
        let statuses = replicas.withLock { $0 }
        func number(_ d: Double?) -> JSONValue { d.map { .number(String(format: "%.3f", $0)) } ?? .null }
        var models: [JSONValue] = []
        for model in config.models {
            guard let pool = pools[model.name] else { continue }
            let backends = pool.snapshot().map { r -> JSONValue in
                var fields: [(String, JSONValue)] = [
                    ("id", .string("\(model.name)-\(r.index)")), ("url", .string(r.backend.id)), ("state", .string(r.state.rawValue)),
                    ("managed", .bool(r.backend.managed)), ("healthy", .bool(r.healthy)),
                    ("ejected", .bool(r.ejected)), ("accepting", .bool(r.gateOpen)), ("inflight", .number(r.inflight)),
                    ("max_inflight", r.backend.maxInflight.map { .number($0) } ?? .null), ("capacity", r.capacity.json),
                    ("upstream_model", .string(r.backend.upstreamModel)), ("weight", .number(String(r.backend.weight))),
                    ("last_health_error", r.lastError.map(JSONValue.string) ?? .null),
                ]
                if let s = statuses[r.backend.id] {
                    fields += [
                        ("name", .string(s.name)), ("phase", .string(s.phase.rawValue)), ("pid", s.pid.map { .number(Int($0)) } ?? .null),
                        ("restarts", .number(s.restarts)), ("last_exit", s.lastExit.map(JSONValue.string) ?? .null),
                        ("load_seconds", number(s.loadSeconds)), ("warmup_seconds", number(s.warmupSeconds)),
                        ("ready_seconds", number(s.readySeconds)),
                    ]
                }
                return .object(fields)
            }
            models.append(.object([("model", .string(model.name)), ("backends", .array(backends))]))
        }
        return GatewayResponses.json(.object([("models", .array(models))]))
    }

}

extension Gateway {
    /// `GET /admin/describe[?format=mermaid|svg|html|json]`: the serving path drawn from the
    /// configuration in force and the pools' replicas as they are now (``ServingPath``).
    func adminDescribe(format: String?) -> Response {
        let config = self.config
        var live: [String: [ServingPath.Replica]] = [:]
        for model in config.models {
            guard let pool = pools[model.name] else { continue }
            live[model.name] = pool.snapshot().map { r in
                let limit = r.capacity.limit == 0 ? "unlimited" : "\(r.capacity.limit) slots"
                return ServingPath.Replica(
                    id: "\(model.name)-\(r.index)", url: r.backend.id,
                    detail: (r.capacity.source.engine.map { "\($0), " } ?? "") + "\(limit) (\(r.capacity.source.rawValue))"
                        + (r.backend.managed ? ", managed" : ""), state: r.state.rawValue,
                    inflight: r.inflight)
            }
        }
        let path = ServingPath(config: config, live: live)
        func text(_ body: String, _ type: String) -> Response {
            Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        switch format ?? "mermaid" {
        case "mermaid": return text(path.mermaid, "text/plain; charset=utf-8")
        case "svg": return text(path.svg, "image/svg+xml")
        case "html": return text(path.html(title: "Switchyard serving path"), "text/html; charset=utf-8")
        case "json": return GatewayResponses.json(.object([("mermaid", .string(path.mermaid)), ("svg", .string(path.svg))]))
        case let other:
            return GatewayResponses.error(
                .invalidRequest("Unknown format '\(other)'; use mermaid, svg, html or json.", param: "format"))
        }
    }
}

extension ModelPool.CapacityStatus {
    /// `{"limit": 4, "source": "props", "tokens": 4096}` (limit 0 = unlimited).
    var json: JSONValue {
        .object([("limit", .number(limit)), ("source", .string(source.rawValue)), ("tokens", tokens.map { .number($0) } ?? .null)])
    }
}

/// Guards `/admin/*`: a request without the admin token is refused (and audited); every
/// accepted call is written to the audit log with who made it (the token's id: the first 8 hex
/// digits of its SHA-256, never the token), from where, what and the outcome. Changes are logged
/// at notice; reads and registration heartbeats at debug.
struct AdminAuditMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let gateway: Gateway

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard path == "/admin" || path.hasPrefix("/admin/") else { return try await next(request, context) }
        let client = context.channel.remoteAddress?.ipAddress ?? "?"
        let what = "\(request.method) \(path)"
        let overTLS = gateway.listenerTLS.withLock { $0 } != nil
        let certificate = overTLS ? await ListenerTLS.peerCertificate(of: context.channel) : nil
        let subject = certificate.map { "cert:CN=" + (ListenerTLS.commonName($0) ?? "") }
        if let denied = gateway.authorizeAdmin(request, certificate: certificate) {
            gateway.logger.warning(
                "admin call refused",
                metadata: [
                    "audit": "admin", "who": "\(subject ?? "?")", "client": "\(client)", "call": "\(what)", "status": "\(denied.status.code)",
                ])
            return denied
        }
        let token = gateway.config.admin.token.map { "token:" + Digest.sha256Hex($0).prefix(8) }
        let who = [subject, token].compactMap { $0 }.joined(separator: " ")
        let response = try await next(request, context)
        let status = response.status.code
        let routine = request.method == .get || (request.method == .post && path == "/admin/backends" && status == 200)
        gateway.logger.log(
            level: routine ? .debug : .notice, "admin call",
            metadata: ["audit": "admin", "who": "\(who)", "client": "\(client)", "call": "\(what)", "status": "\(status)"])
        return response
    }
}
