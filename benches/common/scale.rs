//! `BENCH_SCALE`: one factor on the number of calls every benchmark makes (1 when unset), so
//! a quick or a long run needs no edit. Shared by the bench targets (`#[path]`-included).

/// `BENCH_SCALE`, the factor applied to the number of calls (1 when unset).
pub fn scale_factor() -> f64 {
    match std::env::var("BENCH_SCALE") {
        Err(_) => 1.0,
        Ok(v) => v
            .parse::<f64>()
            .ok()
            .filter(|f| *f > 0.0 && f.is_finite())
            .unwrap_or_else(|| panic!("BENCH_SCALE={v:?}: not a positive number")),
    }
}

/// `count` × `BENCH_SCALE`, rounded to a multiple of `rounds` (at least one call per round).
pub fn scaled(count: usize, rounds: usize) -> usize {
    let per_round = (count as f64 * scale_factor() / rounds as f64).round() as usize;
    per_round.max(1) * rounds
}
