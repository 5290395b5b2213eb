//! Fuzzes `tillmesh_fuzz::legacy_batch`: see that function for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(init: tillmesh_fuzz::init(), |data: &[u8]| tillmesh_fuzz::legacy_batch(data));
