//! Descriptor-set files: the triple `PREFIX_descriptors.npy` (uint8 or float32, [N, D]),
//! `PREFIX_offsets.npy` (uint64, [M + 1]: image `i` owns rows `offsets[i]..offsets[i+1]`)
//! and the optional `PREFIX_names.txt` (one image name per line), as in
//! `../shared/data/clipart-vlad`. The descriptors are memory-mapped, never copied.

use std::path::{Path, PathBuf};

use vladdb_codecs::encode::DescriptorSets;

use crate::error::{Error, Result};
use crate::vecfile::{VectorFile, read_npy_u64};

/// An opened descriptor-set triple.
#[derive(Debug)]
pub struct SetFiles {
    descriptors: VectorFile,
    offsets: Vec<u64>,
    names: Option<Vec<String>>,
}

impl SetFiles {
    /// Opens `PREFIX_descriptors.npy`, `PREFIX_offsets.npy` and, if present,
    /// `PREFIX_names.txt`, and checks that they agree.
    pub fn open(prefix: impl AsRef<Path>) -> Result<SetFiles> {
        let prefix = prefix.as_ref().to_path_buf();
        let with = |suffix: &str| {
            let mut p = prefix.clone().into_os_string();
            p.push(suffix);
            PathBuf::from(p)
        };
        let descriptors = VectorFile::open(with("_descriptors.npy"))?;
        let offsets_path = with("_offsets.npy");
        let offsets = read_npy_u64(&offsets_path)?;
        DescriptorSets::new(descriptors.vectors(), &offsets).map_err(|e| Error::VectorFile {
            path: offsets_path.clone(),
            offset: 0,
            reason: format!("offsets do not fit the descriptors: {e}"),
        })?;
        let names_path = with("_names.txt");
        let names = if names_path.exists() {
            let text =
                std::fs::read_to_string(&names_path).map_err(|e| Error::io(&names_path, e))?;
            let names: Vec<String> = text.lines().map(str::to_string).collect();
            if names.len() != offsets.len().saturating_sub(1) {
                return Err(Error::InvalidArgument(format!(
                    "{}: {} names for {} images",
                    names_path.display(),
                    names.len(),
                    offsets.len().saturating_sub(1)
                )));
            }
            Some(names)
        } else {
            None
        };
        Ok(SetFiles {
            descriptors,
            offsets,
            names,
        })
    }

    /// The validated sets view (zero-copy over the mapped descriptors).
    pub fn sets(&self) -> Result<DescriptorSets<'_>> {
        Ok(DescriptorSets::new(
            self.descriptors.vectors(),
            &self.offsets,
        )?)
    }

    /// Number of images.
    pub fn images(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Descriptor dimension.
    pub fn dim(&self) -> usize {
        self.descriptors.dim()
    }

    /// The image names, when `PREFIX_names.txt` exists.
    pub fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }

    /// The descriptor file (for sub-views).
    pub fn descriptor_file(&self) -> &VectorFile {
        &self.descriptors
    }
}
