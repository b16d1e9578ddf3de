/**
 * What the primary and its workers say to each other over `node:cluster`'s IPC channel: the
 * messages (marked, so that a user's own messages pass by), who a worker is (handed to it in its
 * environment), and requests with their replies, matched by number and bounded in time.
 */
import { deferredDone, deferredUnsafe } from "#line/runtime"
import type { DurationInput } from "#line/types"
import { Deferred, Effect, Exit, Option } from "effect"
import type * as Listener from "../../Listener.js"
import type * as MetricsWire from "../metricsWire.js"

/** The mark of this library's messages. @internal */
export const tag = "effect-tcp-echo/Workers"

/** What the primary can change in every worker while they run: each one's own `Server` control. @internal */
export type Control =
  | { readonly action: "suspend" }
  | { readonly action: "resume" }
  | { readonly action: "setMaxConnections"; readonly maxConnections: number }

/** @internal */
export type ToWorker =
  | { readonly [tag]: "shutdown" }
  | { readonly [tag]: "metrics"; readonly request: number }
  | { readonly [tag]: "control"; readonly request: number; readonly control: Control }

/** @internal */
export type ToPrimary =
  | { readonly [tag]: "listening"; readonly address: Listener.Address }
  | { readonly [tag]: "failed"; readonly message: string }
  | { readonly [tag]: "metrics"; readonly request: number; readonly series: ReadonlyArray<MetricsWire.Series> }
  | { readonly [tag]: "controlled"; readonly request: number; readonly error?: string }

/** Whether `message` is one of this library's (the channel carries the user's own too). @internal */
export const isMessage = (message: unknown): message is ToWorker | ToPrimary =>
  typeof message === "object" && message !== null && tag in message

/** How the workers share the port (`Workers.Sharing`). @internal */
export type Sharing = "cluster" | "reusePort"

/** Who a worker is and how it listens: what the primary decided for it. @internal */
export interface Identity {
  /** 1 to N: a restarted worker keeps its number. */
  readonly id: number
  /** How often this worker was restarted before: 0 for the first start. */
  readonly restarts: number
  readonly port: number
  readonly sharing: Sharing
}

/** The variable through which the primary hands a worker its {@link Identity}. @internal */
export const variable = "EFFECT_TCP_ECHO_WORKER"

/** @internal */
export const encodeIdentity = (identity: Identity): string => JSON.stringify(identity)

/** The identity in `text`, or `None` for anything else (absent, not JSON, a field missing). @internal */
export const decodeIdentity = (text: string | undefined): Option.Option<Identity> => {
  // Stryker disable next-line ConditionalExpression: equivalent (JSON.parse(undefined) throws, and the catch gives None); the check narrows the type
  if (text === undefined) return Option.none()
  try {
    const parsed = JSON.parse(text) as { id?: unknown; restarts?: unknown; port?: unknown; sharing?: unknown }
    return typeof parsed.id === "number" && typeof parsed.restarts === "number" && typeof parsed.port === "number" &&
        (parsed.sharing === "cluster" || parsed.sharing === "reusePort")
      ? Option.some({ id: parsed.id, restarts: parsed.restarts, port: parsed.port, sharing: parsed.sharing })
      : Option.none()
  } catch {
    return Option.none()
  }
}

/**
 * Requests of one kind to one worker, each waiting for the reply under its number. A reply that
 * comes after its request gave up finds no one and is dropped.
 *
 * @internal
 */
export class Requests<A> {
  #last = 0
  readonly #waiting = new Map<number, Deferred.Deferred<A>>()

  /**
   * Sends the message `send` makes with a new request number, and waits for the reply under
   * that number at most `timeout`: `None` if none came in time.
   */
  ask(send: (request: number) => void, timeout: DurationInput): Effect.Effect<Option.Option<A>> {
    return Effect.suspend(() => {
      const request = ++this.#last
      const reply = deferredUnsafe<A>()
      this.#waiting.set(request, reply)
      send(request)
      return Effect.ensuring(
        Effect.timeoutOption(Deferred.await(reply), timeout),
        Effect.sync(() => this.#waiting.delete(request))
      )
    })
  }

  /** The reply to `request`, for whoever waits for it. */
  answer(request: number, value: A): void {
    const waiting = this.#waiting.get(request)
    if (waiting !== undefined) deferredDone(waiting, Exit.succeed(value))
  }

  /** `value` for every request still waiting: the worker is gone. */
  answerAll(value: A): void {
    for (const waiting of this.#waiting.values()) deferredDone(waiting, Exit.succeed(value))
  }

  /** Requests waiting for their reply now. */
  get pending(): number {
    return this.#waiting.size
  }
}
