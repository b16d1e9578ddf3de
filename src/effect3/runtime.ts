/**
 * Running effects from Node's callbacks, and the few fiber primitives whose names differ between
 * Effect 3 and Effect 4; this is the Effect 3 side (`#line/runtime`). src/effect4/runtime.ts
 * exports the same names.
 */
import { Deferred, Effect, FiberId, FiberRef, FiberRefs, HashMap, Runtime, RuntimeFlags, Scope } from "effect"
import type { Cause, Context, Duration, Exit, Fiber } from "effect"

/** An effect resumed from a callback (Effect 3's `Effect.async`). */
export const callback: <A, E = never, R = never>(
  register: (
    resume: (effect: Effect.Effect<A, E, R>) => void,
    signal: AbortSignal
  ) => void | Effect.Effect<void, never, R>
) => Effect.Effect<A, E, R> = Effect.async

/** Recovers from any cause: a failure, a defect or an interruption. */
export const catchAllCause: {
  <E, A2, E2, R2>(
    f: (cause: Cause.Cause<E>) => Effect.Effect<A2, E2, R2>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A2 | A, E2, R2 | R>
  <A, E, R, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    f: (cause: Cause.Cause<E>) => Effect.Effect<A2, E2, R2>
  ): Effect.Effect<A | A2, E2, R | R2>
} = Effect.catchAllCause

/** Runs an effect on the same cause: a failure, a defect or an interruption. */
export const tapCause: <E, X, E2, R2>(
  f: (cause: Cause.Cause<E>) => Effect.Effect<X, E2, R2>
) => <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | E2, R2 | R> = (f) => Effect.tapErrorCause(f)

/** Forks a fiber that no parent waits for or interrupts (Effect 3's `forkDaemon`). */
export const forkDetach: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<Fiber.Fiber<A, E>, never, R> =
  Effect.forkDaemon

/** Fails with `onTimeout()` when the effect takes longer than `duration`. */
export const timeoutFail = <E1>(options: {
  readonly duration: Duration.DurationInput
  readonly onTimeout: () => E1
}) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | E1, R> => Effect.timeoutFail(self, options)

/** A deferred made outside any fiber. */
export const deferredUnsafe = <A, E = never>(): Deferred.Deferred<A, E> => Deferred.unsafeMake<A, E>(FiberId.none)

/** Completes a deferred outside any fiber; nothing when it was already done. */
export const deferredDone = <A, E>(deferred: Deferred.Deferred<A, E>, effect: Effect.Effect<A, E>): void => {
  Deferred.unsafeDone(deferred, effect)
}

/** A semaphore made outside any fiber. */
export const semaphoreUnsafe = (permits: number): Effect.Semaphore => Effect.unsafeMakeSemaphore(permits)

/** A semaphore. */
export const semaphore = (permits: number): Effect.Effect<Effect.Semaphore> => Effect.makeSemaphore(permits)

/** A latch, closed unless `open`. */
export const latch = (open?: boolean): Effect.Effect<Effect.Latch> => Effect.makeLatch(open)

/** A fiber forked at the root, from a callback: what the lifecycle holds of each connection. */
export type RootFiber<A, E = never> = Fiber.RuntimeFiber<A, E>

/** Calls `f` with the fiber's exit once it is done; at once when it already is. */
export const observe = <A, E>(fiber: RootFiber<A, E>, f: (exit: Exit.Exit<A, E>) => void): void => fiber.addObserver(f)

/** Interrupts a root fiber without waiting for it. */
export const interruptFork = <A, E>(fiber: RootFiber<A, E>): void => fiber.unsafeInterruptAsFork(FiberId.none)

/** The fiber's exit, when it is done. */
export const poll = <A, E>(fiber: RootFiber<A, E>): Exit.Exit<A, E> | undefined => fiber.unsafePoll() ?? undefined

/**
 * What runs effects from Node's callbacks with the services, log settings and metric labels of
 * the fiber that made it: a root fiber each, interruptible whatever region the runner was made in
 * (a connection's fiber must be interruptible by the shutdown).
 */
export interface Runner<R> {
  /** The services of the fiber that made the runner. */
  readonly context: Context.Context<R>
  /**
   * Forks `effect` at the root. With `peer`, its records name the peer; with `context`, the fiber
   * starts with those services instead of the runner's.
   */
  readonly fork: <A, E>(
    effect: Effect.Effect<A, E, R>,
    peer?: string,
    context?: Context.Context<never>
  ) => RootFiber<A, E>
  readonly runSync: <A, E>(effect: Effect.Effect<A, E, R>) => A
  readonly runPromise: <A, E>(effect: Effect.Effect<A, E, R>) => Promise<A>
}

/** The runner for the current fiber's services. */
export const runner = <R = never>(): Effect.Effect<Runner<R>, never, R> =>
  Effect.map(Effect.runtime<R>(), (current) => {
    const runtime = Runtime.enableRuntimeFlag(current, RuntimeFlags.Interruption)
    const fork = Runtime.runFork(runtime)
    return {
      context: runtime.context,
      fork: (effect, peer, context) =>
        peer === undefined ? fork(effect) : fork(effect, { updateRefs: annotate(peer, context) }),
      runSync: Runtime.runSync(runtime),
      runPromise: Runtime.runPromise(runtime)
    }
  })

/** A scope its owner closes. */
export type CloseableScope = Scope.CloseableScope

/** A scope made outside any fiber. */
export const scopeUnsafe = (): CloseableScope => Effect.runSync(Scope.make())

// The peer's annotation and the context are set in the fiber's initial FiberRefs, in one update:
// an effect around the handler that annotated or provided them would change the FiberRef and
// restore it after, in an uninterruptible region, for every connection.
const annotate =
  (peer: string, context: Context.Context<never> | undefined) =>
  (refs: FiberRefs.FiberRefs, id: FiberId.Runtime): FiberRefs.FiberRefs => {
    const annotations = HashMap.set(
      FiberRefs.getOrDefault(refs, FiberRef.currentLogAnnotations),
      "peer",
      peer as unknown
    )
    return FiberRefs.updateManyAs(refs, {
      entries: context === undefined
        ? [[FiberRef.currentLogAnnotations, [[id, annotations]]]]
        : [[FiberRef.currentLogAnnotations, [[id, annotations]]], [FiberRef.currentContext, [[id, context]]]]
    })
  }

/**
 * `self`, a wait resumed from a Node event, continuing in a turn of the scheduler of its own, after
 * the event's other listeners: on this line a resumed fiber always does, so `self` as it is.
 */
export const afterTheEvent = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => self
