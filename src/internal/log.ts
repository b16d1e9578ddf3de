/**
 * The project's log levels (`level.ts`) on Effect's, in one place: the running fiber's minimum
 * level as a `Level`, a record logged at a `Level`, and the command line's loggers. Their
 * implementation is the line's own (src/effect3/log.ts, src/effect4/log.ts).
 */
export * from "#line/log"
