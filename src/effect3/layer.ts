/**
 * Layers whose constructors differ between Effect 3 (`Layer.scoped` for a service whose
 * construction holds resources) and Effect 4 (`Layer.effect`, which takes a `Scope` itself); this
 * is the Effect 3 side (`#line/layer`). src/effect4/layer.ts exports the same names.
 */
import { Layer } from "effect"
import type { Context, Effect, Scope } from "effect"

/**
 * The service `effect` makes, as a layer; what it acquires is released with the layer (Effect 3's
 * `Layer.scoped`).
 */
export const scoped = <I, S, E, R>(
  service: Context.Tag<I, S>,
  effect: Effect.Effect<S, E, R>
): Layer.Layer<I, E, Exclude<R, Scope.Scope>> => Layer.scoped(service, effect)
