/**
 * The server's metrics (every Effect `Metric` in the process) in the Prometheus text format, on
 * an `@effect/platform` HTTP server, exported through `@effect/opentelemetry` and the
 * OpenTelemetry Prometheus serializer. Scoped: released with the scope that started it, at once:
 * its release closes the port and every HTTP connection still open, idle or not, so that it never
 * holds up the shutdown of the process it reports on.
 *
 * @since 0.1.0
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Metrics as OtelMetrics, Resource } from "@effect/opentelemetry"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import * as http from "node:http"
import * as errno from "./internal/errno.js"
import * as Listener from "./Listener.js"

/**
 * Where to serve `/metrics`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Default `127.0.0.1`. */
  readonly host?: string
  /** 0 for any free port. */
  readonly port: number
}

/**
 * Starts `GET /metrics` in the current scope and returns the address it listens on. Fails with a
 * `ListenError` naming the reason when the port cannot be bound (`AddressInUse`, ...).
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (
  options: Options
): Effect.Effect<Listener.Address, Listener.ListenError, Scope.Scope> =>
  Effect.gen(function*() {
    // Pull-based: the exporter's own HTTP server stays off, ours serves its snapshots.
    const exporter = new PrometheusExporter({ preventServerStart: true })
    yield* Layer.buildWithScope(
      OtelMetrics.layer(() => exporter).pipe(Layer.provide(Resource.layer({ serviceName: "effect-tcp-echo" }))),
      yield* Effect.scope
    )
    const serializer = new PrometheusSerializer()
    const metrics = Effect.map(
      Effect.promise(() => exporter.collect()),
      ({ resourceMetrics }) =>
        HttpServerResponse.text(serializer.serialize(resourceMetrics), {
          contentType: "text/plain; version=0.0.4; charset=utf-8"
        })
    )
    const host = options.host ?? "127.0.0.1"
    const node = http.createServer()
    const server = yield* NodeHttpServer.make(() => node, { host, port: options.port }).pipe(
      Effect.mapError((error) => {
        const code = errno.errnoCode(error.cause)
        return new Listener.ListenError({
          reason: errno.listenReason(code),
          address: `${host}:${options.port}`,
          ...(code === undefined ? {} : { code }),
          cause: error.cause
        })
      })
    )
    // Runs before the HTTP server's own release, which waits for every connection to close: a
    // scraper's idle keep-alive connection (or any silent one) would hold it, and the process, forever.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        node.close()
        node.closeAllConnections()
      })
    )
    yield* server.serve(HttpRouter.empty.pipe(HttpRouter.get("/metrics", metrics)))
    const address = server.address as HttpServer.TcpAddress
    return { host: address.hostname, port: address.port }
  })
