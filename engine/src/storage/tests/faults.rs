//! Fault injection and crash simulation with [`MemStorage`]: failed fsyncs poison, failed
//! renames leave the old manifest in force, a power loss loses exactly what was not
//! fsynced, torn writes are cut from the log on recovery.

use super::super::memory::{Fault, MemStorage};
use super::super::segment::{SectionSpec, Segment, write_segment};
use super::super::wal::{WalRecord, WalTail, WalWriter, read_wal_file};
use super::super::{Manifest, Storage, StorageError, write_file_atomic};
use super::sample_manifest;

#[test]
fn failed_fsync_poisons_the_storage_for_good() {
    let storage = MemStorage::new();
    storage.inject(Fault::FailSync { nth: 1 });
    let mut f = storage.create("a.dat").unwrap();
    f.write_all(b"data").unwrap();
    assert!(matches!(f.sync(), Err(StorageError::Io { .. })));
    // Never retried, never ignored: every later write, sync, rename, create fails.
    assert!(matches!(f.sync(), Err(StorageError::Poisoned { .. })));
    assert!(matches!(
        f.write_all(b"x"),
        Err(StorageError::Poisoned { .. })
    ));
    assert!(matches!(
        storage.create("b.dat"),
        Err(StorageError::Poisoned { .. })
    ));
    assert!(matches!(
        storage.rename("a.dat", "c.dat"),
        Err(StorageError::Poisoned { .. })
    ));
    assert!(matches!(
        storage.sync_dir(),
        Err(StorageError::Poisoned { .. })
    ));
    assert!(storage.poison().is_poisoned());
    // Reads still work, and a reopened handle (a new process) is not poisoned.
    assert_eq!(storage.read("a.dat").unwrap(), b"data");
    let reopened = storage.reopen();
    reopened.create("b.dat").unwrap().sync().unwrap();
}

#[test]
fn failed_directory_fsync_poisons() {
    let storage = MemStorage::new();
    storage.inject(Fault::FailSyncDir { nth: 1 });
    assert!(write_file_atomic(&storage, "a.dat", b"x").is_err());
    assert!(matches!(
        write_file_atomic(&storage, "b.dat", b"x"),
        Err(StorageError::Poisoned { .. })
    ));
}

#[test]
fn failed_wal_fsync_poisons_the_writer() {
    let storage = MemStorage::new();
    let mut wal = WalWriter::create(&storage, 1).unwrap();
    wal.append(&WalRecord::Delete { id: 1 }).unwrap();
    storage.inject(Fault::FailSync { nth: 1 });
    assert!(wal.sync().is_err());
    assert!(matches!(wal.sync(), Err(StorageError::Poisoned { .. })));
    assert!(matches!(
        wal.append(&WalRecord::Delete { id: 2 }),
        Err(StorageError::Poisoned { .. })
    ));
}

#[test]
fn failed_rename_leaves_the_old_manifest_in_force() {
    let storage = MemStorage::new();
    let old = sample_manifest(1);
    old.publish(&storage).unwrap();
    let mut new = sample_manifest(2);
    new.segments.pop();
    storage.inject_for(Fault::FailRename { nth: 1 }, Some("MANIFEST"));
    assert!(new.publish(&storage).is_err());
    assert_eq!(Manifest::load(&storage).unwrap(), old);
    // Also after a power loss right after the failure.
    let restarted = storage.crash_power_loss();
    assert_eq!(Manifest::load(&restarted).unwrap(), old);
    // The next publication (a fresh handle) works and cleans the temp file by replacing it.
    new.publish(&restarted).unwrap();
    assert_eq!(Manifest::load(&restarted).unwrap(), new);
}

