//! The storage interface itself, run against both implementations.

use super::super::{
    FsStorage, LOCK_FILE, MemStorage, Storage, StorageError, remove_temp_files, validate_name,
    write_file_atomic,
};

fn exercise(storage: &dyn Storage) {
    assert!(storage.list().unwrap().is_empty() || storage.list().unwrap() == [LOCK_FILE]);
    let mut f = storage.create("a.dat").unwrap();
    f.write_all(b"hello ").unwrap();
    f.write_all(b"world").unwrap();
    assert_eq!(f.len(), 11);
    f.sync().unwrap();
    drop(f);
    assert_eq!(storage.read("a.dat").unwrap(), b"hello world");
    assert_eq!(&*storage.map("a.dat").unwrap(), b"hello world");
    assert_eq!(storage.file_len("a.dat").unwrap(), 11);
    assert!(storage.exists("a.dat").unwrap());
    assert!(!storage.exists("b.dat").unwrap());

    // open_append truncates to the given length and appends there.
    let mut f = storage.open_append("a.dat", 5).unwrap();
    f.write_all(b"!").unwrap();
    f.sync().unwrap();
    drop(f);
    assert_eq!(storage.read("a.dat").unwrap(), b"hello!");

    storage.rename("a.dat", "b.dat").unwrap();
    storage.sync_dir().unwrap();
    assert!(!storage.exists("a.dat").unwrap());
    assert_eq!(storage.read("b.dat").unwrap(), b"hello!");

    // An empty file maps to empty bytes.
    storage.create("empty.dat").unwrap().sync().unwrap();
    assert!(storage.map("empty.dat").unwrap().is_empty());

    write_file_atomic(storage, "c.dat", b"v1").unwrap();
    write_file_atomic(storage, "c.dat", b"v2").unwrap();
    assert_eq!(storage.read("c.dat").unwrap(), b"v2");
    storage.create("d.dat.tmp").unwrap();
    assert_eq!(remove_temp_files(storage).unwrap(), 1);

    let names: Vec<String> = storage
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n != LOCK_FILE)
        .collect();
    assert_eq!(names, ["b.dat", "c.dat", "empty.dat"]);
    storage.remove("b.dat").unwrap();
    assert!(matches!(
        storage.read("b.dat"),
        Err(StorageError::Io { ref path, .. }) if path.ends_with("b.dat")
    ));
    // Names must be plain.
    for bad in ["", "../x", "a/b", ".hidden", "x\0y"] {
        assert!(matches!(
            storage.create(bad),
            Err(StorageError::InvalidName(_))
        ));
    }
}

#[test]
fn fs_storage_basic_operations() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::create_dir(dir.path().join("db")).unwrap();
    exercise(&storage);
    assert!(storage.map("c.dat").unwrap().is_mapped());
}

#[test]
fn mem_storage_basic_operations() {
    exercise(&MemStorage::new());
}

#[test]
fn fs_open_requires_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    assert!(FsStorage::open(dir.path().join("missing")).is_err());
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    assert!(FsStorage::open(dir.path().join("file")).is_err());
}

#[test]
fn fs_lock_excludes_a_second_writer_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let first = FsStorage::create_dir(dir.path()).unwrap();
    let second = FsStorage::open(dir.path()).unwrap();
    let guard = first.lock().unwrap();
    let err = second.lock().unwrap_err();
    assert!(matches!(err, StorageError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("LOCK"), "{err}");
    drop(guard);
    let _again = second.lock().unwrap();
}

#[test]
fn mem_lock_excludes_a_second_writer_and_dies_with_the_process() {
    let storage = MemStorage::new();
    let other = storage.reopen();
    let guard = storage.lock().unwrap();
    assert!(matches!(other.lock(), Err(StorageError::Locked { .. })));
    drop(guard);
    let held = other.lock().unwrap();
    // A crash releases the lock (the process holding it is gone).
    let restarted = other.crash_process();
    let _lock = restarted.lock().unwrap();
    drop(held); // dropping the dead process's guard must not release the new holder's lock
    assert!(matches!(
        restarted.reopen().lock(),
        Err(StorageError::Locked { .. })
    ));
}

#[test]
fn names_are_validated() {
    for good in ["MANIFEST", "seg-01.vseg", "wal-0000000000000001.log", "a_b"] {
        validate_name(good).unwrap();
    }
    for bad in ["", ".", "..", "a b", "é", "a/b", &"x".repeat(256)] {
        assert!(validate_name(bad).is_err(), "{bad:?}");
    }
}

/// Run as a child process by `fs_lock_excludes_a_second_process`: tries to take the lock of
/// the directory in `VLADDB_LOCK_TEST_DIR` and reports the outcome through its exit code.
#[test]
#[ignore = "helper run as a child process by another test"]
fn lock_child_process() {
    let Ok(dir) = std::env::var("VLADDB_LOCK_TEST_DIR") else {
        return;
    };
    let storage = FsStorage::open(dir).unwrap();
    match storage.lock() {
        Ok(_) => std::process::exit(10),
        Err(StorageError::Locked { .. }) => std::process::exit(11),
        Err(_) => std::process::exit(12),
    }
}

#[test]
fn fs_lock_excludes_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::create_dir(dir.path()).unwrap();
    let child = || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "storage::tests::directory::lock_child_process",
                "--ignored",
                "--nocapture",
            ])
            .env("VLADDB_LOCK_TEST_DIR", dir.path())
            .output()
            .unwrap()
            .status
            .code()
    };
    let guard = storage.lock().unwrap();
    assert_eq!(child(), Some(11), "a second process must see the lock");
    drop(guard);
    assert_eq!(child(), Some(10), "the lock is free again");
}
