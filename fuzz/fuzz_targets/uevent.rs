#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ap_fuzz::uevent(data));
