//! Request ids: UUIDv7 (time-ordered, so logs sort by time) without a system call per request.
//!
//! `Uuid::now_v7()` asks the OS for random bytes on every call (a `getrandom` system call each
//! time, seen in `strace` on the request path). The random part here comes from a per-thread
//! xorshift generator seeded once from the OS; ids stay unique (74 random bits per millisecond)
//! but are not secrets and must never be used as such.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // One OS-random value per thread; never zero (xorshift's fixed point).
    (Uuid::new_v4().as_u128() as u64) | 1
}

fn next() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

/// A fresh UUIDv7.
pub fn new_v7() -> Uuid {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&next().to_le_bytes());
    random[8..].copy_from_slice(&next().to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_unique_and_time_ordered() {
        let ids: Vec<Uuid> = (0..10_000).map(|_| new_v7()).collect();
        assert!(ids.iter().all(|u| u.get_version_num() == 7));
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let first_ms = ids[0].get_timestamp().unwrap().to_unix();
        let last_ms = ids[ids.len() - 1].get_timestamp().unwrap().to_unix();
        assert!(last_ms >= first_ms);
    }
}
