//! [`MemStorage`]: an in-memory [`Storage`] that simulates a disk for tests, with fault
//! injection (fail or tear the Nth write, fail the Nth fsync, directory fsync or rename) and
//! two kinds of crash: a *power loss* ([`MemStorage::crash_power_loss`]) keeps only what was
//! fsynced (file contents at their last `sync`, names at the last `sync_dir`; a variant
//! keeps a random torn prefix of unsynced appends), a *process
//! kill* ([`MemStorage::crash_process`]) keeps everything written (the page cache survives)
//! but invalidates every handle and releases the lock.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::bytes::FileBytes;
use super::directory::{DirLock, Poison, Storage, WritableFile, validate_name};
use super::error::{StorageError, StorageResult};

/// A fault to inject; `nth` counts matching operations from the injection on (1 = the next).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The nth `write_all` fails without writing anything.
    FailWrite { nth: u64 },
    /// The nth `write_all` writes only its first `keep` bytes, then fails.
    TearWrite { nth: u64, keep: usize },
    /// The nth file `sync` fails (and poisons the handle); the data stays unsynced.
    FailSync { nth: u64 },
    /// The nth `sync_dir` fails (and poisons the handle); names stay unsynced.
    FailSyncDir { nth: u64 },
    /// The nth `rename` fails and changes nothing.
    FailRename { nth: u64 },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Sync,
    SyncDir,
    Rename,
}

impl Fault {
    fn op(&self) -> Op {
        match self {
            Fault::FailWrite { .. } | Fault::TearWrite { .. } => Op::Write,
            Fault::FailSync { .. } => Op::Sync,
            Fault::FailSyncDir { .. } => Op::SyncDir,
            Fault::FailRename { .. } => Op::Rename,
        }
    }
}

struct PendingFault {
    fault: Fault,
    remaining: u64,
    /// Only operations on file names starting with this prefix count.
    prefix: Option<String>,
}

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Default)]
struct Disk {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    epoch: u64,
    next_token: u64,
    lock: Option<(u64, u64)>,
    faults: Vec<PendingFault>,
    fired: u64,
}

impl Disk {
    /// Counts `op` on `name` against the pending faults; returns the fault that fires now.
    fn trigger(&mut self, op: Op, name: &str) -> Option<Fault> {
        let mut fired = None;
        self.faults.retain_mut(|pending| {
            let matches = pending.fault.op() == op
                && pending
                    .prefix
                    .as_deref()
                    .is_none_or(|p| name.starts_with(p));
            if !matches || fired.is_some() {
                return true;
            }
            pending.remaining -= 1;
            if pending.remaining == 0 {
                fired = Some(pending.fault.clone());
                false
            } else {
                true
            }
        });
        if fired.is_some() {
            self.fired += 1;
        }
        fired
    }

    fn collect_garbage(&mut self) {
        let live: std::collections::HashSet<u64> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        self.inodes.retain(|id, _| live.contains(id));
    }
}

fn injected(what: &str) -> std::io::Error {
    std::io::Error::other(format!("injected fault: {what}"))
}

/// An in-memory database directory (one simulated disk, shared by its handles).
#[derive(Clone)]
pub struct MemStorage {
    disk: Arc<Mutex<Disk>>,
    epoch: u64,
    root: PathBuf,
    poison: Arc<Poison>,
}

impl std::fmt::Debug for MemStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStorage")
            .field("root", &self.root)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Default for MemStorage {
    fn default() -> Self {
        MemStorage::new()
    }
}

impl MemStorage {
    /// A new empty simulated disk and a handle to it.
    pub fn new() -> MemStorage {
        MemStorage::handle(Arc::new(Mutex::new(Disk::default())), 0)
    }

    fn handle(disk: Arc<Mutex<Disk>>, epoch: u64) -> MemStorage {
        let root = PathBuf::from("mem");
        MemStorage {
            disk,
            epoch,
            poison: Arc::new(Poison::new(root.clone())),
            root,
        }
    }

    /// Schedules `fault` for the nth matching operation on any file.
    pub fn inject(&self, fault: Fault) {
        self.inject_for(fault, None);
    }

    /// Schedules `fault`, counting only operations on names starting with `prefix` (for a
    /// rename, the destination name; `sync_dir` has no name and matches any prefix).
    pub fn inject_for(&self, fault: Fault, prefix: Option<&str>) {
        let nth = match &fault {
            Fault::FailWrite { nth }
            | Fault::TearWrite { nth, .. }
            | Fault::FailSync { nth }
            | Fault::FailSyncDir { nth }
            | Fault::FailRename { nth } => (*nth).max(1),
        };
        self.disk.lock().faults.push(PendingFault {
            fault,
            remaining: nth,
            prefix: prefix.map(str::to_string),
        });
    }

    /// How many injected faults have fired so far.
    pub fn faults_fired(&self) -> u64 {
        self.disk.lock().fired
    }

    /// Drops pending faults that have not fired.
    pub fn clear_faults(&self) {
        self.disk.lock().faults.clear();
    }

