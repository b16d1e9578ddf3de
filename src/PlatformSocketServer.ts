/**
 * This server as `@effect/platform`'s own `SocketServer.SocketServer` service, and a
 * `Connection` seen as a `Socket.Socket`. Code written against the platform's socket API
 * (`SocketServer.run(handler)`, `socket.run`, `socket.writer`, `@effect/rpc`'s socket protocol)
 * runs unchanged on this server, and gets its backpressure, connection limits, idle timeout and
 * hard shutdown deadline.
 *
 * Where the platform's semantics and this server's differ, this module takes the server's side:
 * - `socket.run(handler)` calls `handler` once per chunk, in order, and reads the next chunk only
 *   after the effect the handler returned for the previous one has completed (the platform's
 *   Node socket forks every such effect at once, with no bound). Meanwhile the connection reads
 *   ahead at most its `highWaterMark` (64 KiB by default), then stops reading, and the kernel
 *   closes the window on the peer. A handler whose effect waits for a later chunk of the same
 *   socket therefore waits forever: hand that work to a fiber of its own.
 * - `socket.run` returns at the peer's half-close, as the platform's does, and also when the
 *   server begins to shut down (between two chunks): the handler then ends, and the server
 *   completes the connection (its FIN after everything written, then the peer's, within the
 *   shutdown deadline), instead of cutting it off at the deadline.
 * - A handler's failure is this server's to judge (logged, counted, the connection reset), not
 *   logged at `unhandledErrorLogLevel` only. A failure that is the connection's own end (the peer
 *   reset it, left, idled out), even when a handler turned it into a defect (`Effect.orDie`, as
 *   `@effect/rpc` does), is counted as that end.
 * - Shutting down is releasing the layer (or the scope of {@link make}): interrupting
 *   `SocketServer.run` only stops handing new connections to that handler.
 *
 * One thing layers alone cannot give: a layer built on {@link layer} (`RpcServer.layer`) is
 * released before it, and `RpcServer`'s release waits, uninterruptibly, for every response it is
 * writing. A large response to a peer that stopped reading holds it before this server's
 * shutdown has begun, for as long as the peer does not read.
 * {@link serve} builds such a layer on this server and releases both at once, so that the
 * deadline bounds that wait too; with {@link layer}, `idleTimeout` bounds it (keep it above
 * `RpcClient`'s 10 s ping).
 *
 * On Effect 4 the same names serve `effect/socket`'s `SocketServer`, whose socket is pulled
 * (`socket.reader`'s `pull`) instead of pushed, with the same guarantees: a pull gives the buffers
 * read, in order, and the connection reads ahead at most its `highWaterMark` of what nobody
 * pulled. Every end of a pull is a `SocketError`: the peer's half-close and the server's shutdown
 * (between two pulls) are a `SocketCloseError` with code 1000, a close the handler wrote fails the
 * next pull with its code, closing the reader's scope fails a waiting pull (1006), and the
 * connection's errors are `SocketReadError` or `SocketWriteError` with the `ConnectionError` as
 * cause. A handler that lets such a close through ended normally.
 *
 * @since 0.1.0
 */
export * from "#line/PlatformSocketServer"

/**
 * This module as a namespace, the shape the root entry point gives it:
 * `import { PlatformSocketServer } from "effect-tcp-echo/PlatformSocketServer"`, as well as
 * `import * as PlatformSocketServer from "effect-tcp-echo/PlatformSocketServer"`.
 *
 * @since 0.1.0
 */
export * as PlatformSocketServer from "./PlatformSocketServer.js"
