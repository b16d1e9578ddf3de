/**
 * What the server asks of a `Cause`, whose shape differs between Effect 3 (a tree) and Effect 4 (a
 * flat list of reasons); this is the Effect 4 side (`#line/cause`). src/effect3/cause.ts exports
 * the same names.
 */
import { Cause, Option } from "effect"

/** The typed failures, in order. */
export const failures = <E>(cause: Cause.Cause<E>): ReadonlyArray<E> =>
  cause.reasons.filter(Cause.isFailReason).map((reason) => reason.error)

/** The defects, in order. */
export const defects = (cause: Cause.Cause<unknown>): ReadonlyArray<unknown> =>
  cause.reasons.filter(Cause.isDieReason).map((reason) => reason.defect)

/** The first typed failure, if any. */
export const firstFailure = <E>(cause: Cause.Cause<E>): Option.Option<E> => Cause.findErrorOption(cause)

/** The first defect, if any. */
export const firstDefect = (cause: Cause.Cause<unknown>): Option.Option<unknown> => {
  const found = cause.reasons.find(Cause.isDieReason)
  return found === undefined ? Option.none() : Option.some(found.defect)
}

/** Whether the cause holds interruptions and nothing else. */
export const isInterruptedOnly = (cause: Cause.Cause<unknown>): boolean => Cause.hasInterruptsOnly(cause)

/** Whether the cause holds an interruption, whatever else it holds. */
export const isInterrupted = (cause: Cause.Cause<unknown>): boolean => Cause.hasInterrupts(cause)
