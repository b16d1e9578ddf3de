/**
 * Nothing cut off passes for whole, even when the process ends at once: a second signal, SIGQUIT,
 * an exception no one catches, a worker whose primary is forced out. Each peer sees its whole answer
 * and a FIN, or a reset; never a short answer and a FIN. Real processes, real loopback sockets;
 * the peers are stranded first (the server read their input whole and holds part of their echo
 * itself: test/utils/stranded.ts), which is what an abrupt end would lose.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import { Client } from "../src/index.js"
import { type Running, serve } from "./utils/cli.js"
import { ending, queues, strand } from "./utils/stranded.js"

const started: Array<Running> = []
afterEach(() => {
  for (const running of started.splice(0)) running.child.kill("SIGKILL")
})

const start = async (args: ReadonlyArray<string>) => {
  const running = await serve(args)
  started.push(running)
  return running
}

/** Waits (bounded) until `count` lines of the output match `pattern`. */
const lines = async (server: Running, pattern: RegExp, count = 1) => {
  for (let i = 0; i < 3000; i++) {
    const found = server.lines.filter((line) => pattern.test(line))
    if (found.length >= count) return found
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`fewer than ${count} lines match ${pattern}:\n${server.lines.join("\n")}`)
}

const peers = 3

describe("a second signal", () => {
  it("resets every connection still open: a stranded peer sees a reset, never its answer cut short behind a FIN", async () => {
    const server = await start(["--shutdown-timeout", "1m"])
    const stranded = await Promise.all(Array.from({ length: peers }, () => strand(server.address.port)))
    for (const peer of stranded) expect(peer.held).toBeGreaterThan(0)
    server.child.kill("SIGTERM")
    // The shutdown has begun (it counts the connections still open, which the peers' ends below check).
    await lines(server, /shutting down: waiting up to 1m for \d+ connection/)
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(143)
    expect(await Promise.all(stranded.map(ending))).toEqual(Array(peers).fill("RST"))
  })

  it("to a primary, resets its workers' connections too: the workers it leaves stop at once", async () => {
    const server = await start(["--workers", "2", "--shutdown-timeout", "1m"])
    const [line] = await lines(server, /listening on \S+ with workers/)
    const pids = [...line!.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]))
    const stranded = await Promise.all(Array.from({ length: peers }, () => strand(server.address.port)))
    // The workers that hold a peer: their shutdown waits for it.
    const holding = pids.filter((pid) =>
      stranded.some((peer) => socketsOf(pid).has(inodeOf(server.address.port, peer.ends.localPort)))
    )
    expect(holding.length).toBeGreaterThan(0)
    server.child.kill("SIGTERM")
    await lines(server, /shutting down: waiting up to 1m for/, holding.length)
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(143)
    // The primary gone, each worker it left takes the end of its shutdown as a second signal.
    await lines(
      server,
      /SIGTERM during the shutdown its primary asked for \(or left\): stopping at once/,
      holding.length
    )
    expect(await Promise.all(stranded.map(ending))).toEqual(Array(peers).fill("RST"))
  })
})

describe("SIGQUIT and SIGUSR2", () => {
  it("SIGQUIT stops at once with 131, as a second signal does: a stranded peer sees a reset", async () => {
    const server = await start(["--shutdown-timeout", "1m"])
    const stranded = await Promise.all(Array.from({ length: peers }, () => strand(server.address.port)))
    server.child.kill("SIGQUIT")
    expect(await server.exited).toBe(131)
    await lines(server, /SIGQUIT: stopping at once with exit status 131; every connection still open is reset/)
    expect(await Promise.all(stranded.map(ending))).toEqual(Array(peers).fill("RST"))
  })

  it("SIGUSR2 is logged and ignored: the server serves on", async () => {
    const server = await start([])
    server.child.kill("SIGUSR2")
    await lines(server, /SIGUSR2 ignored: it means nothing to this server/)
    const echoed = await Effect.runPromise(Client.roundTrip({ port: server.address.port }, [Buffer.from("still")]))
    expect(Buffer.from(echoed).toString()).toBe("still")
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
  })
})

describe("an exception no one catches", () => {
  it("resets every connection still open on the way out", async () => {
    const child = spawn(process.execPath, [path.resolve(import.meta.dirname, "fixtures/crash.mjs")], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    try {
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve))
      let stderr = ""
      child.stderr.on("data", (data: Buffer) => (stderr += data.toString()))
      const first = await new Promise<string>((resolve) =>
        readline.createInterface({ input: child.stdout }).once("line", resolve)
      )
      const port = Number(/:(\d+)$/.exec(first)![1])
      const stranded = await Promise.all(Array.from({ length: peers }, () => strand(port)))
      child.kill("SIGUSR2")
      expect(await exited).toBe(1)
      expect(stderr).toContain("a bug outside the server")
      expect(await Promise.all(stranded.map(ending))).toEqual(Array(peers).fill("RST"))
    } finally {
      child.kill("SIGKILL")
    }
  })
})

/** The inode of the server's side of the loopback connection `serverPort` <-> `peerPort`. */
const inodeOf = (serverPort: number, peerPort: number): string => {
  expect(queues(serverPort, peerPort)).toBeDefined()
  const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, "0")
  const line = fs.readFileSync("/proc/net/tcp", "latin1").split("\n").find((l) => {
    const fields = l.trim().split(/\s+/)
    return fields[1]?.endsWith(`:${hexPort(serverPort)}`) === true &&
      fields[2]?.endsWith(`:${hexPort(peerPort)}`) === true
  })
  return line!.trim().split(/\s+/)[9]!
}

/** The socket inodes process `pid` holds. */
const socketsOf = (pid: number): Set<string> => {
  const held = new Set<string>()
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]
      if (inode !== undefined) held.add(inode)
    } catch {
      // Closed while we looked: not held.
    }
  }
  return held
}
