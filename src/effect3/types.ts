/**
 * Types and small constructors whose names or shapes differ between Effect 3 and Effect 4; this
 * is the Effect 3 side (`#line/types`). src/effect4/types.ts exports the same names.
 */
import { Chunk, Config, Context, Duration, Effect, Option, Stream } from "effect"

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

/** The key a {@link reference} stands for in a `Context`. */
export interface ReferenceKey<T> {
  readonly _Reference: T
}

/** A service with a default: what the fiber reads unless someone provided another value. */
export const reference = <T>(
  key: string,
  defaultValue: () => T
): Context.ReferenceClass<ReferenceKey<T>, string, T> => Context.Reference<ReferenceKey<T>>()(key, { defaultValue })

/** Any value decoded as a duration, or none when it is not one. */
export const decodeDurationUnknown = (value: unknown): Option.Option<Duration.Duration> => Duration.decodeUnknown(value)

/** Buffers in order, as a connection's `read` gives them and `writeAll` takes them: a `Chunk`. */
export type Buffers = Chunk.Chunk<Uint8Array>

/**
 * A pull of a connection's input (Effect 3's convention): the buffers that arrived, or `None` at
 * the end of input, or `Some` of the error that ended it.
 */
export type Read<E> = Effect.Effect<Buffers, Option.Option<E>>

/** What a pull gives: the buffers held, taken over (the array must not be used after). */
export const readBuffers = (buffers: Array<Uint8Array>): Buffers => Chunk.unsafeFromArray(buffers)

/** The buffers as an array, in order. */
export const buffersArray = (buffers: Buffers): ReadonlyArray<Uint8Array> => Chunk.toReadonlyArray(buffers)

/** A pull at the end of input. */
export const readEnd: Effect.Effect<never, Option.Option<never>> = Effect.fail(Option.none())

/** A pull that failed with `error`. */
export const readFail = <E>(error: E): Effect.Effect<never, Option.Option<E>> => Effect.fail(Option.some(error))

/** The pulls as a stream that ends at the end of input. */
export const streamOf = <E>(read: Read<E>): Stream.Stream<Uint8Array, E> => Stream.repeatEffectChunkOption(read)

/**
 * The service a key (a service class or a reference) stands for in the fiber's context, as an
 * effect (Effect 3: the key is itself that effect).
 */
export function service<I, S>(key: Context.Reference<I, S>): Effect.Effect<S>
export function service<I, S>(key: Context.Tag<I, S>): Effect.Effect<S, never, I>
export function service<S>(key: Effect.Effect<S, never, unknown>): Effect.Effect<S, never, unknown> {
  return key
}

/** Matches a pull: the buffers it gave, the end of input, or the error that ended it. */
export const matchRead = <E, A1, E1, R1, A2, E2, R2, A3, E3, R3>(read: Read<E>, cases: {
  readonly onBuffers: (buffers: Buffers) => Effect.Effect<A1, E1, R1>
  readonly onEnd: () => Effect.Effect<A2, E2, R2>
  readonly onFailure: (error: E) => Effect.Effect<A3, E3, R3>
}): Effect.Effect<A1 | A2 | A3, E1 | E2 | E3, R1 | R2 | R3> =>
  Effect.matchEffect(read, {
    onFailure: (error): Effect.Effect<A2 | A3, E2 | E3, R2 | R3> =>
      Option.isNone(error) ? cases.onEnd() : cases.onFailure(error.value),
    onSuccess: cases.onBuffers
  })

/** A string from the configuration (the environment, by default) under `name`. */
export const configString = (name: string): Config.Config<string> => Config.string(name)
