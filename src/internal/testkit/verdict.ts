/**
 * The verdict on what a peer received and how its connection ended, against the protocol's model
 * of a complete answer. Pure: the bytes, the facts about the peer, and the protocol's word go in,
 * a broken invariant (or none) comes out. The order of the checks is the order a reader would ask
 * them: was what arrived an answer at all; then, for a clean end, was it whole; for a reset, was
 * it the deadline's.
 */
import { Data } from "effect"
import type { Conversation, Protocol } from "../../TestKit.js"

/**
 * Which invariant a run broke.
 *
 * @since 0.1.0
 * @category errors
 */
export type ViolationReason =
  /** A peer received bytes that are no prefix of any answer the protocol allows. */
  | "NotAnAnswer"
  /** A clean end (FIN) after a partial answer: the one thing a peer cannot tell from a whole one. */
  | "CutOffThenFin"
  /** A connection reset before the shutdown deadline, its peer having done nothing to cause it, and no forced stop. */
  | "EarlyReset"
  /** A connection, or the shutdown, ended later than the deadline plus the margin. */
  | "Late"
  /** Something never ended within the margin: the shutdown, a peer's connection, a step. */
  | "Hang"
  /** The server's listener never accepted a peer's connection. */
  | "NotAccepted"
  /** The port still accepted connections after the drain delay and the shutdown deadline, or was not free after. */
  | "PortOpen"
  /** A fiber, socket, handle or timer outlived the run. */
  | "Leak"
  /** A handler's finalizers did not run exactly once. */
  | "Finalizer"
  /** A handler running when shutdown began never got the drain notice. */
  | "DrainNotice"
  /** A handler died (a defect). */
  | "HandlerDied"
  /** The server under test did not start. */
  | "NotStarted"
  /** A scenario asked for what this runner cannot do (a simulation-only fault on loopback). */
  | "Unsupported"

/**
 * A run broke an invariant: which one, and what was seen.
 *
 * @since 0.1.0
 * @category errors
 */
export class ShutdownViolation extends Data.TaggedError("ShutdownViolation")<{
  readonly reason: ViolationReason
  readonly detail: string
}> {
  override get message(): string {
    return this.detail
  }
}

/** @internal */
export const violation = (reason: ViolationReason, detail: string): ShutdownViolation =>
  new ShutdownViolation({ reason, detail })

/**
 * What the protocol's model says of one peer's conversation now, in one record: the answers
 * earned so far, the whole answer after a half-close, whether the server ended it, and what it
 * says when it ends one at the drain notice.
 *
 * @internal
 */
export interface Answer {
  readonly name: string
  readonly answers: ReadonlyArray<Uint8Array>
  readonly complete: Uint8Array
  readonly closed: boolean
  readonly farewell: Uint8Array | undefined
}

/** @internal */
export const answerOf = (protocol: Protocol, conversation: Conversation): Answer => {
  const answers = conversation.expected()
  return {
    name: protocol.name,
    answers,
    complete: conversation.complete?.() ?? concat(answers),
    closed: conversation.closed?.() ?? false,
    farewell: protocol.farewell
  }
}

/** @internal */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array =>
  parts.length === 1 ? parts[0]! : Buffer.concat(parts)

/** Whether `a` is a prefix of `b`. */
const isPrefix = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length <= b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(
    Buffer.from(b.buffer, b.byteOffset, a.length)
  )

const equal = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && isPrefix(a, b)

/**
 * Whether `received` is whole answers (the first k, for some k), then a prefix of `farewell`
 * (all of it when `whole`).
 */
const endsInFarewell = (
  received: Uint8Array,
  answers: ReadonlyArray<Uint8Array>,
  farewell: Uint8Array,
  whole: boolean
): boolean => {
  let at = 0
  for (let k = 0; k <= answers.length; k++) {
    const rest = received.subarray(at)
    if (whole ? equal(rest, farewell) : isPrefix(rest, farewell)) return true
    if (k === answers.length) return false
    const next = answers[k]!
    if (!isPrefix(next, rest)) return false
    at += next.length
  }
  return false
}

