//! [`FsStorage`]: the real-file-system implementation of [`Storage`] (std::fs + memmap2,
//! `File::try_lock` for the writer lock, `sync_all` on files and on the directory).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::bytes::FileBytes;
use super::directory::{DirLock, LOCK_FILE, Poison, Storage, WritableFile, validate_name};
use super::error::{StorageError, StorageResult};

/// A database directory on the real file system.
#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
    poison: Arc<Poison>,
}

impl FsStorage {
    /// Opens an existing directory (it must exist and be a directory).
    pub fn open(root: impl Into<PathBuf>) -> StorageResult<FsStorage> {
        let root = root.into();
        let meta = std::fs::metadata(&root).map_err(|e| StorageError::io(&root, e))?;
        if !meta.is_dir() {
            return Err(StorageError::io(
                &root,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        Ok(FsStorage {
            poison: Arc::new(Poison::new(root.clone())),
            root,
        })
    }

    /// Creates the directory (and its parents) if needed, fsyncs its parent, and opens it.
    pub fn create_dir(root: impl Into<PathBuf>) -> StorageResult<FsStorage> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| StorageError::io(&root, e))?;
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_directory(parent)?;
        }
        FsStorage::open(root)
    }

    fn checked_path(&self, name: &str) -> StorageResult<PathBuf> {
        validate_name(name)?;
        Ok(self.root.join(name))
    }
}

fn sync_directory(dir: &Path) -> StorageResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

impl Storage for FsStorage {
    fn root(&self) -> &Path {
        &self.root
    }

    fn create(&self, name: &str) -> StorageResult<Box<dyn WritableFile>> {
        self.poison.check()?;
        let path = self.checked_path(name)?;
        let file = File::create(&path).map_err(|e| StorageError::io(&path, e))?;
        Ok(Box::new(FsFile {
            file,
            path,
            name: name.to_string(),
            len: 0,
            poison: self.poison.clone(),
        }))
    }

    fn open_append(&self, name: &str, len: u64) -> StorageResult<Box<dyn WritableFile>> {
        self.poison.check()?;
        let path = self.checked_path(name)?;
        let open = || -> std::io::Result<File> {
            let mut file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(len)?;
            file.seek(SeekFrom::Start(len))?;
            Ok(file)
        };
        let file = open().map_err(|e| StorageError::io(&path, e))?;
        Ok(Box::new(FsFile {
            file,
            path,
            name: name.to_string(),
            len,
            poison: self.poison.clone(),
        }))
    }

    fn read(&self, name: &str) -> StorageResult<Vec<u8>> {
        let path = self.checked_path(name)?;
        std::fs::read(&path).map_err(|e| StorageError::io(&path, e))
    }

    fn map(&self, name: &str) -> StorageResult<FileBytes> {
        let path = self.checked_path(name)?;
        let file = File::open(&path).map_err(|e| StorageError::io(&path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(&path, e))?
            .len();
        if len == 0 {
            // A zero-length file cannot be mapped; its contents are simply empty.
            return Ok(FileBytes::copy_from(&[]));
        }
        // SAFETY: the storage layer only maps files that are immutable once published
        // (segments, deletes files, the model): nothing truncates or rewrites them while a
        // mapping exists (they are replaced by renaming new files over other names and
        // removed only when no snapshot uses them; unlinking keeps the mapped inode alive).
        // The parsers check every offset against the mapped length before reading.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| StorageError::io(&path, e))?;
        Ok(FileBytes::from_mmap(map))
    }

    fn file_len(&self, name: &str) -> StorageResult<u64> {
        let path = self.checked_path(name)?;
        Ok(std::fs::metadata(&path)
            .map_err(|e| StorageError::io(&path, e))?
            .len())
    }

    fn exists(&self, name: &str) -> StorageResult<bool> {
        let path = self.checked_path(name)?;
        path.try_exists().map_err(|e| StorageError::io(&path, e))
    }

    fn rename(&self, from: &str, to: &str) -> StorageResult<()> {
        self.poison.check()?;
        let from_path = self.checked_path(from)?;
        let to_path = self.checked_path(to)?;
        std::fs::rename(&from_path, &to_path).map_err(|e| StorageError::io(&to_path, e))
    }

    fn remove(&self, name: &str) -> StorageResult<()> {
        self.poison.check()?;
        let path = self.checked_path(name)?;
        std::fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))
    }

    fn list(&self) -> StorageResult<Vec<String>> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| StorageError::io(&self.root, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(&self.root, e))?;
            let is_file = entry
                .file_type()
                .map_err(|e| StorageError::io(entry.path(), e))?
                .is_file();
            // Names that are not UTF-8 or not plain names are not ours: ignore them.
            if let Some(name) = entry.file_name().to_str()
                && is_file
                && validate_name(name).is_ok()
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self) -> StorageResult<()> {
        self.poison.check()?;
        let result = sync_directory(&self.root);
        if result.is_err() {
            self.poison.set();
        }
        result
    }

    fn lock(&self) -> StorageResult<DirLock> {
        let path = self.root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        // An advisory flock-style lock on the open file description, released when the
        // file is closed (also when the process dies, so a crash never leaves it held).
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StorageError::Locked { path }),
            Err(std::fs::TryLockError::Error(e)) => return Err(StorageError::io(&path, e)),
        }
        // For people looking at the directory: who holds the lock. Not read by the engine.
        let note = format!("vladdb writer lock, pid {}\n", std::process::id());
        let write_note = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.write_all(note.as_bytes())
        };
        write_note(&mut file).map_err(|e| StorageError::io(&path, e))?;
        Ok(DirLock::new(Box::new(FsLockGuard { file })))
    }

    fn poison(&self) -> &Poison {
        &self.poison
    }
}

/// Holds the locked `LOCK` file; unlocks explicitly when dropped. (Closing alone is not
/// enough to release promptly: a child process forked by another thread at that moment
/// shares the open file description until it execs, and the lock would live on with it.)
struct FsLockGuard {
    file: File,
}

impl Drop for FsLockGuard {
    fn drop(&mut self) {
        // Nothing useful can be done with an error here; closing the file releases the lock
        // in any case once no process shares the descriptor any more.
        let _ = self.file.unlock();
    }
}

/// A file on disk being written.
#[derive(Debug)]
struct FsFile {
    file: File,
    path: PathBuf,
    name: String,
    len: u64,
    poison: Arc<Poison>,
}

impl WritableFile for FsFile {
    fn write_all(&mut self, buf: &[u8]) -> StorageResult<()> {
        self.poison.check()?;
        self.file
            .write_all(buf)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.len += buf.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> StorageResult<()> {
        self.poison.check()?;
        let result = self
            .file
            .sync_all()
            .map_err(|e| StorageError::io(&self.path, e));
        if result.is_err() {
            // Never retry: the kernel may have dropped the dirty pages already.
            self.poison.set();
        }
        result
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn name(&self) -> &str {
        &self.name
    }
}
