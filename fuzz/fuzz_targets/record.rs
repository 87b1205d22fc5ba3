//! Any bytes as a record on an internal topic (single-object Avro of any
//! record type and schema version): decoding never panics, and what it
//! accepts encodes and decodes to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::Codec;

fuzz_target!(|bytes: &[u8]| {
    let codec = Codec::new();
    if let Ok(record) = codec.decode(bytes) {
        let again = codec
            .decode(&codec.encode(&record).expect("a decoded record encodes"))
            .expect("an encoded record decodes");
        assert_eq!(again, record);
    }
});
