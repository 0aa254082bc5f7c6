import HTTPTypes
import NIOCore
import NIOHTTPTypes
import SlipwayCore
import Synchronization

/// Counts the webhook listener's open connections, shared by every connection's handler.
public final class ConnectionGate: Sendable {
    public let limit: Int
    private let open = Mutex(0)

    public init(limit: Int) { self.limit = limit }

    /// Takes a slot; false when `limit` connections are already open.
    func enter() -> Bool {
        open.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() { open.withLock { $0 -= 1 } }
}

/// Defends the listener against slow and idle clients (slowloris).
///
/// A request — headers and body — must arrive in full within `readTimeout` of the connection
/// opening or of the previous response (or, pipelined, of its first line); otherwise the
/// connection is closed. The clock is stopped while a request is being answered. The idle timeout
/// alone only cuts a connection that sends *nothing* for a minute; a client that trickles a
/// byte every few seconds would hold its slot forever. Connections beyond the gate's limit are
/// closed as soon as they open, so hostile clients cannot exhaust file descriptors or memory.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let readTimeout: TimeAmount
    private let gate: ConnectionGate
    private var deadline: Scheduled<Void>?
    private var admitted = false
    private var started = false
    /// Requests read in full whose response has not ended yet. While one is being answered the
    /// clock is stopped: a slow commit must not cut a client that did everything right.
    private var answering = 0

    init(readTimeout: TimeAmount, gate: ConnectionGate) {
        self.readTimeout = readTimeout
        self.gate = gate
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        guard gate.enter() else {
            SlipwayMetrics.connectionCut(reason: "limit")
            context.close(promise: nil)
            return
        }
        admitted = true
        arm(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) { release() }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    /// Stops the clock and gives the connection's slot back (once, whichever comes first).
    private func release() {
        disarm()
        if admitted {
            admitted = false
            gate.leave()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            // A pipelined request arriving while an earlier one is answered gets its own deadline.
            if deadline == nil { arm(context: context) }
        case .body:
            break
        case .end:
            answering += 1
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            answering = max(0, answering - 1)
            // Waiting for the next request: it must arrive in full within the read timeout.
            if answering == 0, context.channel.isActive { arm(context: context) }
        }
        context.write(data, promise: promise)
    }

    private func arm(context: ChannelHandlerContext) {
        disarm()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: readTimeout) {
            SlipwayMetrics.connectionCut(reason: "read_timeout")
            channel.close(promise: nil)
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}
