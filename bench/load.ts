/**
 * The load generator, run in a process of its own so it never shares the server's event loop.
 * Plain `node:net`, as little work per byte as possible, every echo verified.
 *
 *   node dist/bench/load.js <mode> <port> <seconds> [connections]
 *
 * Prints one JSON line with the result. Every mode stops by itself after `seconds` (plus, for
 * stream, rtt and churn, a warm-up of BENCH_WARMUP seconds, default 0.5, that is not counted: a
 * fresh server compiles its hot path first, and that time is noise, not throughput). Those modes
 * print `{"measuring":true}` when the counted window opens, for the caller to sample the server.
 */
import * as net from "node:net"

type Mode = "stream" | "rtt" | "churn" | "stalled" | "idle"

const [mode, portText, secondsText, connectionsText] = process.argv.slice(2) as [Mode, string, string, string?]
const port = Number(portText)
const seconds = Number(secondsText)
const warmup = Number(process.env.BENCH_WARMUP ?? 0.5)
const host = "127.0.0.1"

const connect = (onread?: net.OnReadOpts): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true, ...(onread === undefined ? {} : { onread }) })
    socket.once("connect", () => {
      socket.off("error", reject)
      // A server going away (the shutdown scenario) resets its peers: expected, never a crash.
      socket.on("error", () => socket.destroy())
      resolve(socket)
    })
    socket.once("error", reject)
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Runs the warm-up, then the counted window; returns how much `count` grew during the window.
 * `window` is told when the window opens (true) and closes (false).
 */
const counted = async (count: () => number, window?: (open: boolean) => void): Promise<number> => {
  await sleep(warmup * 1000)
  const start = count()
  window?.(true)
  process.stdout.write(JSON.stringify({ measuring: true }) + "\n")
  await sleep(seconds * 1000)
  window?.(false)
  return count() - start
}

const done = (result: Record<string, unknown>) => {
  process.stdout.write(JSON.stringify({ mode, ...result }) + "\n")
  process.exit(0)
}

const pattern = (offset: number, length: number, seed: number): Buffer => {
  const buffer = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) buffer[i] = (offset + i + seed) & 0xff
  return buffer
}

/**
 * N connections each writing 64 KiB chunks and reading the echo, with a bounded window. Each reads
 * into one buffer of its own (Node's `onread`): the client allocates nothing per read, so its own
 * garbage and page faults do not set the pace, and the server's speed is what is measured.
 */
const stream = async (connections: number) => {
  const chunk = 64 * 1024
  const window = 8 * chunk
  let echoed = 0
  let errors = 0
  const deadline = Date.now() + (warmup + seconds) * 1000
  const sockets = await Promise.all(Array.from({ length: connections }, (_, id) => {
    // The echo must be the pattern this connection sent, at the same offset.
    const payload = pattern(0, chunk * 2, id)
    let sent = 0
    let received = 0
    let socket: net.Socket
    const pump = () => {
      while (sent - received < window && Date.now() < deadline) {
        sent += chunk
        if (!socket.write(payload.subarray(0, chunk))) break
      }
    }
    const onread = {
      buffer: Buffer.allocUnsafe(chunk),
      callback: (length: number, buffer: Uint8Array) => {
        const start = received % chunk
        if (Buffer.compare(buffer.subarray(0, length), payload.subarray(start, start + length)) !== 0) errors++
        received += length
        echoed += length
        pump()
        return true
      }
    }
    return connect(onread).then((connected) => {
      socket = connected
      socket.on("drain", pump)
      socket.on("error", () => errors++)
      pump()
      return socket
    })
  }))
  const units = await counted(() => echoed)
  done({ units, unit: "bytes", rate: units / seconds, errors, connections: sockets.length })
}

/** N connections doing 64-byte request/echo round trips, one at a time each. */
const rtt = async (connections: number) => {
  const latencies: Array<number> = []
  let measuring = false
  let errors = 0
  const deadline = Date.now() + (warmup + seconds) * 1000
  const sockets = await Promise.all(Array.from({ length: connections }, connect))
  for (const [id, socket] of sockets.entries()) {
    socket.setNoDelay(true)
    const request = pattern(0, 64, id)
    let received = 0
    let started = 0
    const send = () => {
      if (Date.now() >= deadline) return
      received = 0
      started = performance.now()
      socket.write(request)
    }
    socket.on("data", (data: Buffer) => {
      received += data.length
      if (received >= 64) {
        if (measuring) latencies.push(performance.now() - started)
        send()
      }
    })
    socket.on("error", () => errors++)
    send()
  }
  await counted(() => latencies.length, (open) => (measuring = open))
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  done({
    units: latencies.length,
    unit: "round trips",
    rate: latencies.length / seconds,
    p50: at(0.5),
    p99: at(0.99),
    errors
  })
}

/** N loops of connect, send 100 bytes, half-close, read to EOF, close. */
const churn = async (loops: number) => {
  let cycles = 0
  let errors = 0
  const deadline = Date.now() + (warmup + seconds) * 1000
  const payload = pattern(0, 100, 1)
  const cycle = (): Promise<void> =>
    new Promise((resolve) => {
      const socket = net.connect({ host, port, allowHalfOpen: true }, () => socket.end(payload))
      let received = 0
      socket.on("data", (data: Buffer) => (received += data.length))
      socket.on("end", () => {
        if (received === 100) cycles++
        else errors++
        socket.destroy()
        resolve()
      })
      socket.on("error", () => {
        errors++
        socket.destroy()
        resolve()
      })
    })
  const loopsDone = Promise.all(Array.from({ length: loops }, async () => {
    while (Date.now() < deadline) await cycle()
  }))
  const units = await counted(() => cycles)
  await loopsDone
  done({ units, unit: "connections", rate: units / seconds, errors })
}

/** N peers that write as fast as the kernel takes it and never read. */
const stalled = async (connections: number) => {
  let pushed = 0
  const sockets = await Promise.all(Array.from({ length: connections }, connect))
  const chunk = Buffer.alloc(64 * 1024, 1)
  const timer = setInterval(() => {
    for (const socket of sockets) {
      // Only hand Node what the kernel took: the client itself stays small.
      if (socket.writableLength < chunk.length) {
        socket.write(chunk)
        pushed += chunk.length
      }
    }
  }, 1)
  process.stdout.write(JSON.stringify({ ready: true }) + "\n")
  await new Promise((r) => setTimeout(r, seconds * 1000))
  clearInterval(timer)
  done({ units: pushed, unit: "bytes pushed", rate: pushed / seconds })
}

/** N connections opened and held silent. */
const idle = async (connections: number) => {
  const sockets: Array<net.Socket> = []
  for (let i = 0; i < connections; i += 200) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(200, connections - i) }, connect))))
  }
  process.stdout.write(JSON.stringify({ ready: true }) + "\n")
  await new Promise((r) => setTimeout(r, seconds * 1000))
  done({ units: sockets.length, unit: "connections", rate: 0 })
}

const modes: Record<Mode, (n: number) => Promise<void>> = { stream, rtt, churn, stalled, idle }
const defaults: Record<Mode, number> = { stream: 16, rtt: 50, churn: 32, stalled: 50, idle: 10_000 }
const run = modes[mode]
if (run === undefined) {
  console.error(`unknown mode ${mode}; one of ${Object.keys(modes).join(", ")}`)
  process.exit(2)
}
// A hard stop whatever happens: a bench never hangs.
setTimeout(() => done({ error: "hard deadline" }), (warmup + seconds + 30) * 1000).unref()
run(Number(connectionsText ?? defaults[mode])).catch((error: Error) => done({ error: error.message }))
