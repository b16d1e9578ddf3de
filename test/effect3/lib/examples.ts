/**
 * How a test runs an example (a TypeScript file, through tsx) on Effect 3: which line it is, and
 * the Node flags an example of this line needs (none: the root's node_modules hold Effect 3). Its
 * twin, test/effect4/lib/examples.ts, exports the same names.
 */

/** The Effect line under test. */
export const line: 3 | 4 = 3

/** Node's flags for a process of this line, beside `--import tsx`. */
export const nodeFlags: ReadonlyArray<string> = []
