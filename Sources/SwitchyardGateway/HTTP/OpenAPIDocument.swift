import SwitchyardCore

/// The OpenAPI 3.1 description of every endpoint the gateway serves, at `/openapi.json`.
/// `OpenAPITests` checks it against the routes the router really has (both ways) and against
/// answers from a running gateway; CI runs schemathesis against it (`scripts/schemathesis.sh`).
/// Errors are all `default` responses in OpenAI's error shape.
enum OpenAPIDocument {
    /// The document as built from ``yaml``.
    static let document: JSONValue = {
        do {
            return try JSONValue(yaml: yaml)
        } catch {
            preconditionFailure("the OpenAPI document is not valid YAML: \(error)")
        }
    }()

    /// The document as a gateway serves it: the model pools it serves are the examples of every
    /// request's `model`.
    static func json(models: [String]) -> [UInt8] {
        func edit(_ value: JSONValue, _ path: ArraySlice<String>) -> JSONValue {
            guard let key = path.first, case .object(let fields) = value else {
                guard case .object(var fields) = value else { return value }
                fields.append(("examples", .array(models.map(JSONValue.string))))
                return .object(fields)
            }
            return .object(fields.map { $0.0 == key ? ($0.0, edit($0.1, path.dropFirst())) : $0 })
        }
        var document = Self.document
        for schema in ["ChatCompletionRequest", "CompletionRequest", "EmbeddingRequest"] {
            document = edit(document, ["components", "schemas", schema, "properties", "model"])
        }
        return document.serialized()
    }