#[test]
fn every_failure_point_of_a_manifest_publication_keeps_old_or_new() {
    // Fail each write / sync / rename / directory sync in turn, then lose power: the
    // manifest found afterwards is the old one or (only once the rename happened) the new.
    let faults = [
        Fault::FailWrite { nth: 1 },
        Fault::TearWrite { nth: 1, keep: 7 },
        Fault::FailSync { nth: 1 },
        Fault::FailRename { nth: 1 },
        Fault::FailSyncDir { nth: 1 },
    ];
    for fault in faults {
        let storage = MemStorage::new();
        let old = sample_manifest(1);
        old.publish(&storage).unwrap();
        let new = sample_manifest(2);
        storage.inject(fault.clone());
        assert!(new.publish(&storage).is_err(), "{fault:?}");
        let found = Manifest::load(&storage.crash_power_loss()).unwrap();
        assert_eq!(found, old, "{fault:?}");
    }
}

#[test]
fn power_loss_drops_exactly_what_was_not_fsynced() {
    let storage = MemStorage::new();
    // Fully durable: data synced and name synced.
    let mut f = storage.create("durable.dat").unwrap();
    f.write_all(b"kept").unwrap();
    f.sync().unwrap();
    f.write_all(b" + lost tail").unwrap();
    drop(f);
    storage.sync_dir().unwrap();
    // Name durable, data never synced.
    storage
        .create("empty.dat")
        .unwrap()
        .write_all(b"lost")
        .unwrap();
    storage.sync_dir().unwrap();
    // A rename never made durable.
    write_file_atomic(&storage, "renamed.dat", b"v1").unwrap();
    let mut f = storage.create("renamed.dat.tmp").unwrap();
    f.write_all(b"v2").unwrap();
    f.sync().unwrap();
    storage.rename("renamed.dat.tmp", "renamed.dat").unwrap();
    // Data synced but the name never made durable.
    let mut g = storage.create("unnamed.dat").unwrap();
    g.write_all(b"x").unwrap();
    g.sync().unwrap();

    let after = storage.crash_power_loss();
    assert_eq!(after.read("durable.dat").unwrap(), b"kept");
    assert!(!after.exists("unnamed.dat").unwrap());
    assert_eq!(after.read("empty.dat").unwrap(), b"");
    assert_eq!(after.read("renamed.dat").unwrap(), b"v1");
    // Handles from before the crash are dead.
    assert!(storage.read("durable.dat").is_err());
    assert!(f.write_all(b"late").is_err());
}

#[test]
fn process_crash_keeps_written_data() {
    let storage = MemStorage::new();
    let mut f = storage.create("a.dat").unwrap();
    f.write_all(b"written, not synced").unwrap();
    let after = storage.crash_process();
    assert_eq!(after.read("a.dat").unwrap(), b"written, not synced");
}

#[test]
fn segment_is_invisible_until_published_and_survives_once_synced() {
    let storage = MemStorage::new();
    let codes = vec![7u8; 300];
    let specs = [(SectionSpec::of::<u8>("codes", 300), codes.as_slice())];
    // A failed fsync of the segment: nothing under the final name.
    storage.inject_for(Fault::FailSync { nth: 1 }, Some("seg"));
    assert!(write_segment(&storage, "seg.vseg", 1, &specs).is_err());
    assert!(!storage.exists("seg.vseg").unwrap());
    // Written fine: survives a power loss.
    let storage = storage.crash_power_loss();
    write_segment(&storage, "seg.vseg", 1, &specs).unwrap();
    let storage = storage.crash_power_loss();
    let seg = Segment::open(&storage, "seg.vseg", true).unwrap();
    assert_eq!(seg.typed::<u8>("codes").unwrap(), codes.as_slice());
}

/// A log with one synced commit, then a second commit whose write was torn after 50 bytes.
fn torn_log() -> (MemStorage, Vec<WalRecord>) {
    let storage = MemStorage::new();
    let mut wal = WalWriter::create(&storage, 7).unwrap();
    let batch1 = vec![
        WalRecord::Add {
            id: 1,
            vector: vec![1, 2, 3],
            name: Some("a.jpg".into()),
        },
        WalRecord::Commit { seq: 1 },
    ];
    for r in &batch1 {
        wal.append(r).unwrap();
    }
    wal.sync().unwrap();
    wal.append(&WalRecord::Add {
        id: 2,
        vector: vec![9; 100],
        name: None,
    })
    .unwrap();
    wal.append(&WalRecord::Commit { seq: 2 }).unwrap();
    storage.inject(Fault::TearWrite { nth: 1, keep: 50 });
    assert!(wal.sync().is_err());
    assert!(matches!(wal.sync(), Err(StorageError::Poisoned { .. })));
    (storage, batch1)
}

