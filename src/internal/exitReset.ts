/**
 * The last step of every way the process ends with connections open (a second signal, an
 * uncaught exception, `process.exit` from anywhere): each socket whose answer is not whole is
 * reset before the process is gone. Left to the kernel, it would be closed like any other: what
 * the kernel holds sent, then a FIN, while what Node still held for it is lost, and the peer
 * would take a cut-off answer for a complete one.
 *
 * Node emits `'exit'` for all of these, and runs its listeners synchronously before the process
 * ends; a reset there is synchronous too (`resetAndDestroy`: `SO_LINGER` 0, then libuv's
 * `uv_close` closes the descriptor at once, and the kernel sends the RST as it does). A process
 * killed outright (SIGKILL, an out-of-memory abort) runs nothing, and is beyond this.
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import * as Socket from "./socket.js"
import type * as Transport from "./transport.js"

/** The open sockets of every listener of this process, each listener's own set. */
const tracked = new Set<ReadonlySet<Transport.Socket>>()

/**
 * Resets every tracked socket whose answer is not whole (`Socket.close`'s `"reset"`: one whose
 * FIN is handed to the kernel after all its bytes is closed normally). Returns how many sockets
 * were still open.
 *
 * @internal
 */
export const resetAll = (): number => {
  let open = 0
  for (const sockets of tracked) {
    for (const socket of sockets) {
      if (socket.destroyed) continue
      open++
      Socket.close(socket, "reset")
    }
  }
  return open
}

let installed = false

/**
 * Tracks `sockets` (a listener's set of accepted sockets still open) for as long as the scope
 * lasts: if the process exits meanwhile, they are reset as {@link resetAll} says.
 *
 * @internal
 */
export const track = (sockets: ReadonlySet<Transport.Socket>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      tracked.add(sockets)
      if (installed) return
      installed = true
      process.on("exit", resetAll)
    }),
    // Stryker disable next-line ArrowFunction: equivalent (the listener's release empties its set first: forgetting it frees memory only)
    () => Effect.sync(() => tracked.delete(sockets))
  )
