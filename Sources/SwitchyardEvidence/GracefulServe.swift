import Hummingbird
import ServiceLifecycle

extension ApplicationProtocol where Self: Service {
    /// Serves until the calling task is cancelled, then shuts the server down gracefully: the
    /// listener closes, requests in flight finish (for at most `grace`), and every connection the
    /// listener had accepted is still handed to a handler and closed.
    ///
    /// Cancelling `runService()` directly can drop a connection accepted but not yet handed on,
    /// and NIO traps on that ("Deinited NIOAsyncWriter without calling finish()",
    /// apple/swift-nio#2637) — it brought down a CI run when a health check arrived as a test
    /// server stopped.
    package func runUntilCancelled(grace: Duration = .seconds(3)) async throws {
        let services = ServiceGroup(configuration: .init(services: [self], logger: logger))
        let serving = Task { try await services.run() }
        try await withTaskCancellationHandler {
            try await serving.value
        } onCancel: {
            Task {
                await services.triggerGracefulShutdown()
                try? await Task.sleep(for: grace)
                serving.cancel()
            }
        }
    }
}
