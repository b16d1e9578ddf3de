/**
 * The one decision of how a socket is closed: with a FIN (the answer is complete) or with a RST
 * (it is not, and the peer must be able to tell).
 */
import type { Socket } from "./transport.js"

/**
 * How to close:
 * - `"close"`: a FIN after everything written, when nothing written is still unsent in Node's
 *   buffer. `destroy()` would throw that buffer away and still send a FIN, so the peer would take
 *   a cut-off answer for a complete one: with bytes unsent, it is a reset instead.
 * - `"reset"`: a RST (`SO_LINGER` 0), which also drops what the kernel has not sent yet: for an
 *   answer cut off (a handler that failed, a shutdown deadline).
 *
 * @internal
 */
export type How = "close" | "reset"

/**
 * Closes `socket` as `how` says; idempotent. One exception to `"reset"`: once our FIN was handed
 * to libuv (`end()` called and Node's buffer empty), libuv refuses a reset (`EINVAL`) and Node 20
 * then keeps the handle open; every byte is in the kernel by then, ahead of the FIN, so the
 * answer the FIN ends is complete, and a normal close is right.
 *
 * @internal
 */
export const close = (socket: Socket, how: How): void => {
  if (socket.destroyed) return
  const unsent = socket.writableLength > 0
  if (unsent || (how === "reset" && !socket.writableEnded)) socket.resetAndDestroy()
  else socket.destroy()
}