#[test]
fn torn_wal_write_is_cut_at_recovery_and_synced_commits_survive() {
    for power_loss in [false, true] {
        let (storage, batch1) = torn_log();
        let restarted = if power_loss {
            storage.crash_power_loss()
        } else {
            storage.crash_process()
        };
        let recovery = read_wal_file(&restarted, 7).unwrap();
        assert_eq!(recovery.records, batch1);
        if !power_loss {
            assert!(matches!(recovery.tail, WalTail::Torn { .. }));
            assert_eq!(recovery.file_len, recovery.committed_len + 50);
        }
        let mut wal = WalWriter::open_recovered(&restarted, &recovery).unwrap();
        wal.append(&WalRecord::Delete { id: 1 }).unwrap();
        wal.append(&WalRecord::Commit { seq: 3 }).unwrap();
        wal.sync().unwrap();
        let again = read_wal_file(&restarted.crash_power_loss(), 7).unwrap();
        assert_eq!(again.tail, WalTail::Clean);
        assert_eq!(again.records.len(), 4);
        assert_eq!(again.records[3], WalRecord::Commit { seq: 3 });
    }
}

#[test]
fn unsynced_wal_records_are_lost_on_power_loss_only() {
    let storage = MemStorage::new();
    let mut wal = WalWriter::create(&storage, 1).unwrap();
    wal.append(&WalRecord::Delete { id: 5 }).unwrap();
    wal.append(&WalRecord::Commit { seq: 1 }).unwrap();
    wal.sync().unwrap();
    wal.append(&WalRecord::Delete { id: 6 }).unwrap();
    wal.append(&WalRecord::Commit { seq: 2 }).unwrap();
    // Buffered records reach the file (but not the disk) on sync; emulate "written, not
    // synced" by failing the fsync of the second batch.
    storage.inject(Fault::FailSync { nth: 1 });
    assert!(wal.sync().is_err());
    assert_eq!(
        read_wal_file(&storage.crash_process(), 1)
            .unwrap()
            .records
            .len(),
        4
    );
    assert_eq!(
        read_wal_file(&storage.crash_power_loss(), 1)
            .unwrap()
            .records
            .len(),
        2
    );
}

#[test]
fn torn_power_loss_keeps_every_synced_commit_and_only_whole_commits() {
    // 20 commits, fsync after the first 8 only; then lose power with a random torn tail.
    let commit = |i: u64| {
        vec![
            WalRecord::Add {
                id: i,
                vector: vec![i as u8; 10 + i as usize],
                name: None,
            },
            WalRecord::Delete { id: i / 2 },
            WalRecord::Commit { seq: i },
        ]
    };
    let all: Vec<WalRecord> = (0..20).flat_map(commit).collect();
    let mut torn_tails = 0;
    for seed in 0..64 {
        let storage = MemStorage::new();
        let mut wal = WalWriter::create(&storage, 1).unwrap();
        for i in 0..20 {
            for r in commit(i) {
                wal.append(&r).unwrap();
            }
            if i == 7 {
                wal.sync().unwrap();
            }
        }
        // Push the rest to the file without an fsync (a process would be mid-way here).
        storage.inject(Fault::FailSync { nth: 1 });
        assert!(wal.sync().is_err());
        let recovery = read_wal_file(&storage.crash_power_loss_torn(seed), 1).unwrap();
        let n = recovery.records.len();
        assert!(n >= 8 * 3, "seed {seed}: synced commits lost");
        assert_eq!(n % 3, 0, "seed {seed}: partial commit visible");
        assert_eq!(recovery.records, &all[..n]);
        if matches!(recovery.tail, WalTail::Torn { .. }) {
            torn_tails += 1;
        }
    }
    assert!(torn_tails > 0, "no seed produced a torn record");
}
