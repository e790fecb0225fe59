//! The disk's floor: what one durable append costs here (a 4 KiB write and fdatasync),
//! which is what one commit of the durable store waits for at least.

use std::{io::Write, path::Path, time::Instant};

use super::load::{Measurement, new_histogram};

pub fn fsync_floor(dir: &Path, rounds: usize) -> std::io::Result<Measurement> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5a_u8; 4096];
    let mut latency = new_histogram();
    let began = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        let _ = latency.record(t.elapsed().as_nanos() as u64);
    }
    let elapsed = began.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(Measurement {
        clients: 1,
        operations: rounds as u64,
        errors: 0,
        first_error: None,
        elapsed,
        latency,
    })
}
