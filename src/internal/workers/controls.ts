/**
 * The controls the primary applies to every worker (suspend, resume, setMaxConnections) as one
 * state in force, reconciled into each worker: the workers listening when a control is asked are
 * told it, and a worker that listens later (a restart) is told what is in force, in order. One
 * control at a time, so that each worker applies them in the order they were asked for.
 */
import { latch, semaphore } from "#line/runtime"
import { Effect } from "effect"
import type * as Protocol from "./protocol.js"

/** @internal */
export type Control = Protocol.Control

/**
 * What the controls asked for, that every worker is told, and each one that listens later.
 * `maxConnections` undefined: each worker keeps its own option.
 *
 * @internal
 */
export interface InForce {
  readonly suspended: boolean
  readonly maxConnections: number | undefined
}

/** @internal */
export const initial: InForce = { suspended: false, maxConnections: undefined }

/**
 * What a worker that just listened (accepting, with its own limit) is told to match `inForce`,
 * in order.
 *
 * @internal
 */
export const replay = (inForce: InForce): ReadonlyArray<Control> => [
  ...(inForce.suspended ? [{ action: "suspend" } as const] : []),
  ...(inForce.maxConnections === undefined
    ? []
    : [{ action: "setMaxConnections", maxConnections: inForce.maxConnections } as const])
]

/**
 * What is in force once `control` is asked, before any worker answered: a suspend, so that a
 * worker that listens meanwhile is suspended too.
 *
 * @internal
 */
export const asked = (inForce: InForce, control: Control): InForce =>
  control.action === "suspend" ? { ...inForce, suspended: true } : inForce

/**
 * What is in force once every worker listening took `control`. After a refusal, a resume or a
 * limit is not in force: a worker that listens later is not told it.
 *
 * @internal
 */
export const taken = (inForce: InForce, control: Control): InForce =>
  control.action === "resume"
    ? { ...inForce, suspended: false }
    : control.action === "setMaxConnections"
    ? { ...inForce, maxConnections: control.maxConnections }
    : inForce

/** A worker as the controls see it: `apply` answers why not, or undefined once applied. @internal */
export interface Target {
  readonly id: number
  readonly pid: number
  readonly apply: (control: Control) => Effect.Effect<string | undefined>
}

/** The first worker (by number) that refused `control`, and why. @internal */
export interface Refusal {
  readonly worker: number
  readonly control: Control
  readonly detail: string
}

/** @internal */
export interface Controls {
  /** Applies `control` to every worker listening now; fails with the first refusal. */
  readonly apply: (control: Control) => Effect.Effect<void, Refusal>
  /** Tells a worker that just listened what is in force; a refusal is logged (it serves on). */
  readonly catchUp: (target: Target) => Effect.Effect<void>
  /** Waits while the workers are suspended: a worker that died is restarted once they resume. */
  readonly resumed: Effect.Effect<void>
  readonly inForce: Effect.Effect<InForce>
}

/**
 * The controls of the workers `listening()` returns. `onSuspend` runs when a suspend is asked,
 * before any worker is told.
 *
 * @internal
 */
export const make = (
  listening: () => ReadonlyArray<Target>,
  onSuspend: () => void
): Effect.Effect<Controls> =>
  Effect.gen(function*() {
    let inForce = initial
    const serially = (yield* semaphore(1)).withPermits(1)
    const resumed = yield* latch(true)

    const applyAll = (control: Control): Effect.Effect<void, Refusal> =>
      Effect.gen(function*() {
        const targets = listening()
        const answers = yield* Effect.forEach(targets, (target) => target.apply(control), { concurrency: "unbounded" })
        const refused = answers.findIndex((answer) => answer !== undefined)
        if (refused >= 0) {
          return yield* Effect.fail({ worker: targets[refused]!.id, control, detail: answers[refused]! })
        }
      })

    const apply = (control: Control): Effect.Effect<void, Refusal> =>
      serially(Effect.gen(function*() {
        inForce = asked(inForce, control)
        if (control.action === "suspend") {
          onSuspend()
          yield* resumed.close
        }
        yield* applyAll(control)
        inForce = taken(inForce, control)
        if (!inForce.suspended) yield* resumed.open
      }))

    /** Tells `target` a control in force; a refusal is logged, and the rest is still told. */
    const tell = (target: Target) => (control: Control) =>
      Effect.flatMap(target.apply(control), (refused) =>
        refused === undefined
          ? Effect.void
          : Effect.logWarning(
            `worker ${target.id} (pid ${target.pid}), restarted, could not ${control.action}: ${refused}`
          ))

    const catchUp = (target: Target): Effect.Effect<void> =>
      // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent (the list of results is never read)
      serially(Effect.forEach(replay(inForce), tell(target), { discard: true }))

    return {
      apply,
      catchUp,
      resumed: resumed.await,
      inForce: Effect.sync(() => inForce)
    }
  })
