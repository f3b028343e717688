/// What changes between two configurations, field by field, in plain words; and which of the
/// changes a running gateway cannot apply (they need a restart). Both `switchyard config diff`
/// and a live reload read it, so what the operator is told is what the gateway does.
///
/// Applied live: tenants and their keys, `admin.token`, `retry`, every lane setting (a lane may
/// be added or removed), and per model its listed backends, routing, fallback, timeouts, queue
/// timeout and preemption lead. Restart only: `server`, `upstream`, `health`, `outlier`, `batch`,
/// adding or removing a model, and a model's `managed`, `discovery`, `batching`,
/// `memory_headroom` and `adaptive_concurrency`.
package struct ConfigDiff: Sendable, Equatable {
    package struct Change: Sendable, Equatable, CustomStringConvertible {
        /// The YAML path of the field (`lanes[realtime].slo.ttft`).
        package var path: String
        /// What it is about: `lane realtime`, `model smollm2`, `tenants`, `server`.
        package var scope: String
        /// What happens, e.g. `slo.ttft 2s → 1s`.
        package var text: String
        /// A running gateway cannot apply it.
        package var needsRestart: Bool

        package var description: String { "\(scope): \(text)\(needsRestart ? " (needs a restart)" : "")" }
    }

    package private(set) var changes: [Change] = []

    package var isEmpty: Bool { changes.isEmpty }

    /// The changes a reload must refuse, as configuration issues naming their field.
    package var restartIssues: [ConfigIssue] {
        changes.filter(\.needsRestart).map {
            ConfigIssue(path: $0.path, message: "\($0.text): cannot change while serving; restart the gateway (roll the Deployment) to apply it")
        }
    }

    /// Compares two configurations. Backends Switchyard starts itself (`managed`) are left out:
    /// they follow the model's `managed` section.
    package init(from old: GatewayConfig, to new: GatewayConfig) {
        for section in ["server", "upstream", "health", "outlier", "batch", "limits"] {
            compare(Self.child(old, section), Self.child(new, section), path: section, scope: section, restart: true)
        }
        compare(old.retry, new.retry, path: "retry", scope: "retry", restart: false)
        if old.admin.token != new.admin.token {
            let text =
                old.admin.token == nil ? "token set (admin API on)" : new.admin.token == nil ? "token removed (admin API off)" : "token replaced"
            add("admin.token", "admin", text, restart: false)
        }
        if old.admin.clientCertificate != new.admin.clientCertificate {
            add(
                "admin.client_certificate", "admin",
                new.admin.clientCertificate ? "client certificate now required" : "client certificate no longer required", restart: false)
        }
        if old.admin.clientSubjects != new.admin.clientSubjects {
            let names = new.admin.clientSubjects.isEmpty ? "any the client CA issued" : new.admin.clientSubjects.joined(separator: ", ")
            add("admin.client_subjects", "admin", "allowed certificate subjects: \(names)", restart: false)
        }
        tenants(old.tenants, new.tenants)
        lanes(old.lanes, new.lanes)
        models(old.models, new.models)
    }

    private mutating func add(_ path: String, _ scope: String, _ text: String, restart: Bool) {
        changes.append(Change(path: path, scope: scope, text: text, needsRestart: restart))
    }

    private mutating func tenants(_ old: [TenantConfig], _ new: [TenantConfig]) {
        let before = Dictionary(old.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(new.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for t in new where before[t.name] == nil {
            add("tenants[\(t.name)]", "tenant \(t.name)", "added (weight \(Self.show(t.weight)))", restart: false)
        }
        for t in old where after[t.name] == nil {
            add("tenants[\(t.name)]", "tenant \(t.name)", "removed: its key is refused from now on", restart: false)
        }
        for t in new {
            guard let was = before[t.name] else { continue }
            if was.apiKeySHA256 != t.apiKeySHA256 {
                add("tenants[\(t.name)].api_key_sha256", "tenant \(t.name)", "key replaced: the old key is refused from now on", restart: false)
            }
            if was.weight != t.weight {
                add("tenants[\(t.name)].weight", "tenant \(t.name)", "weight \(Self.show(was.weight)) → \(Self.show(t.weight))", restart: false)
            }
        }
    }

    private mutating func lanes(_ old: [LaneConfig], _ new: [LaneConfig]) {
        let before = Dictionary(old.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let names = Set(new.map(\.name))
        for lane in new {
            guard let was = before[lane.name] else {
                add("lanes[\(lane.name)]", "lane \(lane.name)", "added (priority \(lane.priority))", restart: false)
                continue
            }
            compare(was, lane, path: "lanes[\(lane.name)]", scope: "lane \(lane.name)", restart: false, skip: ["name"])
        }
        for lane in old where !names.contains(lane.name) {
            add("lanes[\(lane.name)]", "lane \(lane.name)", "removed: takes no new requests; what it holds is still served", restart: false)
        }
    }

    private mutating func models(_ old: [ModelConfig], _ new: [ModelConfig]) {
        let before = Dictionary(old.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let names = Set(new.map(\.name))
        for (i, model) in new.enumerated() {
            let scope = "model \(model.name)"
            guard let was = before[model.name] else {
                add("models[\(i)]", scope, "added", restart: true)
                continue
            }
            let path = "models[\(i)]"
            for field in ["managed", "discovery", "batching", "memoryHeadroom", "adaptiveConcurrency"] {
                compare(
                    Self.child(was, field), Self.child(model, field), path: "\(path).\(Self.snake(field))", scope: scope, restart: true, base: path)
            }
            for field in ["routing", "fallback", "timeouts", "queueTimeout", "preemptionLead"] {
                compare(
                    Self.child(was, field), Self.child(model, field), path: "\(path).\(Self.snake(field))", scope: scope, restart: false, base: path)
            }
            backends(was.backends.filter { !$0.managed }, model.backends.filter { !$0.managed }, path: "\(path).backends", scope: scope)
        }
        for model in old where !names.contains(model.name) {
            add("models[\(model.name)]", "model \(model.name)", "removed", restart: true)
        }
    }

    private mutating func backends(_ old: [BackendConfig], _ new: [BackendConfig], path: String, scope: String) {
        let before = Dictionary(old.map { ($0.url, $0) }, uniquingKeysWith: { a, _ in a })
        let urls = Set(new.map(\.url))
        for (j, b) in new.enumerated() {
            guard let was = before[b.url] else {
                add("\(path)[\(j)]", scope, "backend \(b.url) added (takes traffic once its health check passes)", restart: false)
                continue
            }
            compare(was, b, path: "\(path)[\(j)]", scope: "\(scope) backend \(b.url)", restart: false, skip: ["url", "managed"])
        }
        for b in old where !urls.contains(b.url) {
            add(path, scope, "backend \(b.url) removed (drained: its requests in flight finish)", restart: false)
        }
    }

    /// Field by field through nested settings (Mirror), naming each change by its YAML path.
    /// - Parameter base: the path the change's words start after (`slo.ttft` under `lanes[realtime]`).
    private mutating func compare(
        _ old: Any, _ new: Any, path: String, scope: String, restart: Bool, skip: Set<String> = [], base: String? = nil
    ) {
        let base = base ?? path
        let a = Mirror(reflecting: old)
        let b = Mirror(reflecting: new)
        if Self.isLeaf(old, a) || Self.isLeaf(new, b) || a.children.count != b.children.count {
            let (x, y) = (Self.show(old), Self.show(new))
            if x != y {
                let field =
                    path.count > base.count ? String(path.dropFirst(base.count + 1)) : (path.split(separator: ".").last.map(String.init) ?? path)
                add(path, scope, "\(field) \(x) → \(y)", restart: restart)
            }
            return
        }
        for (ca, cb) in zip(a.children, b.children) {
            guard let label = ca.label, !skip.contains(label) else { continue }
            compare(ca.value, cb.value, path: "\(path).\(Self.snake(label))", scope: scope, restart: restart, base: base)
        }
    }

    static func child(_ value: Any, _ label: String) -> Any {
        guard let child = Mirror(reflecting: value).children.first(where: { $0.label == label }) else { return () }
        return child.value
    }

    static func isLeaf(_ value: Any, _ mirror: Mirror) -> Bool {
        if value is Duration || value is String || value is Double || value is Int || value is Bool { return true }
        switch mirror.displayStyle {
        case .struct: return false
        case .optional: return true
        default: return true
        }
    }

    /// A value as the YAML would say it: durations as `2s`, nil as `none`, enums by raw value.
    static func show(_ value: Any) -> String {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return "none" }
            return show(wrapped)
        }
        switch value {
        case let d as Duration: return d.formatted
        case let x as Double: return Duration.trim(x)
        case let s as String: return s
        case let raw as any RawRepresentable: return "\(raw.rawValue)"
        case let list as [String]: return list.isEmpty ? "none" : list.joined(separator: ", ")
        default: break
        }
        if mirror.displayStyle == .struct {
            return "{" + mirror.children.map { "\(snake($0.label ?? "")): \(show($0.value))" }.joined(separator: ", ") + "}"
        }
        return String(describing: value)
    }

    /// `maxInflightShare` → `max_inflight_share`.
    static func snake(_ name: String) -> String {
        var out = ""
        var previous: Character?
        for c in name {
            if c.isUppercase, let p = previous, p.isLowercase || p.isNumber { out.append("_") }
            out.append(Character(c.lowercased()))
            previous = c
        }
        return out
    }
}