    /// Simulates a power loss: every file returns to its content at its last `sync`, the
    /// directory to its names at the last `sync_dir`. Old handles (and their open files and
    /// lock) become invalid; returns a fresh handle, as a restarted process would open.
    pub fn crash_power_loss(&self) -> MemStorage {
        let mut disk = self.disk.lock();
        disk.names = disk.durable_names.clone();
        for inode in disk.inodes.values_mut() {
            inode.data = inode.synced.clone();
        }
        disk.collect_garbage();
        self.restart(&mut disk)
    }

    /// Simulates a power loss during which the disk wrote *part* of what was pending: each
    /// file keeps its fsynced content plus, when it was appended to since its last `sync`, a
    /// pseudo-random prefix (chosen from `seed`) of the appended bytes — a torn tail.
    /// Directory changes not fsynced are lost, as in [`MemStorage::crash_power_loss`].
    pub fn crash_power_loss_torn(&self, seed: u64) -> MemStorage {
        let mut disk = self.disk.lock();
        disk.names = disk.durable_names.clone();
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut ids: Vec<u64> = disk.inodes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let Some(inode) = disk.inodes.get_mut(&id) else {
                continue;
            };
            let appended =
                inode.data.len() > inode.synced.len() && inode.data.starts_with(&inode.synced);
            if appended {
                let extra = inode.data.len() - inode.synced.len();
                let keep = inode.synced.len() + (state % (extra as u64 + 1)) as usize;
                inode.data.truncate(keep);
            } else {
                inode.data = inode.synced.clone();
            }
        }
        disk.collect_garbage();
        self.restart(&mut disk)
    }

    /// Simulates `kill -9` of the process: everything written stays (the OS keeps it), but
    /// old handles become invalid and the lock is released; returns a fresh handle.
    pub fn crash_process(&self) -> MemStorage {
        let mut disk = self.disk.lock();
        self.restart(&mut disk)
    }

    fn restart(&self, disk: &mut Disk) -> MemStorage {
        disk.epoch += 1;
        disk.lock = None;
        disk.faults.clear();
        MemStorage::handle(self.disk.clone(), disk.epoch)
    }

    /// Another handle to the same disk, as a second process would open (own poison flag).
    pub fn reopen(&self) -> MemStorage {
        let epoch = self.disk.lock().epoch;
        MemStorage::handle(self.disk.clone(), epoch)
    }

    /// Overwrites the bytes of `name` (durably), for corruption tests.
    pub fn set_contents(&self, name: &str, data: Vec<u8>) -> StorageResult<()> {
        let mut disk = self.live(name)?;
        let id = inode_of(&disk, name, &self.root)?;
        let inode = disk.inodes.entry(id).or_default();
        inode.synced = data.clone();
        inode.data = data;
        Ok(())
    }

    fn live(&self, name: &str) -> StorageResult<parking_lot::MutexGuard<'_, Disk>> {
        let disk = self.disk.lock();
        check_epoch(&disk, self.epoch, &self.root.join(name))?;
        Ok(disk)
    }
}

fn check_epoch(disk: &Disk, epoch: u64, path: &Path) -> StorageResult<()> {
    if disk.epoch != epoch {
        return Err(StorageError::io(
            path,
            std::io::Error::other("handle from before a simulated crash"),
        ));
    }
    Ok(())
}

fn inode_of(disk: &Disk, name: &str, root: &Path) -> StorageResult<u64> {
    disk.names.get(name).copied().ok_or_else(|| {
        StorageError::io(
            root.join(name),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        )
    })
}

impl Storage for MemStorage {
    fn root(&self) -> &Path {
        &self.root
    }

    fn create(&self, name: &str) -> StorageResult<Box<dyn WritableFile>> {
        self.poison.check()?;
        validate_name(name)?;
        let mut disk = self.live(name)?;
        let id = match disk.names.get(name) {
            Some(&id) => id,
            None => {
                let id = disk.next_inode;
                disk.next_inode += 1;
                disk.names.insert(name.to_string(), id);
                id
            }
        };
        disk.inodes.entry(id).or_default().data.clear();
        Ok(Box::new(MemFile {
            storage: self.clone(),
            inode: id,
            name: name.to_string(),
            len: 0,
        }))
    }

    fn open_append(&self, name: &str, len: u64) -> StorageResult<Box<dyn WritableFile>> {
        self.poison.check()?;
        validate_name(name)?;
        let mut disk = self.live(name)?;
        let id = inode_of(&disk, name, &self.root)?;
        let inode = disk.inodes.entry(id).or_default();
        let new_len = usize::try_from(len).map_err(|_| {
            StorageError::InvalidArgument(format!("length {len} does not fit in memory"))
        })?;
        inode.data.resize(new_len, 0);
        Ok(Box::new(MemFile {
            storage: self.clone(),
            inode: id,
            name: name.to_string(),
            len,
        }))
    }

