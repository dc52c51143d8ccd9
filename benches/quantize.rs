//! `cargo bench --bench quantize`: the quantizers' speed against a native f32 copy, one thread
//! and all threads, printed as a table (the same measurement as `lpsim bench quantize`).

fn main() {
    for threads in [1, rayon::current_num_threads()] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        let rows = pool
            .install(|| lpsim::bench::bench_quantize(1 << 24, 5))
            .expect("bench formats fit in f32");
        println!("threads = {threads}");
        for r in rows {
            println!(
                "{:<24} {:>14.4e} elem/s {:>7.3}x native",
                r.name, r.elements_per_s, r.ratio_to_native
            );
        }
    }
}
