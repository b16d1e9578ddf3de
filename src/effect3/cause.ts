/**
 * What the server asks of a `Cause`, whose shape differs between Effect 3 (a tree) and Effect 4 (a
 * flat list of reasons); this is the Effect 3 side (`#line/cause`). src/effect4/cause.ts exports
 * the same names.
 */
import { Cause, Chunk, Option } from "effect"

/** The typed failures, in order. */
export const failures = <E>(cause: Cause.Cause<E>): ReadonlyArray<E> => Chunk.toReadonlyArray(Cause.failures(cause))

/** The defects, in order. */
export const defects = (cause: Cause.Cause<unknown>): ReadonlyArray<unknown> =>
  Chunk.toReadonlyArray(Cause.defects(cause))

/** The first typed failure, if any. */
export const firstFailure = <E>(cause: Cause.Cause<E>): Option.Option<E> => Cause.failureOption(cause)

/** The first defect, if any. */
export const firstDefect = (cause: Cause.Cause<unknown>): Option.Option<unknown> => Cause.dieOption(cause)

/** Whether the cause holds interruptions and nothing else. */
export const isInterruptedOnly = (cause: Cause.Cause<unknown>): boolean => Cause.isInterruptedOnly(cause)

/** Whether the cause holds an interruption, whatever else it holds. */
export const isInterrupted = (cause: Cause.Cause<unknown>): boolean => Option.isSome(Cause.interruptOption(cause))
