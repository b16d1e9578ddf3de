/**
 * effect-tcp-echo: a resource-safe TCP (IPv4) echo server on Effect. This entry point is the
 * library's core; Prometheus exposition is its own entry point (`effect-tcp-echo/Prometheus`),
 * and the command line is the binary. Each module is also its own entry point
 * (`effect-tcp-echo/Server`, ...).
 *
 * @since 0.1.0
 */
export * as Client from "./Client.js"
export * as Connection from "./Connection.js"
export * as KernelLimits from "./KernelLimits.js"
export * as Listener from "./Listener.js"
export * as Metrics from "./Metrics.js"
export * as PlatformSocketServer from "./PlatformSocketServer.js"
export * as Server from "./Server.js"
export * as TestKit from "./TestKit.js"
