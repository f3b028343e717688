import AsyncHTTPClient
import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// `/openapi.json` describes exactly the routes the router has, and what a running gateway
/// answers (status, content type, body) matches what it says, errors in OpenAI's shape included.
/// CI also runs schemathesis against it (scripts/schemathesis.sh).
@Suite struct OpenAPITests {
    static let document = try! JSONParser.parse(OpenAPIDocument.json(models: ["m"]))

    /// `METHOD /path` of every operation in the document.
    static var operations: Set<String> {
        guard case .object(let paths)? = document["paths"] else { return [] }
        var out: Set<String> = []
        for (path, item) in paths {
            guard case .object(let fields) = item else { continue }
            for (method, _) in fields where ["get", "post", "put", "delete", "patch"].contains(method) {
                out.insert("\(method.uppercased()) \(path)")
            }
        }
        return out
    }

    @Test func theDocumentListsEveryRouteTheRouterServesAndNothingElse() async throws {
        let gateway = Gateway(
            config: GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:1/v1"])]), logger: .init(label: "t"))
        let served = Set(gateway.makeRoutes().routes)
        #expect(Self.document["openapi"]?.stringValue == "3.1.0")
        #expect(served.subtracting(Self.operations).isEmpty, "served but not documented: \(served.subtracting(Self.operations).sorted())")
        #expect(Self.operations.subtracting(served).isEmpty, "documented but not served: \(Self.operations.subtracting(served).sorted())")
        #expect(served.count > 25)
        try await gateway.client.shutdown()
    }

    /// The operation's documented response for `status` (or `default`), $refs resolved.
    static func response(_ method: String, _ template: String, status: Int) -> JSONValue? {
        guard let responses = document["paths"]?[template]?[method.lowercased()]?["responses"] else { return nil }
        return responses[String(status)].map(resolve) ?? responses["default"].map(resolve)
    }

    static func resolve(_ value: JSONValue) -> JSONValue {
        guard let ref = value["$ref"]?.stringValue, ref.hasPrefix("#/") else { return value }
        var node = document
        for part in ref.dropFirst(2).split(separator: "/") { node = node[String(part)] ?? .null }
        return resolve(node)
    }

    /// A small JSON Schema check: $ref, const, enum, type, required, properties, items.
    static func problems(_ value: JSONValue, _ schema: JSONValue, at path: String = "$") -> [String] {
        let schema = resolve(schema)
        var out: [String] = []
        if let c = schema["const"], c != value { out.append("\(path): expected \(c)") }
        if case .array(let options)? = schema["enum"], !options.contains(value) { out.append("\(path): \(value) not in enum") }
        let types: [String] =
            switch schema["type"] {
            case .string(let t)?: [t]
            case .array(let ts)?: ts.compactMap(\.stringValue)
            default: []
            }
        let actual: String =
            switch value {
            case .null: "null"
            case .bool: "boolean"
            case .number(let n): n.contains(where: { ".eE".contains($0) }) ? "number" : "integer"
            case .string: "string"
            case .array: "array"
            case .object: "object"
            }
        if !types.isEmpty && !types.contains(actual) && !(actual == "integer" && types.contains("number")) {
            out.append("\(path): \(actual), expected \(types)")
        }
        if case .array(let required)? = schema["required"], case .object = value {
            for key in required.compactMap(\.stringValue) where value[key] == nil { out.append("\(path).\(key): required") }
        }
        if case .object(let properties)? = schema["properties"], case .object(let fields) = value {
            for (key, sub) in properties { if let v = fields.first(where: { $0.0 == key })?.1 { out += problems(v, sub, at: "\(path).\(key)") } }
        }
        if let items = schema["items"], case .array(let elements) = value {
            for (i, e) in elements.enumerated() { out += problems(e, items, at: "\(path)[\(i)]") }
        }
        return out
    }

    /// Checks one answer against the document: documented status, content type, body schema.
    static func conforms(_ method: String, _ template: String, _ reply: TestClient.Reply) {
        guard let response = response(method, template, status: reply.status) else {
            Issue.record("\(method) \(template): status \(reply.status) is not documented: \(reply.body.prefix(300))")
            return
        }
        let type = (reply.headers["content-type"] ?? "").split(separator: ";").first.map(String.init) ?? ""
        guard case .object(let contents)? = response["content"] else { return }
        guard let media = contents.first(where: { $0.0 == type })?.1 else {
            Issue.record("\(method) \(template) \(reply.status): content type '\(type)' not in \(contents.map(\.0))")
            return
        }
        guard type == "application/json", let schema = media["schema"] else { return }
        guard let body = reply.json else {
            Issue.record("\(method) \(template) \(reply.status): not JSON: \(reply.body.prefix(200))")
            return
        }
        let found = problems(body, schema)
        #expect(found.isEmpty, "\(method) \(template) \(reply.status): \(found) in \(reply.body.prefix(400))")
    }

    @Test func aRunningGatewayAnswersAsTheDocumentSays() async throws {
        let token = "admin-token-\(UUID().uuidString)"
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/ok/v1"])]) { $0.admin.token = token }
            try await GatewayHarness.withBatch(config) { _, base, _ in
                let admin = ["authorization": "Bearer \(token)"]
                var checked = 0
                func check(_ method: String, _ template: String, _ reply: TestClient.Reply) {
                    Self.conforms(method, template, reply)
                    checked += 1
                }
                for path in ["/v1/models", "/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/files", "/v1/batches"] {
                    check("GET", path, try await TestClient.get(base + path))
                }
                for path in ["/admin/backends", "/admin/config"] {
                    check("GET", path, try await TestClient.get(base + path, headers: admin))
                    check("GET", path, try await TestClient.get(base + path))  // 401
                }
                check("POST", "/v1/chat/completions", try await TestClient.post(base + "/v1/chat/completions", TestClient.chat()))
                check("POST", "/v1/chat/completions", try await TestClient.post(base + "/v1/chat/completions", TestClient.chat(stream: true)))
                check("POST", "/v1/chat/completions", try await TestClient.post(base + "/v1/chat/completions", #"{"model":"m"}"#))
                check("POST", "/v1/chat/completions", try await TestClient.post(base + "/v1/chat/completions", #"{"model":"nope","messages":[]}"#))
                check("POST", "/v1/embeddings", try await TestClient.post(base + "/v1/embeddings", #"{"model":"m","input":"hi"}"#))
                let file = try await BatchAPITests.upload(base, BatchAPITests.jsonl(2))
                check("POST", "/v1/files", file)
                let fileID = try #require(file.json?["id"]?.stringValue)
                check("GET", "/v1/files/{id}", try await TestClient.get("\(base)/v1/files/\(fileID)"))
                check("GET", "/v1/files/{id}/content", try await TestClient.get("\(base)/v1/files/\(fileID)/content"))
                check("GET", "/v1/files/{id}", try await TestClient.get("\(base)/v1/files/file-nope"))
                let batch = try await TestClient.post(
                    "\(base)/v1/batches", #"{"input_file_id":"\#(fileID)","endpoint":"/v1/chat/completions","completion_window":"24h"}"#)
                check("POST", "/v1/batches", batch)
                let batchID = try #require(batch.json?["id"]?.stringValue)
                check("GET", "/v1/batches/{id}", try await TestClient.get("\(base)/v1/batches/\(batchID)"))
                check("POST", "/v1/batches/{id}/cancel", try await TestClient.post("\(base)/v1/batches/\(batchID)/cancel", ""))
                check("POST", "/v1/batches", try await TestClient.post("\(base)/v1/batches", #"{"endpoint":"/v1/chat/completions"}"#))
                check("DELETE", "/v1/files/{id}", try await TestClient.send(.DELETE, "\(base)/v1/files/\(fileID)"))
                check("POST", "/admin/config/rollback", try await TestClient.post("\(base)/admin/config/rollback", "", headers: admin))
                check(
                    "POST", "/admin/config",
                    try await TestClient.post("\(base)/admin/config", "models: 3", contentType: "application/yaml", headers: admin))
                check("DELETE", "/admin/backends/{id}", try await TestClient.send(.DELETE, "\(base)/admin/backends/m-0", headers: admin))
                check("POST", "/admin/backends/{id}/drain", try await TestClient.post("\(base)/admin/backends/nope/drain", "", headers: admin))
                check(
                    "POST", "/admin/backends",
                    try await TestClient.post(
                        "\(base)/admin/backends", #"{"url":"http://127.0.0.1:\#(port)/ok/v1","model":"m","ttl":60,"max_inflight":4}"#, headers: admin)
                )
                check("POST", "/admin/backends", try await TestClient.post("\(base)/admin/backends", #"{"url":"x"}"#, headers: admin))
                #expect(checked == 31)
                let served = try await TestClient.get(base + "/openapi.json").json
                #expect(served?["components"]?["schemas"]?["ChatCompletionRequest"]?["properties"]?["model"]?["examples"] == .array([.string("m")]))
                // The check itself can fail: an error object without its message and type.
                let error = JSONValue.object([("$ref", .string("#/components/schemas/Error"))])
                #expect(Self.problems(.object([("error", .object([("code", .number("3"))]))]), error).count == 3)
            }
        }
    }
}
