/**
 * How a connection ended, decided in one pure function: from the cause a handler ended with (or
 * the reason the server cut it off) to the reason it is counted under, the level it is logged at,
 * and how its socket is closed. The lifecycle applies the verdict; nothing here has effects.
 */
import * as Causes from "#line/cause"
import type { Cause } from "effect"
import { ConnectionError } from "../Connection.js"
import type { Connection } from "../Connection.js"
import * as Metrics from "../Metrics.js"
import { raisedBy } from "./connection.js"
import type { Level } from "./level.js"

// Not marked internal: `Server.PeerFault` is this symbol and this type, and the published declarations
// must keep them.

/** The key under which an error names the reason it is the peer's fault. */
export const PeerFault: unique symbol = Symbol.for("effect-tcp-echo/Server/PeerFault")

/** An error that is the peer's doing, with the reason it is counted under. */
export interface PeerFault {
  readonly [PeerFault]: string
}

/** The reasons the server counts connections under itself: a peer fault may not pass for one. */
const ownReasons: ReadonlySet<string> = new Set(Metrics.errorReasons)

/** @internal */
export const isPeerFault = (u: unknown): u is PeerFault => {
  const reason = typeof u === "object" && u !== null && PeerFault in u ? (u as PeerFault)[PeerFault] : undefined
  return typeof reason === "string" && reason !== "" && !ownReasons.has(reason)
}

/**
 * What is left to do with the socket:
 * - `complete`: the answer is whole: half-close after what was written, read to the peer's FIN
 *   (for a while), then close;
 * - `close`: close now, with a FIN unless bytes are unsent (the connection is gone or idle);
 * - `reset`: the answer was cut off: RST, so the peer cannot mistake it for a complete one.
 *
 * @internal
 */
export type Release = "complete" | "close" | "reset"

/**
 * The verdict on one connection.
 *
 * @internal
 */
export interface Verdict {
  /** The reason counted in `echo_connection_errors_total`; `undefined` for a normal end. */
  readonly reason: string | undefined
  /** The reason counted in `echo_connections_dropped_total` instead: refused before it was served. */
  readonly dropped: string | undefined
  /** Whether it also counts in `echo_connections_reset_total` (the peer reset it). */
  readonly peerReset: boolean
  /** `None`: nothing is logged for this connection on its own. */
  readonly level: Level
  readonly message: string
  /** Logged with the message: what a bug report needs. */
  readonly cause: Cause.Cause<unknown> | undefined
  readonly release: Release
}

/** @internal */
export const normal: Verdict = {
  reason: undefined,
  dropped: undefined,
  peerReset: false,
  level: "None",
  message: "",
  cause: undefined,
  release: "complete"
}

const verdict = (
  reason: string,
  level: Level,
  message: string,
  release: Release,
  cause?: Cause.Cause<unknown>
): Verdict => ({ reason, dropped: undefined, peerReset: reason === "Reset", level, message, cause, release })

/**
 * A connection refused before it was served (its PROXY protocol header did not come, or not
 * whole, in time): counted as dropped under `refusal`, logged at warning, reset.
 *
 * @internal
 */
export const refused = (refusal: string, peer: string, why: string): Verdict => ({
  reason: undefined,
  dropped: refusal,
  peerReset: false,
  level: "Warning",
  message: `refused connection from ${peer}: ${why}`,
  cause: undefined,
  release: "reset"
})

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

/**
 * Why the server itself ended a connection whose handler had not: the idle timeout (nothing moved
 * for that long) or the shutdown deadline (one record for all of them, which the shutdown writes).
 * Either way the answer was cut off: a reset.
 *
 * @internal
 */
export type Cut = "Timeout" | "ShutdownDeadline"

/** @internal */
export const cut = (reason: Cut, peer: string): Verdict =>
  reason === "Timeout"
    ? verdict("Timeout", "Info", `${peer} timed out (idle)`, "reset")
    : verdict("ShutdownDeadline", "None", "", "reset")

/**
 * The verdict on a handler that ended with `cause`, in this order:
 * 1. any defect, whatever else the cause holds: a bug (`Defect`), reset;
 * 2. any failure that is neither a `ConnectionError` nor a peer fault: the handler's own error
 *    (`HandlerError`), reset;
 * 3. a peer fault: the peer's doing, under the reason it names, at info, completed normally so
 *    that what the handler said in-band arrives;
 * 4. a `ConnectionError` of this connection: it ended under the handler (the peer reset, left,
 *    idled): under its reason, at info (an `Unknown` one at warning), closed. One of another
 *    connection (an upstream a proxy talks to) is the handler's own failure, as in 2;
 * 5. interruption alone (the handler interrupted itself): `Interrupted`, reset.
 *
 * @internal
 */
export const classify = (cause: Cause.Cause<unknown>, connection: Connection): Verdict => {
  if (Causes.defects(cause).length > 0) return verdict("Defect", "Error", "handler died", "reset", cause)
  const failures = Causes.failures(cause)
  let peerFault: PeerFault | undefined
  let connectionError: ConnectionError | undefined
  for (const failure of failures) {
    if (isPeerFault(failure)) peerFault ??= failure
    else if (failure instanceof ConnectionError && raisedBy(failure) === connection) connectionError ??= failure
    else return verdict("HandlerError", "Error", "handler failed", "reset", cause)
  }
  if (peerFault !== undefined) return verdict(peerFault[PeerFault], "Info", messageOf(peerFault), "complete")
  if (connectionError !== undefined) {
    // The peer leaving or idling out is how connections end; only the unexplained is a warning.
    return connectionError.reason === "Unknown"
      ? verdict("Unknown", "Warning", connectionError.message, "close", cause)
      : verdict(connectionError.reason, "Info", connectionError.message, "close")
  }
  return Causes.isInterrupted(cause)
    ? verdict("Interrupted", "Info", `handler for ${connection.peer} was interrupted`, "reset")
    : verdict("HandlerError", "Error", "handler failed", "reset", cause)
}