    fn read(&self, name: &str) -> StorageResult<Vec<u8>> {
        validate_name(name)?;
        let disk = self.live(name)?;
        let id = inode_of(&disk, name, &self.root)?;
        Ok(disk
            .inodes
            .get(&id)
            .map(|i| i.data.clone())
            .unwrap_or_default())
    }

    fn map(&self, name: &str) -> StorageResult<FileBytes> {
        validate_name(name)?;
        let disk = self.live(name)?;
        let id = inode_of(&disk, name, &self.root)?;
        let data = disk
            .inodes
            .get(&id)
            .map(|i| i.data.as_slice())
            .unwrap_or(&[]);
        Ok(FileBytes::copy_from(data))
    }

    fn file_len(&self, name: &str) -> StorageResult<u64> {
        validate_name(name)?;
        let disk = self.live(name)?;
        let id = inode_of(&disk, name, &self.root)?;
        Ok(disk.inodes.get(&id).map_or(0, |i| i.data.len() as u64))
    }

    fn exists(&self, name: &str) -> StorageResult<bool> {
        validate_name(name)?;
        Ok(self.live(name)?.names.contains_key(name))
    }

    fn rename(&self, from: &str, to: &str) -> StorageResult<()> {
        self.poison.check()?;
        validate_name(from)?;
        validate_name(to)?;
        let mut disk = self.live(to)?;
        if disk.trigger(Op::Rename, to).is_some() {
            return Err(StorageError::io(self.root.join(to), injected("rename")));
        }
        let id = inode_of(&disk, from, &self.root)?;
        disk.names.remove(from);
        disk.names.insert(to.to_string(), id);
        disk.collect_garbage();
        Ok(())
    }

    fn remove(&self, name: &str) -> StorageResult<()> {
        self.poison.check()?;
        validate_name(name)?;
        let mut disk = self.live(name)?;
        inode_of(&disk, name, &self.root)?;
        disk.names.remove(name);
        disk.collect_garbage();
        Ok(())
    }

    fn list(&self) -> StorageResult<Vec<String>> {
        let disk = self.disk.lock();
        check_epoch(&disk, self.epoch, &self.root)?;
        Ok(disk.names.keys().cloned().collect())
    }

    fn sync_dir(&self) -> StorageResult<()> {
        self.poison.check()?;
        let mut disk = self.disk.lock();
        check_epoch(&disk, self.epoch, &self.root)?;
        if disk.trigger(Op::SyncDir, "").is_some() {
            self.poison.set();
            return Err(StorageError::io(&self.root, injected("directory fsync")));
        }
        disk.durable_names = disk.names.clone();
        disk.collect_garbage();
        Ok(())
    }

    fn lock(&self) -> StorageResult<DirLock> {
        let path = self.root.join(super::directory::LOCK_FILE);
        let mut disk = self.disk.lock();
        check_epoch(&disk, self.epoch, &path)?;
        if disk.lock.is_some_and(|(epoch, _)| epoch == disk.epoch) {
            return Err(StorageError::Locked { path });
        }
        let token = disk.next_token;
        disk.next_token += 1;
        disk.lock = Some((disk.epoch, token));
        Ok(DirLock::new(Box::new(MemLockGuard {
            disk: self.disk.clone(),
            token,
        })))
    }

    fn poison(&self) -> &Poison {
        &self.poison
    }
}

struct MemLockGuard {
    disk: Arc<Mutex<Disk>>,
    token: u64,
}

impl Drop for MemLockGuard {
    fn drop(&mut self) {
        let mut disk = self.disk.lock();
        if disk.lock.is_some_and(|(_, token)| token == self.token) {
            disk.lock = None;
        }
    }
}

/// A simulated file being written.
struct MemFile {
    storage: MemStorage,
    inode: u64,
    name: String,
    len: u64,
}

impl std::fmt::Debug for MemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemFile").field("name", &self.name).finish()
    }
}

impl WritableFile for MemFile {
    fn write_all(&mut self, buf: &[u8]) -> StorageResult<()> {
        self.storage.poison.check()?;
        let path = self.storage.root.join(&self.name);
        let mut disk = self.storage.live(&self.name)?;
        let fault = disk.trigger(Op::Write, &self.name);
        let keep = match fault {
            Some(Fault::TearWrite { keep, .. }) => keep.min(buf.len()),
            Some(_) => 0,
            None => buf.len(),
        };
        let inode = disk.inodes.entry(self.inode).or_default();
        inode.data.extend_from_slice(&buf[..keep]);
        self.len += keep as u64;
        if fault.is_some() {
            return Err(StorageError::io(path, injected("write")));
        }
        Ok(())
    }

    fn sync(&mut self) -> StorageResult<()> {
        self.storage.poison.check()?;
        let path = self.storage.root.join(&self.name);
        let mut disk = self.storage.live(&self.name)?;
        if disk.trigger(Op::Sync, &self.name).is_some() {
            self.storage.poison.set();
            return Err(StorageError::io(path, injected("fsync")));
        }
        let inode = disk.inodes.entry(self.inode).or_default();
        inode.synced = inode.data.clone();
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn name(&self) -> &str {
        &self.name
    }
}
