import Hummingbird
import NIOCore

/// Request context that keeps the client's channel, so a request can notice its client leaving.
package struct GatewayContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    package let channel: any Channel

    package init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
