/**
 * Types and small constructors whose names or shapes differ between Effect 3 and Effect 4; this
 * is the Effect 3 side (`#line/types`). src/effect4/types.ts exports the same names.
 *
 * @internal
 */
import { Context, Duration } from "effect"

/** What the options accept as a duration: `"5 seconds"`, a number of milliseconds, a `Duration`. */
export type DurationInput = Duration.DurationInput

/** A duration input, decoded; throws on one that is not a duration (checked inputs only). */
export const decodeDuration = (input: DurationInput): Duration.Duration => Duration.decode(input)

/**
 * A service class: `class X extends Service<X, Shape>()("key") {}` (Effect 3's `Context.Tag`).
 * The class is the service's key in a `Context`, as on either line.
 */
export const Service = <Self, Shape>() => <const Key extends string>(key: Key): Context.TagClass<Self, Key, Shape> =>
  Context.Tag(key)<Self, Shape>()

/** The shape of a service class's service (`Context.Tag.Service`). */
export type ServiceOf<T extends Context.Tag<any, any>> = Context.Tag.Service<T>
