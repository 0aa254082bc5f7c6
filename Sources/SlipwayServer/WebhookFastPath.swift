import HTTPTypes
import NIOCore
import NIOHTTPTypes
import SlipwayCore
import Synchronization

/// `POST /webhooks/github` answered on the connection's event loop, without a Swift task per
/// request: the body is collected here, checked (size, in-flight budget, signature, JSON) with
/// the same `WebhookController` decisions as the router's route, handed to the event log's group
/// commit, and the commit's completion (on the writer thread) hands the result back to this event
/// loop, which makes and writes the answer: one wake-up per request instead of three hops (event
/// loop → handler task → writer thread → task → event loop). Every other request passes through
/// to Hummingbird.
///
/// Pipelined requests keep their order: while a request is being answered (here or by
/// Hummingbird), the parts of the next ones wait in `queue` and no more is read from the socket.
final class WebhookFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let path = "/webhooks/github"

    private enum State {
        /// Between requests.
        case idle
        /// Collecting a webhook's body.
        case receiving(head: HTTPRequest, body: ByteBuffer, reserved: Int, intake: WebhookIntake)
        /// The webhook is being appended; the answer follows.
        case answering
        /// Answered early (413, 503) with `Connection: close`: the rest is dropped.
        case discarding
        /// Another request, passed to Hummingbird; `answered` once its response has ended.
        case passing(answered: Bool)
        /// A passed request read in full, its response not ended yet.
        case awaitingResponse
    }

    private let controller: WebhookController
    private var state = State.idle
    /// Parts of pipelined requests that arrived while an earlier one was being answered.
    private var queue = CircularBuffer<HTTPRequestPart>()
    private var readPending = false
    /// This connection's webhook request is counted in `controller.requestsInProgress`.
    private var counted = false

    init(controller: WebhookController) {
        self.controller = controller
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch state {
        case .answering, .awaitingResponse:
            queue.append(part)
        case .idle where !queue.isEmpty:
            queue.append(part)
        default:
            _ = handle(part, context: context)
        }
    }

    /// Handles one part in the current state; true when it was passed on to Hummingbird.
    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) -> Bool {
        switch (state, part) {
        case (.idle, .head(let head)) where head.method == .post && Self.isWebhookPath(head.path):
            if !counted {
                controller.requestsInProgress.add(1, ordering: .relaxed)
                counted = true
            }
            let intake = controller.currentIntake
            let declared = head.headerFields[.contentLength].flatMap { Int($0) }
            let (refused, reserved) = controller.admit(declaredLength: declared, intake: intake, peer: Self.peer(context))
            if let refused {
                state = .discarding
                write(refused, context: context)
                return false
            }
            let capacity = min(declared ?? 4096, intake.maxBodyBytes)
            state = .receiving(head: head, body: context.channel.allocator.buffer(capacity: capacity), reserved: reserved, intake: intake)
            return false
        case (.idle, .head):
            state = .passing(answered: false)
            context.fireChannelRead(wrapInboundOut(part))
            return true
        case (.receiving(let head, var body, var reserved, let intake), .body(var chunk)):
            if let refused = controller.grow(
                to: body.readableBytes + chunk.readableBytes, reserved: &reserved, intake: intake, peer: Self.peer(context))
            {
                controller.release(reserved)
                state = .discarding
                write(refused, context: context)
                return false
            }
            state = .answering  // no copy-on-write of `body` while it grows
            body.writeBuffer(&chunk)
            state = .receiving(head: head, body: body, reserved: reserved, intake: intake)
            return false
        case (.receiving(let head, let body, let reserved, let intake), .end):
            state = .answering
            receive(head: head, body: body, reserved: reserved, intake: intake, context: context)
            return false
        case (.passing(let answered), .end):
            state = answered ? .idle : .awaitingResponse
            context.fireChannelRead(wrapInboundOut(part))
            return true
        case (.passing, _), (.idle, _), (.receiving, .head):
            context.fireChannelRead(wrapInboundOut(part))
            return true
        case (.discarding, .end):
            state = .idle
            return false
        case (.discarding, _):
            return false  // answered early and closing: the rest of the body is dropped, not kept
        case (.answering, _), (.awaitingResponse, _):
            queue.append(part)  // not reached: channelRead queues in these states
            return false
        }
    }

    /// Hummingbird's answers pass here: the end of one lets the next pipelined request in.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        guard case .end = unwrapOutboundIn(data) else { return }
        switch state {
        case .awaitingResponse:
            state = .idle
            drain(context: context)
        case .passing:
            state = .passing(answered: true)
        default:
            break
        }
    }

    /// Backpressure: while requests wait, nothing more is read from the socket.
    func read(context: ChannelHandlerContext) {
        if queue.isEmpty {
            context.read()
        } else {
            readPending = true
        }
    }

    /// Handles queued parts until a request is being answered again.
    private func drain(context: ChannelHandlerContext) {
        var passed = false
        while !queue.isEmpty {
            switch state {
            case .answering, .awaitingResponse: break
            default:
                if handle(queue.removeFirst(), context: context) { passed = true }
                continue
            }
            break
        }
        // Parts handed on outside a socket read: NIOAsyncChannel delivers its buffer on read-complete.
        if passed { context.fireChannelReadComplete() }
        if queue.isEmpty && readPending {
            readPending = false
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A client gone mid-body gives its reservation of the in-flight budget back.
        if case .receiving(_, _, let reserved, _) = state { controller.release(reserved) }
        uncount()
        state = .idle
        queue.removeAll()
        context.fireChannelInactive()
    }

    private func receive(head: HTTPRequest, body: ByteBuffer, reserved: Int, intake: WebhookIntake, context: ChannelHandlerContext) {
        let controller = self.controller
        let headers = head.headerFields.map { (name: $0.name.canonicalName, value: $0.value) }
        let closeAfter = head.headerFields[.connection]?.lowercased() == "close"
        switch intake.inspect(headers: headers, body: Array(body.readableBytesView)) {
        case .failure(let rejection):
            controller.release(reserved)
            var answer = controller.reject(rejection, peer: Self.peer(context), close: false)
            answer.close = answer.close || closeAfter
            write(answer, context: context)
        case .success(let accepted):
            let start = ContinuousClock.now
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            // The completion runs on the writer thread, which commits for every connection: it only
            // hands the result back; the answer (metrics, JSON) is made on this loop. When this is
            // the only request in progress and the writer is idle, this loop commits it itself and
            // the completion runs here, before `append` returns.
            controller.log.append(accepted.delivery, stored: controller.stored, inlineWhenIdle: controller.aloneInProgress) { result in
                controller.release(reserved)
                let committed = ContinuousClock.now
                loop.execute {
                    var answer = controller.answer(result, accepted: accepted, since: start, committed: committed)
                    answer.close = answer.close || closeAfter
                    let (handler, context) = bound.value
                    handler.write(answer, context: context)
                }
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        uncount()
    }

    /// The webhook request of this connection is answered (or gone).
    private func uncount() {
        if counted {
            controller.requestsInProgress.subtract(1, ordering: .relaxed)
            counted = false
        }
    }

    private func write(_ answer: WebhookController.Answer, context: ChannelHandlerContext) {
        uncount()
        let wasAnswering: Bool
        if case .answering = state {
            state = .idle
            wasAnswering = true
        } else {
            wasAnswering = false
        }
        let body = context.channel.allocator.buffer(string: answer.json)
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.contentLength] = "\(body.readableBytes)"
        if answer.close { fields[.connection] = "close" }
        if answer.retryAfter { fields[.retryAfter] = "1" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: answer.status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if wasAnswering { drain(context: context) }
    }

    static func isWebhookPath(_ path: String?) -> Bool {
        guard let path else { return false }
        guard path.hasPrefix(Self.path) else { return false }
        let rest = path.utf8.dropFirst(Self.path.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "?")
    }

    static func peer(_ context: ChannelHandlerContext) -> String { SocketAddress.peer(context.channel.remoteAddress) }
}
