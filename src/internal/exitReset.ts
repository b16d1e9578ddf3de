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

/** The open sockets of every listener of this process, each listener's own set, with its transport. */
const tracked = new Map<ReadonlySet<Transport.Socket>, Transport.Transport>()

/** Resets the sockets of the tracked sets `which` picks, as {@link resetAll} says. */
const reset = (which: (transport: Transport.Transport) => boolean): number => {
  let open = 0
  for (const [sockets, transport] of tracked) {
    if (!which(transport)) continue
    for (const socket of sockets) {
      if (socket.destroyed) continue
      open++
      Socket.close(socket, "reset")
    }
  }
  return open
}

/**
 * Resets every tracked socket whose answer is not whole (`Socket.close`'s `"reset"`: one whose
 * FIN is handed to the kernel after all its bytes is closed normally). Returns how many sockets
 * were still open.
 *
 * @internal
 */
export const resetAll = (): number => reset(() => true)

/**
 * The same reset, of the listeners on `transport` only: the test kit's forced stop of the one
 * server it runs (on a transport of its own), in a process that goes on with others.
 *
 * @internal
 */
export const resetOn = (transport: Transport.Transport): number => reset((on) => on === transport)

let installed = false

/**
 * Tracks `sockets` (a listener's set of accepted sockets still open, on `transport`) for as long
 * as the scope lasts: if the process exits meanwhile, they are reset as {@link resetAll} says.
 *
 * @internal
 */
export const track = (
  sockets: ReadonlySet<Transport.Socket>,
  transport: Transport.Transport
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      tracked.set(sockets, transport)
      if (installed) return
      installed = true
      process.on("exit", resetAll)
    }),
    // Stryker disable next-line ArrowFunction: equivalent (the listener's release empties its set first: forgetting it frees memory only)
    () => Effect.sync(() => tracked.delete(sockets))
  )
