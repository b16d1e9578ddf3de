/**
 * How a test runs an example (a TypeScript file, through tsx) on Effect 4: which line it is, and
 * the Node flags an example of this line needs. Its twin, test/effect3/lib/examples.ts, exports
 * the same names.
 */

/** The Effect line under test. */
export const line: 3 | 4 = 4

/**
 * Node's flags for a process of this line, beside `--import tsx`: the `effect4` condition, so
 * `#line/*` is src/effect4. `effect` itself comes from test/effect4 through the resolve hook
 * (test/effect4/register.mjs), which this line's config puts in NODE_OPTIONS for every subprocess.
 */
export const nodeFlags: ReadonlyArray<string> = ["--conditions=effect4"]
