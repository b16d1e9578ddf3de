/**
 * `@effect/vitest` as the suite sees it on the Effect 4 line: version 4's, with the two testers
 * the suite uses from version 0.30 that it folded into others (`it.effect` and `it.live` provide
 * a `Scope` there, as `it.scoped` and `it.scopedLive` did).
 */
// By path: `@effect/vitest` itself is this module, for the suite (vitest.config.ts) and the type
// check (tsconfig.effect4.json) alike.
import { it as base } from "./node_modules/@effect/vitest/dist/index.js"

export * from "./node_modules/@effect/vitest/dist/index.js"

export const it: typeof base & { readonly scoped: typeof base.effect; readonly scopedLive: typeof base.live } = Object
  .assign(base, { scoped: base.effect, scopedLive: base.live })
