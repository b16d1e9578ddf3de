/**
 * The log levels the server decides between, as values of its own: a connection's verdict is
 * logged at one of them, and whether a record is built at all is decided by comparing its level
 * with the minimum. Effect's levels are objects with ordinals in Effect 3 and strings with other
 * names (`Warn`) in Effect 4, so the comparisons are written once, here, and `log.ts` is the one
 * place these levels meet Effect's.
 */

/** From the least severe to the most; nothing is ever logged at `None`. @internal */
export type Level = "Debug" | "Info" | "Warning" | "Error" | "None"

const rank: Readonly<Record<Level, number>> = { Debug: 0, Info: 1, Warning: 2, Error: 3, None: 4 }

/** Whether a record at `level` passes the minimum level `minimum`. @internal */
export const enabled = (level: Level, minimum: Level): boolean => level !== "None" && rank[level] >= rank[minimum]
