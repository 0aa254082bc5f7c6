import Hummingbird
import Logging
import SlipwayCore

/// The web page's listener (`ui.listen`): a second Hummingbird application.
public enum UIServer {
    public static func router(controller: UIController) -> Router<SlipwayRequestContext> {
        let router = Router(context: SlipwayRequestContext.self)
        controller.addRoutes(to: router)
        return router
    }

    public static func application(controller: UIController, listen: SlipwayConfig.ListenAddress, logger: Logger) -> some ApplicationProtocol {
        Application(
            router: router(controller: controller),
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: nil, reuseAddress: true),
            onServerRunning: { channel in
                logger.notice("web page listening", metadata: ["ui.url": "http://\(listen.host):\(channel.localAddress?.port ?? listen.port)/"])
            },
            logger: logger)
    }
}
