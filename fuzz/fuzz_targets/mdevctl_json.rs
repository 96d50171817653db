#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ap_fuzz::mdevctl_json(data));
