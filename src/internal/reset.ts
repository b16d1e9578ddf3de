/**
 * Closing a socket with RST (`SO_LINGER` 0), where the kernel allows it.
 *
 * @internal
 */
import type * as net from "node:net"

/**
 * Resets `socket`, or closes it normally when a reset is impossible: after our FIN libuv refuses
 * the reset (EINVAL) and Node 20 then keeps the handle open. Idempotent.
 *
 * @internal
 */
export const resetSocket = (socket: net.Socket): void => {
  if (socket.destroyed) return
  if (socket.writableEnded) socket.destroy()
  else socket.resetAndDestroy()
}
