/**
 * The result of a check: the value, or what was wrong with it. The decisions (options, flags, the
 * PROXY protocol's networks) return this, the project's own union, rather than Effect's `Either`,
 * which Effect 4 replaced with `Result`: written once, they read the same on both lines.
 */
import { Effect } from "effect"

/** @internal */
export type Checked<A, E> = Valid<A> | Invalid<E>

/** @internal */
export interface Valid<A> {
  readonly _tag: "Valid"
  readonly value: A
}

/** @internal */
export interface Invalid<E> {
  readonly _tag: "Invalid"
  readonly error: E
}

/** @internal */
export const valid = <A>(value: A): Checked<A, never> => ({ _tag: "Valid", value })

/** @internal */
export const invalid = <E>(error: E): Checked<never, E> => ({ _tag: "Invalid", error })

/** @internal */
export const mapError = <A, E, E2>(checked: Checked<A, E>, f: (error: E) => E2): Checked<A, E2> =>
  checked._tag === "Valid" ? checked : invalid(f(checked.error))

/**
 * Checks in order, each on the values of those before it: `yield*` {@link value} of each gives
 * its value, and the first invalid one is the result. The body returns the result otherwise.
 *
 * @internal
 */
export const gen = <A, E>(body: () => Generator<Invalid<E>, Checked<A, E>, unknown>): Checked<A, E> =>
  // A body yields only an invalid check, where it stops: it is never resumed.
  body().next().value

/**
 * In {@link gen}: the value of a valid check; an invalid one ends the body.
 *
 * @internal
 */
export function* value<A, E>(checked: Checked<A, E>): Generator<Invalid<E>, A, unknown> {
  while (checked._tag === "Invalid") yield checked
  return checked.value
}

/** Succeeds with the value, or fails with what was wrong. @internal */
export const toEffect = <A, E>(checked: Checked<A, E>): Effect.Effect<A, E> =>
  checked._tag === "Valid" ? Effect.succeed(checked.value) : Effect.fail(checked.error)
