/**
 * The loopback runner: a scenario against a server on real `node:net` sockets on 127.0.0.1, in
 * the caller's runtime, with the process's own sockets, handles and timers as the leak check.
 */
import type { Effect } from "effect"
import type { Scope } from "effect"
import type { Outcome, RunOptions, Scenario, Target } from "../../TestKit.js"
import * as Leaks from "./leaks.js"
import type { Harness } from "./runner.js"
import { play } from "./runner.js"
import type { ShutdownViolation } from "./verdict.js"

const harness: Harness = {
  holdings: Leaks.holdings,
  expectNoLeaks: (before) => Leaks.expectNoLeaks(before),
  expectPortFree: Leaks.expectPortFree,
  exhaust: undefined,
  serverSocketsOpen: undefined,
  // Real time on a shared machine: an end is late only past the hang margin.
  deadlineMargin: "10 seconds",
  notice: "cut"
}

/** @internal */
export const checkShutdown = <E = never, R = never>(
  scenario: Scenario,
  options: RunOptions & Target<E, R> = {}
): Effect.Effect<Outcome, ShutdownViolation, Exclude<R, Scope.Scope>> =>
  play(harness, scenario, { ...options, deadlineMargin: options.deadlineMargin ?? options.margin ?? "10 seconds" })
