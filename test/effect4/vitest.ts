/**
 * `@effect/vitest` as the suite sees it on the Effect 4 line: version 4's, with the two testers
 * the suite uses from version 0.30 that it folded into others (`it.effect` and `it.live` provide
 * a `Scope` there, as `it.scoped` and `it.scopedLive` did).
 */
import { it as base } from "@effect/vitest"

export * from "@effect/vitest"

export const it: typeof base & { readonly scoped: typeof base.effect; readonly scopedLive: typeof base.live } = Object
  .assign(base, { scoped: base.effect, scopedLive: base.live })
