/**
 * Consuming a stream a chunk at a time, the shape a connection's `writeAll` takes (a `Chunk` on
 * Effect 3, an array on Effect 4). This is the Effect 4 side (`#line/stream`);
 * src/effect3/stream.ts exports the same names.
 */
import { Stream } from "effect"
import type { Effect } from "effect"
import type { Buffers } from "./types.js"

/** Runs `f` on each chunk of `stream`, in order, one at a time (Effect 4's `Stream.runForEachArray`). */
export const runForEachBuffers = <E, R, E2, R2>(
  stream: Stream.Stream<Uint8Array, E, R>,
  f: (buffers: Buffers) => Effect.Effect<unknown, E2, R2>
): Effect.Effect<void, E | E2, R | R2> => Stream.runForEachArray(stream, f)
