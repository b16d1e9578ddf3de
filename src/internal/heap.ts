/**
 * One step at `serve`'s start, for glibc's malloc (Linux): stop it from giving the top of its heap
 * back to the kernel after every garbage collection under streaming load.
 *
 * Why. Node reads each socket into a fresh 64 KiB buffer from malloc; V8 frees a batch of them at
 * each collection, tens of MiB at a time under streaming load. Those buffers sit at the top of
 * the heap, so each batch freed leaves that much free there; above glibc's trim threshold (128 KiB
 * by default) `free` returns it with `brk`, and the next batch maps it again, one page fault per
 * 4 KiB the kernel copies into: a `brk` and a run of faults at every collection, on the path of
 * every byte streamed (docs/benchmarks.md counts the faults per MB).
 *
 * How. Node has no `mallopt`. But glibc raises its thresholds by itself ("dynamic mmap threshold",
 * mallopt(3)): when a block it had mapped on its own (one above the mmap threshold) is freed, the
 * mmap threshold becomes that block's size and the trim threshold twice that, up to 32 MiB and 64
 * MiB on 64-bit systems. Freeing one 32 MiB block once sets both; this step allocates it and
 * lets it go, and V8 frees it at its next collection. The block is never written, so no page of it
 * is ever resident. The heap's top then stays mapped, and the faults stop.
 *
 * The price, both halves of it. Up to 64 MiB free at the top of a heap stays mapped instead of
 * going back to the kernel. And every allocation up to 32 MiB now comes from the heap rather than
 * a mapping of its own, so memory freed below a block still in use stays resident until that
 * block goes too (glibc's usual fragmentation, over a wider range of sizes): RSS after a burst is
 * not bounded by 64 MiB. For this server that shows as more RSS per idle connection (memory freed
 * while connections are set up stays mapped), not as more growth under peers that never read
 * (docs/benchmarks.md measures both).
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
