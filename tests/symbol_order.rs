//! The release binary's link order (`link/symbol-order.txt`, docs/performance.md, seventh
//! round) names functions by their mangled names, which carry a hash of the dependencies that
//! Cargo.lock pins. After a dependency change most names match nothing, the binary links in
//! nearly the default order and idles ~3.7 MiB higher (13.0–13.2 against 9.3–9.5 MiB without the
//! broker, eighth round), with no error anywhere. The list's header records the Cargo.lock it
//! was made for; this test says when the list must be made again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::path::Path;

/// FNV-1a, 64 bits, as scripts/symbol-order and build.rs compute it.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn the_hash_is_fnv1a() {
    // The published test vectors.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn the_symbol_order_list_was_made_for_this_cargo_lock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let list = std::fs::read_to_string(root.join("link/symbol-order.txt")).unwrap();
    let lock = std::fs::read(root.join("Cargo.lock")).unwrap();
    let expected = format!("# cargo-lock-fnv1a64: {:016x}", fnv1a64(&lock));
    let header: Vec<&str> = list.lines().take_while(|l| l.starts_with('#')).collect();
    assert!(
        header.contains(&expected.as_str()),
        "link/symbol-order.txt was made for another Cargo.lock ({header:?}, this one is \
         {expected:?}): run scripts/symbol-order (needs valgrind; it builds and profiles both \
         variants) and commit the new list"
    );
}