    static let yaml = """
        openapi: 3.1.0
        info:
          title: Switchyard
          version: "1"
          description: >-
            SLO-aware OpenAI-compatible gateway. The /v1 endpoints follow OpenAI's API; with tenants configured they need
            `Authorization: Bearer <key>`. /admin needs the admin token and, with server.tls.client_ca, a client certificate.
            Every error is OpenAI's error object.
        servers:
          - url: /
        security:
          - {}
          - apiKey: []
        tags:
          - { name: openai, description: "OpenAI-compatible inference, proxied to the model pools through the lanes" }
          - { name: batch, description: "OpenAI's Files and Batches APIs on the durable store" }
          - { name: operations, description: "Health, readiness, metrics, this document" }
          - { name: admin, description: "Backends, rollout, configuration (token and/or client certificate)" }
        paths:
          /v1/chat/completions:
            post:
              operationId: createChatCompletion
              tags: [openai]
              parameters: [{ $ref: "#/components/parameters/Lane" }, { $ref: "#/components/parameters/TimeoutMs" }]
              requestBody: { required: true, content: { application/json: { schema: { $ref: "#/components/schemas/ChatCompletionRequest" } } } }
              responses:
                "200": { $ref: "#/components/responses/Completion" }
                default: { $ref: "#/components/responses/Error" }
          /v1/completions:
            post:
              operationId: createCompletion
              tags: [openai]
              parameters: [{ $ref: "#/components/parameters/Lane" }, { $ref: "#/components/parameters/TimeoutMs" }]
              requestBody: { required: true, content: { application/json: { schema: { $ref: "#/components/schemas/CompletionRequest" } } } }
              responses:
                "200": { $ref: "#/components/responses/Completion" }
                default: { $ref: "#/components/responses/Error" }
          /v1/embeddings:
            post:
              operationId: createEmbedding
              tags: [openai]
              parameters: [{ $ref: "#/components/parameters/Lane" }, { $ref: "#/components/parameters/TimeoutMs" }]
              requestBody: { required: true, content: { application/json: { schema: { $ref: "#/components/schemas/EmbeddingRequest" } } } }
              responses:
                "200": { description: Embeddings, content: { application/json: { schema: { $ref: "#/components/schemas/ListObject" } } } }
                default: { $ref: "#/components/responses/Error" }
          /v1/models:
            get:
              operationId: listModels
              tags: [openai]
              responses:
                "200": { description: The model pools served, content: { application/json: { schema: { $ref: "#/components/schemas/ModelList" } } } }
                default: { $ref: "#/components/responses/Error" }
          /v1/files:
            post:
              operationId: uploadFile
              tags: [batch]
              requestBody:
                required: true
                content:
                  multipart/form-data:
                    schema:
                      type: object
                      required: [file, purpose]
                      properties:
                        file: { type: string, format: binary, description: "JSONL, one request per line" }
                        purpose: { type: string, enum: [batch] }
              responses:
                "200":
                  description: The stored file
                  content: { application/json: { schema: { $ref: "#/components/schemas/File" } } }
                  links:
                    retrieve: { operationId: retrieveFile, parameters: { id: "$response.body#/id" } }
                    download: { operationId: downloadFile, parameters: { id: "$response.body#/id" } }
                    delete: { operationId: deleteFile, parameters: { id: "$response.body#/id" } }
                    batch: { operationId: createBatch, requestBody: { input_file_id: "$response.body#/id", endpoint: /v1/chat/completions } }
                default: { $ref: "#/components/responses/Error" }
            get:
              operationId: listFiles
              tags: [batch]
              responses:
                "200": { description: The tenant's files, content: { application/json: { schema: { $ref: "#/components/schemas/ListObject" } } } }
                default: { $ref: "#/components/responses/Error" }
          /v1/files/{id}:
            parameters: [{ $ref: "#/components/parameters/Id" }]
            get:
              operationId: retrieveFile
              tags: [batch]
              responses:
                "200": { description: The file, content: { application/json: { schema: { $ref: "#/components/schemas/File" } } } }
                default: { $ref: "#/components/responses/Error" }
            delete:
              operationId: deleteFile
              tags: [batch]
              responses:
                "200": { description: Deleted, content: { application/json: { schema: { $ref: "#/components/schemas/Deleted" } } } }
                default: { $ref: "#/components/responses/Error" }
          /v1/files/{id}/content:
            parameters: [{ $ref: "#/components/parameters/Id" }]
            get:
              operationId: downloadFile
              tags: [batch]
              responses:
                "200": { description: The file's bytes, content: { application/jsonl: { schema: { type: string } } } }
                default: { $ref: "#/components/responses/Error" }
          /v1/batches:
            post:
              operationId: createBatch
              tags: [batch]
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      type: object
                      required: [input_file_id, endpoint]
                      properties:
                        input_file_id: { type: string }
                        endpoint: { type: string, enum: [/v1/chat/completions, /v1/completions, /v1/embeddings] }
                        completion_window: { type: string, examples: [24h] }
                        metadata: { type: [object, "null"], additionalProperties: { type: string } }
              responses:
                "200":
                  description: The batch
                  content: { application/json: { schema: { $ref: "#/components/schemas/Batch" } } }
                  links:
                    retrieve: { operationId: retrieveBatch, parameters: { id: "$response.body#/id" } }
                    cancel: { operationId: cancelBatch, parameters: { id: "$response.body#/id" } }
                default: { $ref: "#/components/responses/Error" }
            get:
              operationId: listBatches
              tags: [batch]
              parameters:
                - { name: after, in: query, schema: { type: string } }
                - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 100 } }
              responses:
                "200": { description: The tenant's batches, content: { application/json: { schema: { $ref: "#/components/schemas/ListObject" } } } }
                default: { $ref: "#/components/responses/Error" }
          /v1/batches/{id}:
            parameters: [{ $ref: "#/components/parameters/Id" }]
            get:
              operationId: retrieveBatch
              tags: [batch]
              responses:
                "200": { description: The batch, content: { application/json: { schema: { $ref: "#/components/schemas/Batch" } } } }
                default: { $ref: "#/components/responses/Error" }
          /v1/batches/{id}/cancel:
            parameters: [{ $ref: "#/components/parameters/Id" }]
            post:
              operationId: cancelBatch
              tags: [batch]
              responses:
                "200": { description: "The batch, cancelling", content: { application/json: { schema: { $ref: "#/components/schemas/Batch" } } } }
                default: { $ref: "#/components/responses/Error" }
          /healthz:
            get:
              operationId: health
              tags: [operations]
              security: [{}]
              responses:
                "200": { description: The process is up, content: { application/json: { schema: { $ref: "#/components/schemas/Status" } } } }
          /readyz:
            get:
              operationId: readiness
              tags: [operations]
              security: [{}]
              responses:
                "200": { description: Ready, content: { application/json: { schema: { $ref: "#/components/schemas/Readiness" } } } }
                "503": { description: "Not ready, or draining", content: { application/json: { schema: { $ref: "#/components/schemas/Readiness" } } } }
          /metrics:
            get:
              operationId: metrics
              tags: [operations]
              security: [{}]
              responses:
                "200": { description: Prometheus text format 0.0.4, content: { text/plain: { schema: { type: string } } } }
          /openapi.json:
            get:
              operationId: openapi
              tags: [operations]
              security: [{}]
              responses:
                "200": { description: This document, content: { application/json: { schema: { type: object } } } }
          /admin/backends:
            get:
              operationId: adminBackends
              tags: [admin]
              security: [{ adminToken: [] }, { clientCertificate: [] }]
              responses:
                "200": { description: Every backend and its state, content: { application/json: { schema: { $ref: "#/components/schemas/Object" } } } }
                default: { $ref: "#/components/responses/Error" }
            post:
              operationId: registerBackend
              tags: [admin]
              security: [{ adminToken: [] }, { clientCertificate: [] }]
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      type: object
                      required: [url, model]
                      properties:
                        url: { type: string, format: uri }
                        model: { type: string }
                        ttl: { type: [number, string], description: "seconds, or a duration such as 30s" }
                        max_inflight: { type: integer, minimum: 1 }
                        upstream_model: { type: string }
                        weight: { type: number, exclusiveMinimum: 0 }
              responses:
                "200": { description: A heartbeat of a registered backend, content: { application/json: { schema: { $ref: "#/components/schemas/Object" } } } }
                "201": { description: Registered, content: { application/json: { schema: { $ref: "#/components/schemas/Object" } } } }
                default: { $ref: "#/components/responses/Error" }
          /admin/describe:
            get:
              operationId: adminDescribe
              tags: [admin]
              security: [{ adminToken: [] }, { clientCertificate: [] }]
              parameters:
                - { name: format, in: query, required: false, schema: { type: string, enum: [mermaid, svg, html, json] } }
              responses:
                "200":
                  description: The serving path (listener, lanes, pools, live replicas, fallbacks, telemetry)
                  content:
                    text/plain: { schema: { type: string } }
                    image/svg+xml: { schema: { type: string } }
                    text/html: { schema: { type: string } }
                    application/json: { schema: { $ref: "#/components/schemas/Object" } }
                default: { $ref: "#/components/responses/Error" }
          /admin/backends/{id}:
            parameters: [{ $ref: "#/components/parameters/Id" }]
            delete:
              operationId: deregisterBackend
              tags: [admin]
              security: [{ adminToken: [] }, { clientCertificate: [] }]
              responses:
                "200": { description: "Drained, then removed", content: { application/json: { schema: { $ref: "#/components/schemas/Object" } } } }
                default: { $ref: "#/components/responses/Error" }
          /admin/backends/{id}/drain:
            parameters: [{ $ref: "#/components/parameters/Id" }]
            post:
              operationId: drainBackend
              tags: [admin]
              security: [{ adminToken: [] }, { clientCertificate: [] }]
              parameters: [{ name: stop, in: query, schema: { type: string, enum: ["true", "false"] } }]
              responses:
                "200": { description: Drained, content: { application/json: { schema: { $ref: "#/components/schemas/Object" } } } }
                default: { $ref: "#/components/responses/Error" }
          /admin/backends/{id}/resume:
            parameters: [{ $ref: "#/components/parameters/Id" }]
            post:
              operationId: resumeBackend
              tags: [admin]
              security: [{ adminToken: [] }, { clientCertificate: [] }]
              responses:
                "200": { description: Resumed, content: { application/json: { schema: { $ref: "#/components/schemas/Object" } } } }
                default: { $ref: "#/components/responses/Error" }
          /admin/rollout:
            post:
              operationId: rollout
              tags: [admin]
              security: [{ adminToken: [] }, { clientCertificate: [] }]
              responses:
                "200": { description: Every managed replica restarted in turn, content: { application/json: { schema: { $ref: "#/components/schemas/Object" } } } }
                default: { $ref: "#/components/responses/Error" }
          /admin/config:
            get:
              operationId: adminConfig
              tags: [admin]
              security: [{ adminToken: [] }, { clientCertificate: [] }]
              responses:
                "200": { description: The configuration in force, content: { application/json: { schema: { $ref: "#/components/schemas/ConfigInForce" } } } }
                default: { $ref: "#/components/responses/Error" }
            post:
              operationId: reloadConfig
              tags: [admin]
              security: [{ adminToken: [] }, { clientCertificate: [] }]
              requestBody: { required: true, content: { application/yaml: { schema: { type: string } } } }
              responses:
                "200": { description: Applied (or unchanged), content: { application/json: { schema: { $ref: "#/components/schemas/ReloadOutcome" } } } }
                default: { $ref: "#/components/responses/Error" }
          /admin/config/rollback:
            post:
              operationId: rollbackConfig
              tags: [admin]
              security: [{ adminToken: [] }, { clientCertificate: [] }]
              responses:
                "200": { description: Back to the previous configuration, content: { application/json: { schema: { $ref: "#/components/schemas/ReloadOutcome" } } } }
                default: { $ref: "#/components/responses/Error" }
        components:
          securitySchemes:
            apiKey: { type: http, scheme: bearer, description: "A tenant's key (switchyard keys create); needed when tenants are configured" }
            adminToken: { type: http, scheme: bearer, description: admin.token }
            clientCertificate: { type: mutualTLS, description: "A certificate from server.tls.client_ca (admin.client_certificate)" }
          parameters:
            Id: { name: id, in: path, required: true, schema: { type: string } }
            Lane: { name: x-switchyard-lane, in: header, schema: { type: string }, description: "realtime, streaming, batch or a configured lane" }
            TimeoutMs: { name: x-switchyard-timeout-ms, in: header, schema: { type: string }, description: "Shortens the lane's deadline (milliseconds)" }
          responses:
            Error:
              description: OpenAI's error object
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            Completion:
              description: The completion; with "stream" true, server-sent events ending with data [DONE]
              content:
                application/json: { schema: { $ref: "#/components/schemas/Completion" } }
                text/event-stream:
                  schema:
                    description: "One server-sent event: data is a JSON chunk, an error object, or [DONE]"
                    type: object
                    properties: { data: { type: string }, event: { type: string }, id: { type: string } }
          schemas:
            Error:
              type: object
              required: [error]
              properties:
                error:
                  type: object
                  required: [message, type]
                  properties:
                    message: { type: string }
                    type: { type: string }
                    param: { type: [string, "null"] }
                    code: { type: [string, "null"] }
            Message:
              type: object
              required: [role]
              properties:
                role: { type: string }
                content: { type: [string, array, "null"] }
            ChatCompletionRequest:
              type: object
              required: [model, messages]
              properties:
                model: { type: string }
                messages: { type: array, items: { $ref: "#/components/schemas/Message" } }
                stream: { type: boolean }
                max_tokens: { type: integer }
                max_completion_tokens: { type: integer }
                stream_options: { type: object, properties: { include_usage: { type: boolean } } }
            CompletionRequest:
              type: object
              required: [model, prompt]
              properties:
                model: { type: string }
                prompt: { type: [string, array] }
                stream: { type: boolean }
                max_tokens: { type: integer }
            EmbeddingRequest:
              type: object
              required: [model, input]
              properties:
                model: { type: string }
                input: { type: [string, array] }
            Completion:
              type: object
              required: [object, choices]
              properties:
                id: { type: string }
                object: { type: string }
                model: { type: string }
                choices: { type: array }
                usage: { type: [object, "null"] }
            ListObject:
              type: object
              required: [object, data]
              properties:
                object: { const: list }
                data: { type: array }
            ModelList:
              type: object
              required: [object, data]
              properties:
                object: { const: list }
                data:
                  type: array
                  items:
                    type: object
                    required: [id, object, owned_by]
                    properties: { id: { type: string }, object: { const: model }, created: { type: integer }, owned_by: { type: string } }
            File:
              type: object
              required: [id, object, bytes, created_at, filename, purpose]
              properties:
                id: { type: string }
                object: { const: file }
                bytes: { type: integer }
                created_at: { type: integer }
                filename: { type: string }
                purpose: { type: string }
                status: { type: string }
            Deleted:
              type: object
              required: [id, object, deleted]
              properties: { id: { type: string }, object: { type: string }, deleted: { type: boolean } }
            Batch:
              type: object
              required: [id, object, endpoint, input_file_id, completion_window, status, created_at, request_counts]
              properties:
                id: { type: string }
                object: { const: batch }
                endpoint: { type: string }
                input_file_id: { type: string }
                completion_window: { type: string }
                status: { type: string, enum: [validating, failed, in_progress, finalizing, completed, expired, cancelling, cancelled] }
                output_file_id: { type: [string, "null"] }
                error_file_id: { type: [string, "null"] }
                created_at: { type: integer }
                request_counts:
                  type: object
                  required: [total, completed, failed]
                  properties: { total: { type: integer }, completed: { type: integer }, failed: { type: integer } }
            Status:
              type: object
              required: [status]
              properties: { status: { type: string } }
            Readiness:
              type: object
              required: [status, models]
              properties:
                status: { type: string, enum: [ready, not_ready, draining] }
                models: { type: object }
            ConfigInForce:
              type: object
              required: [hash, origin, loaded_at, yaml]
              properties:
                hash: { type: string }
                origin: { type: string }
                loaded_at: { type: integer }
                file: { type: [string, "null"] }
                previous_hash: { type: [string, "null"] }
                yaml: { type: string }
            ReloadOutcome:
              type: object
              required: [result, hash, changes]
              properties:
                result: { type: string, enum: [applied, unchanged] }
                hash: { type: string }
                changes: { type: array, items: { type: string } }
            Object: { type: object }
        """
}
