/**
 * Types and small constructors whose names or shapes differ between Effect 3 and Effect 4; this
 * is the Effect 4 side (`#line/types`). src/effect3/types.ts exports the same names.
 *
 * @internal
 */
import { Context, Duration } from "effect"

/** What the options accept as a duration: `"5 seconds"`, a number of milliseconds, a `Duration`. */
export type DurationInput = Duration.Input

/** A duration input, decoded; throws on one that is not a duration (checked inputs only). */
export const decodeDuration = (input: DurationInput): Duration.Duration => Duration.fromInputUnsafe(input)

/**
 * A service class: `class X extends Service<X, Shape>()("key") {}` (Effect 4's `Context.Service`).
 * The class is the service's key in a `Context`, as on either line.
 */
export const Service =
  <Self, Shape>() => <const Key extends string>(key: Key): Context.ServiceClass<Self, Key, Shape> =>
    Context.Service<Self, Shape>()(key)

/** The shape of a service class's service. */
export type ServiceOf<T extends Context.Key<any, any>> = Context.Service.Shape<T>
