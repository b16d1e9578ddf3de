/**
 * One step at `serve`'s start, for glibc's malloc (Linux): stop it from giving the top of its heap
 * back to the kernel after every garbage collection under streaming load.
 *
 * Why. Node reads each socket into a fresh 64 KiB buffer from malloc; V8 frees a batch of them at
 * each collection, about 32 MiB at a time under the stream bench. Those buffers sit at the top of
 * the heap, so each batch freed leaves that much free there; above glibc's trim threshold (128 KiB
 * by default) `free` returns it with `brk`, and the next batch maps it again, one page fault per
 * 4 KiB the kernel copies into. Measured (`strace`, 16 streams): about 2,000 `brk` calls over
 * 400 MB, 90-150 minor faults per MB streamed, a fifth of the server's time in the kernel.
 *
 * How. Node has no `mallopt`. But glibc raises its thresholds by itself ("dynamic mmap threshold",
 * mallopt(3)): when a block it had mapped on its own (one above the mmap threshold) is freed, the
 * mmap threshold becomes that block's size and the trim threshold twice that, up to 32 MiB and 64
 * MiB on 64-bit systems. Freeing one 32 MiB block once sets both; this step allocates it and
 * lets it go, and V8 frees it at its next collection. The block is never written, so no page of it
 * is ever resident. Measured: faults fall from 90-150 to 0-5 per MB.
 *
 * The price, both halves of it. Up to 64 MiB free at the top of a heap stays mapped instead of
 * going back to the kernel. And every allocation up to 32 MiB now comes from the heap rather than
 * a mapping of its own, so memory freed below a block still in use stays resident until that
 * block goes too (glibc's usual fragmentation, over a wider range of sizes): RSS after a burst is
 * not bounded by 64 MiB. For this server, measured: idle connections cost 7.4 KiB of RSS each
 * instead of 6.8, and 50 peers that never read grow it as much as before (about 40 MiB).
 *
 * Where it does nothing. Other allocators (musl, jemalloc) ignore it; 32-bit glibc caps the
 * dynamic threshold at 512 KiB, below this block, so it does not adjust; and glibc does not adjust
 * when the thresholds were set explicitly (`MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_` or
 * `GLIBC_TUNABLES`): an operator who wants the heap trimmed sooner sets `MALLOC_TRIM_THRESHOLD_`
 * and wins. Only the command line does this; an application that embeds the server owns its
 * process's allocator.
 *
 * @internal
 */
export const relaxTrim = (): void => {
  // Uninitialized (malloc, not calloc): no page is touched. Under 32 MiB with the chunk header,
  // or glibc would not adjust. Dropped at once; freed at V8's next collection.
  Buffer.allocUnsafeSlow(largestDynamicThreshold - 8 * 1024)
}

/** glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems: 4 MiB * sizeof(long). */
const largestDynamicThreshold = 32 * 1024 * 1024
