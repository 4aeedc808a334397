//! The process allocator: mimalloc. The proxy allocates and frees many small objects per
//! request on several threads; glibc's malloc spent about 10% of the proxy's CPU time in the
//! benchmark (`bench/proxy.sh`, perf), mostly in `malloc_consolidate` and `_int_free`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
