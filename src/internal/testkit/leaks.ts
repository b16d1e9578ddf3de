/**
 * What a process holds (socket descriptors, Node's active handles by type), and the checks that
 * a run left none of it behind: the sockets, handles and timers it had before, and its port free.
 */
import { afterTheEvent, callback } from "#line/runtime"
import { decodeDuration, type DurationInput } from "#line/types"
import { Duration, Effect } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import type { Holdings } from "../../TestKit.js"

/**
 * Read once the event that woke the fiber is over: Node counts a timer as active until its
 * callback returns, and a fiber a sleep wakes may run inside that callback (on Effect 4), where
 * the sleep's own timer would count as held.
 *
 * @internal
 */
export const holdings = Effect.andThen(
  afterTheEvent(Effect.void),
  Effect.sync((): Holdings => {
    let sockets = 0
    try {
      for (const fd of fs.readdirSync("/proc/self/fd")) {
        try {
          if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")) sockets++
        } catch {
          // The descriptor closed while we looked: not held.
        }
      }
    } catch {
      sockets = -1 // no /proc: only handles are compared
    }
    const handles: Record<string, number> = {}
    for (const type of process.getActiveResourcesInfo()) handles[type] = (handles[type] ?? 0) + 1
    return { sockets, handles }
  })
)

/** @internal */
export const holdsMore = (now: Holdings, before: Holdings): boolean =>
  now.sockets > before.sockets ||
  ["TCPSocketWrap", "TCPServerWrap", "Timeout"].some((type) => (now.handles[type] ?? 0) > (before.handles[type] ?? 0))

/** @internal */
export const leakMessage = (before: Holdings, now: Holdings): string =>
  `leak: before ${JSON.stringify(before)}, after ${JSON.stringify(now)}`

/**
 * Polls (closing is asynchronous in Node) until `read` holds no more than `before`, at most
 * `within` on the current clock, then fails with both snapshots if it still does.
 *
 * @internal
 */
export const settleTo = (
  read: Effect.Effect<Holdings>,
  before: Holdings,
  within: DurationInput
): Effect.Effect<void, Error> =>
  Effect.gen(function*() {
    const polls = Math.max(1, Math.ceil(Duration.toMillis(decodeDuration(within)) / 10))
    let now = yield* read
    for (let i = 0; i < polls && holdsMore(now, before); i++) {
      yield* Effect.sleep("10 millis")
      now = yield* read
    }
    if (holdsMore(now, before)) return yield* Effect.fail(new Error(leakMessage(before, now)))
  })

/** @internal */
export const expectNoLeaks = (
  before: Holdings,
  within: DurationInput = "5 seconds"
): Effect.Effect<void, Error> => settleTo(holdings, before, within)

/** @internal */
export const expectPortFree = (port: number): Effect.Effect<void, Error> =>
  callback<void, Error>((resume) => {
    const probe = net.createServer()
    probe.once("error", (error) => resume(Effect.fail(new Error(`port ${port} is not free: ${error.message}`))))
    probe.listen({ host: "127.0.0.1", port }, () => probe.close(() => resume(Effect.void)))
  })
