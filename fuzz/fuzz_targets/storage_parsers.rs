//! Fuzz target: every storage parser on the same bytes (manifest, segment container with
//! all its sections, log file, log record payload, deletes file). Must never panic.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use vladdb::storage::wal::{WalRecord, read_wal};
use vladdb::storage::{FileBytes, Manifest, Segment, Tombstones};

fuzz_target!(|data: &[u8]| {
    let p = Path::new("f");
    let _ = Manifest::decode(data, p);
    let _ = read_wal(data, p, None);
    let _ = WalRecord::decode_payload(data, p);
    let _ = Tombstones::decode(data, p, None);
    if let Ok(seg) = Segment::from_bytes(FileBytes::copy_from(data), PathBuf::from("s")) {
        let _ = seg.verify();
        for info in seg.sections().to_vec() {
            let _ = seg.typed::<u64>(&info.name);
            let _ = seg.typed::<f32>(&info.name);
            let _ = seg.bytes_of(&info.name);
        }
    }
});