/**
 * What a peer did, as the verdict needs it.
 *
 * @internal
 */
export interface Facts {
  /** It half-closed. */
  readonly halfClosed: boolean
  /** It reset or closed its own connection: what it got after that is not asked. */
  readonly leftItself: boolean
  /** It connected while the server could not accept (descriptors run out): never served. */
  readonly refused: boolean
  /** Milliseconds into shutdown when the end was seen; `undefined` before shutdown began. */
  readonly intoShutdown: number | undefined
  /** The end was seen at or after a forced stop, which resets every connection not whole at once. */
  readonly forced: boolean
}

/**
 * Whether what a peer received so far is the start of an answer the protocol allows: a prefix of
 * the answers earned (of the whole answer once it half-closed), or, once shutdown has begun, whole
 * answers and the start of the farewell. `undefined` when it is.
 *
 * @internal
 */
export const inconsistency = (answer: Answer, received: Uint8Array, facts: Facts): string | undefined => {
  const bound = facts.halfClosed ? answer.complete : concat(answer.answers)
  if (isPrefix(received, bound)) return undefined
  if (
    facts.intoShutdown !== undefined && answer.farewell !== undefined &&
    endsInFarewell(received, answer.answers, answer.farewell, false)
  ) return undefined
  return `received ${received.length} bytes that are not a prefix of the ${bound.length}-byte answer the ` +
    `${answer.name} model expects (they differ from byte ${firstDifference(received, bound)})`
}

const firstDifference = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return n
}

/**
 * The verdict on how a peer's connection ended: `undefined` when every invariant holds, else the
 * broken one. With no protocol, no byte and no kind of end can be judged: only the protocol-free
 * invariants (checked elsewhere) apply.
 *
 * 1. A peer that left by itself, or was never served, is asked nothing more than consistency.
 * 2. What arrived is the start of an allowed answer (see {@link inconsistency}).
 * 3. A clean end (FIN) comes after a complete answer: the whole answer after the peer's
 *    half-close; the answers earned, when the server ended the conversation by the protocol's
 *    rules; or whole answers and the whole farewell, once shutdown began.
 * 4. Any other end (a reset) comes only at the shutdown deadline or after, or after a forced
 *    stop: a cut-off answer.
 *
 * @internal
 */
export const judgeEnd = (
  answer: Answer | undefined,
  received: Uint8Array,
  how: "eof" | "reset" | "closed",
  facts: Facts,
  shutdownTimeoutMillis: number
): ShutdownViolation | undefined => {
  if (answer === undefined) return undefined
  const wrong = inconsistency(answer, received, facts)
  if (wrong !== undefined) return violation("NotAnAnswer", `at the end: ${wrong}`)
  if (facts.leftItself || facts.refused) return undefined
  if (how === "eof") {
    if (facts.halfClosed && equal(received, answer.complete)) return undefined
    if (answer.closed && equal(received, concat(answer.answers))) return undefined
    if (
      facts.intoShutdown !== undefined && answer.farewell !== undefined &&
      endsInFarewell(received, answer.answers, answer.farewell, true)
    ) return undefined
    return violation(
      "CutOffThenFin",
      facts.halfClosed
        ? `a clean end after ${received.length} of ${answer.complete.length} bytes: a cut-off answer that looks complete`
        : `a clean end for a peer that had not half-closed, after ${received.length} bytes: ${
          answer.farewell === undefined
            ? `the ${answer.name} model ends a conversation only at the peer's half-close`
            : "not whole answers followed by the farewell"
        }`
    )
  }
  const into = facts.intoShutdown
  if (facts.forced || (into !== undefined && into >= shutdownTimeoutMillis)) return undefined
  return violation(
    "EarlyReset",
    into === undefined
      ? `a connection ended with a ${how} while the server served`
      : `a connection ended with a ${how} ${Math.round(into)} ms into shutdown, before its ${
        Math.round(shutdownTimeoutMillis)
      } ms deadline`
  )
}
