/**
 * Running effects from Node's callbacks, and the few fiber primitives whose names differ between
 * Effect 3 and Effect 4; this is the Effect 4 side (`#line/runtime`). src/effect3/runtime.ts
 * exports the same names.
 */
import { Context, Deferred, Effect, Latch, References, Scope, Semaphore } from "effect"
import type { Cause, Duration, Exit, Fiber } from "effect"

/** An effect resumed from a callback (Effect 4's `Effect.callback`). */
export const callback = <A, E = never, R = never>(
  register: (
    resume: (effect: Effect.Effect<A, E, R>) => void,
    signal: AbortSignal
  ) => void | Effect.Effect<void, never, R>
): Effect.Effect<A, E, R> => Effect.callback<A, E, R>((resume, signal) => register(resume, signal))

/** Recovers from any cause: a failure, a defect or an interruption. */
export const catchAllCause: {
  <E, A2, E2, R2>(
    f: (cause: Cause.Cause<E>) => Effect.Effect<A2, E2, R2>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A2 | A, E2, R2 | R>
  <A, E, R, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    f: (cause: Cause.Cause<E>) => Effect.Effect<A2, E2, R2>
  ): Effect.Effect<A | A2, E2, R | R2>
} = Effect.catchCause

/** Runs an effect on the same cause: a failure, a defect or an interruption. */
export const tapCause: <E, X, E2, R2>(
  f: (cause: Cause.Cause<E>) => Effect.Effect<X, E2, R2>
) => <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | E2, R2 | R> = (f) => Effect.tapCause(f)

/** Forks a fiber that no parent waits for or interrupts. */
export const forkDetach = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<Fiber.Fiber<A, E>, never, R> =>
  Effect.forkDetach(self)

/** Fails with `onTimeout()` when the effect takes longer than `duration`. */
export const timeoutFail = <E1>(options: {
  readonly duration: Duration.Input
  readonly onTimeout: () => E1
}) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | E1, R> =>
  Effect.timeoutOrElse(self, { duration: options.duration, orElse: () => Effect.fail(options.onTimeout()) })

/** A deferred made outside any fiber. */
export const deferredUnsafe = <A, E = never>(): Deferred.Deferred<A, E> => Deferred.makeUnsafe<A, E>()

/** Completes a deferred outside any fiber; nothing when it was already done. */
export const deferredDone = <A, E>(deferred: Deferred.Deferred<A, E>, effect: Effect.Effect<A, E>): void => {
  Deferred.doneUnsafe(deferred, effect)
}

/** A semaphore made outside any fiber. */
export const semaphoreUnsafe = (permits: number): Semaphore.Semaphore => Semaphore.makeUnsafe(permits)

/** A semaphore. */
export const semaphore = (permits: number): Effect.Effect<Semaphore.Semaphore> => Semaphore.make(permits)

/** A latch, closed unless `open`. */
export const latch = (open?: boolean): Effect.Effect<Latch.Latch> => Latch.make(open)

/** A fiber forked at the root, from a callback: what the lifecycle holds of each connection. */
export type RootFiber<A, E = never> = Fiber.Fiber<A, E>

/** Calls `f` with the fiber's exit once it is done; at once when it already is. */
export const observe = <A, E>(fiber: RootFiber<A, E>, f: (exit: Exit.Exit<A, E>) => void): void => {
  fiber.addObserver(f)
}

/** Interrupts a root fiber without waiting for it. */
export const interruptFork = <A, E>(fiber: RootFiber<A, E>): void => fiber.interruptUnsafe()

/** The fiber's exit, when it is done. */
export const poll = <A, E>(fiber: RootFiber<A, E>): Exit.Exit<A, E> | undefined => fiber.pollUnsafe()

/**
 * What runs effects from Node's callbacks with the services, log settings and metric attributes
 * of the fiber that made it: a root fiber each, interruptible (Effect 4's root fibers are).
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
  Effect.map(Effect.context<R>(), (context) => {
    const annotations = Context.get(context as Context.Context<never>, References.CurrentLogAnnotations)
    const fork = Effect.runForkWith(context)
    return {
      context,
      // One context per connection carries its services and its annotation together: the fiber
      // starts with both, and nothing around the handler sets or restores them.
      fork: (effect, peer, services) =>
        peer === undefined && services === undefined
          ? fork(effect)
          : Effect.runForkWith(
            (peer === undefined
              ? services!
              : Context.add(services ?? context, References.CurrentLogAnnotations, {
                ...annotations,
                peer
              })) as Context.Context<R>
          )(effect),
      runSync: Effect.runSyncWith(context),
      runPromise: Effect.runPromiseWith(context)
    }
  })

/** A scope its owner closes. */
export type CloseableScope = Scope.Closeable

/** A scope made outside any fiber. */
export const scopeUnsafe = (): CloseableScope => Scope.makeUnsafe()

/**
 * `self`, a wait resumed from a Node event, continuing in a turn of the scheduler of its own, after
 * the event's other listeners. On this line a fiber resumed from a callback runs at once, inside
 * the listener that resumed it, before the listeners after it (the server's own, for a test's
 * wait on a connection the server accepts); a yield puts it back in line, as Effect 3 runs it.
 */
export const afterTheEvent = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tap(self, () => Effect.yieldNow)
