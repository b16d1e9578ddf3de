/**
 * Types and small constructors whose names or shapes differ between Effect 3 and Effect 4; this
 * is the Effect 4 side (`#line/types`). src/effect3/types.ts exports the same names.
 */
import { Cause, Config, Context, Duration, Effect, Option, Stream } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Pull from "effect/Pull"

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

/** A service with a default: what the fiber reads unless someone provided another value. */
export const reference = <T>(key: string, defaultValue: () => T): Context.Reference<T> =>
  Context.Reference<T>(key, { defaultValue })

/** Any value decoded as a duration, or none when it is not one (the decoder throws on others). */
export const decodeDurationUnknown = (value: unknown): Option.Option<Duration.Duration> =>
  Duration.fromInput(value as Duration.Input)

/** Buffers in order, as a connection's `read` gives them and `writeAll` takes them: an array. */
export type Buffers = ReadonlyArray<Uint8Array>

/**
 * A pull of a connection's input (Effect 4's convention): the buffers that arrived, or
 * `Cause.Done` at the end of input, or the error that ended it.
 */
export type Read<E> = Pull.Pull<NonEmptyReadonlyArray<Uint8Array>, E>

/** What a pull gives: the buffers held, taken over (the array must not be used after). */
export const readBuffers = (buffers: Array<Uint8Array>): NonEmptyReadonlyArray<Uint8Array> =>
  buffers as unknown as NonEmptyReadonlyArray<Uint8Array>

/** The buffers as an array, in order. */
export const buffersArray = (buffers: Buffers): ReadonlyArray<Uint8Array> => buffers

/** A pull at the end of input. */
export const readEnd: Effect.Effect<never, Cause.Done> = Cause.done()

/** A pull that failed with `error`. */
export const readFail = <E>(error: E): Effect.Effect<never, E> => Effect.fail(error)

/** The pulls as a stream that ends at the end of input. */
export const streamOf = <E>(read: Read<E>): Stream.Stream<Uint8Array, E> => Stream.fromPull(Effect.succeed(read))

/**
 * The service a key (a service class or a reference) stands for in the fiber's context, as an
 * effect (Effect 4: `Effect.service`).
 */
export const service: <I, S>(key: Context.Key<I, S>) => Effect.Effect<S, never, I> = Effect.service

/** Matches a pull: the buffers it gave, the end of input, or the error that ended it. */
export const matchRead = <E, A1, E1, R1, A2, E2, R2, A3, E3, R3>(read: Read<E>, cases: {
  readonly onBuffers: (buffers: Buffers) => Effect.Effect<A1, E1, R1>
  readonly onEnd: () => Effect.Effect<A2, E2, R2>
  readonly onFailure: (error: E) => Effect.Effect<A3, E3, R3>
}): Effect.Effect<A1 | A2 | A3, E1 | E2 | E3, R1 | R2 | R3> =>
  Pull.matchEffect(read, {
    onSuccess: cases.onBuffers,
    // The error a pull failed with is the case's; a defect or an interruption stays what it was.
    onFailure: (cause) => {
      const error = Cause.findErrorOption(cause)
      return Option.isSome(error) ? cases.onFailure(error.value) : Effect.failCause(cause as Cause.Cause<never>)
    },
    onDone: () => cases.onEnd()
  }) as Effect.Effect<A1 | A2 | A3, E1 | E2 | E3, R1 | R2 | R3>

/** A string from the configuration (the environment, by default) under `name`. */
export const configString = (name: string): Config.Config<string> => Config.String(name)
