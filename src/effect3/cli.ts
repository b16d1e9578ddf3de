/**
 * What the command line does with fibers and scopes whose names differ between the lines: running
 * an effect that cannot be interrupted in the background, and a server's own scope. This is the
 * Effect 3 side (`#line/cli`); src/effect4/cli.ts exports the same names.
 */
import { Effect, ExecutionStrategy, Scope } from "effect"

/**
 * Runs `self` on a fiber of its own and waits for it; once interrupted, interrupts that fiber
 * without waiting for it to end (Effect 3's `Effect.disconnect`).
 */
export const disconnect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> = Effect.disconnect

/** A scope that can be closed. */
export type CloseableScope = Scope.CloseableScope

/** A child of `scope`, closed with it at the latest, whose finalizers run one after another. */
export const forkScope = (scope: Scope.Scope): Effect.Effect<CloseableScope> =>
  Scope.fork(scope, ExecutionStrategy.sequential)

/** Runs `self` with its scoped resources in `scope`, released when that scope closes. */
export const extendScope =
  (scope: Scope.Scope) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, Scope.Scope>> =>
    Scope.extend(self, scope)

/**
 * Runs `self` reading its configuration from the process's environment, where a variable set to
 * the empty string is set (and refused by the check it fails), not unset.
 */
export const environment = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => self
