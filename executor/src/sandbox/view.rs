//! The file system a sandboxed process sees, as a list of mounts both backends build.
//!
//! The root is an empty tmpfs. Into it go, in this order:
//!
//! - `/usr` read-only, and `/bin`, `/sbin`, `/lib*` as on the host (symlinks into `/usr` on a
//!   merged-/usr system, read-only binds otherwise);
//! - `/etc` read-only, holding a copy of a few host entries: what the dynamic linker, name
//!   lookups, TLS roots and `alternatives` need ([`ETC_ENTRIES`]; `resolv.conf` only with
//!   network; built by [`etc_view`](super::etc_view)). Not the rest: no `shadow`, no host
//!   configuration or credentials;
//! - a fresh `/proc` (of the step's own pid namespace: no host process is visible), a minimal
//!   `/dev` (null, zero, full, random, urandom, tty), a private `/tmp` tmpfs;
//! - the work folder, read-write, at its own path (its parent folders are created empty, so
//!   nothing else of e.g. `/root` or the host `/tmp` appears).
//!
//! Nothing else of the host exists inside: not `/root`, `/home`, `/var`, `/run`, `/srv`,
//! the host `/tmp`, nor the folder this program runs from.

use std::path::{Component, Path, PathBuf};

use super::{etc_view, NetworkAccess, ProcessSpec, SandboxError};

/// Entries of `/etc` shown read-only (those that exist on the host).
pub const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "protocols",
    "services",
    "ssl",
];

/// Top-level system folders shown read-only (symlinks are recreated as symlinks).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// Device nodes bound into the minimal `/dev`.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// One step in building the sandbox's file system. Paths are as seen inside the sandbox;
/// sources are host paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// An empty directory (mode 0755, owned by root).
    Dir(PathBuf),
    /// A read-only bind of a host directory or file.
    ReadOnly {
        source: PathBuf,
        dest: PathBuf,
        is_dir: bool,
    },
    /// The read-write bind of the work folder.
    ReadWrite {
        source: PathBuf,
        dest: PathBuf,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    /// A tmpfs with this mode and size limit in bytes.
    Tmpfs {
        dest: PathBuf,
        mode: u32,
        size: u64,
    },
    /// A procfs of the sandbox's pid namespace.
    Proc(PathBuf),
    /// A minimal /dev ([`DEVICES`] plus the `fd`, `stdin`, `stdout`, `stderr` links).
    Dev(PathBuf),
}

/// The mounts for running `spec`, whose work folder is `workdir` (checked, canonical).
pub fn plan_for(spec: &ProcessSpec, workdir: &Path) -> Result<Vec<Mount>, SandboxError> {
    plan(
        workdir,
        &spec.network,
        tmp_size(spec.limits.max_file_bytes),
        &spec.read_only,
    )
}

/// The mounts for a process whose (canonical) work folder is `workdir`.
pub fn plan(
    workdir: &Path,
    network: &NetworkAccess,
    tmp_size: u64,
    read_only: &[PathBuf],
) -> Result<Vec<Mount>, SandboxError> {
    let mut mounts = Vec::new();
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| setup(path, e))?;
            mounts.push(Mount::Symlink {
                target,
                link: path.to_path_buf(),
            });
        } else if meta.is_dir() {
            mounts.push(Mount::ReadOnly {
                source: path.to_path_buf(),
                dest: path.to_path_buf(),
                is_dir: true,
            });
        }
    }
    // One read-only bind of a prepared copy (see etc_view for why not one per entry). Never
    // from inside the work folder, where a step could rewrite it for later runs.
    let etc = etc_view::current(matches!(network, NetworkAccess::Hosts(_)))?;
    if etc.starts_with(workdir) {
        return Err(SandboxError::Workdir {
            path: workdir.to_path_buf(),
            reason: format!(
                "it holds the sandbox's prepared /etc ({}); use another work folder or cache",
                etc.display()
            ),
        });
    }
    mounts.push(Mount::ReadOnly {
        source: etc,
        dest: "/etc".into(),
        is_dir: true,
    });
    mounts.push(Mount::Proc("/proc".into()));
    mounts.push(Mount::Dev("/dev".into()));
    mounts.push(Mount::Tmpfs {
        dest: "/tmp".into(),
        mode: 0o1777,
        size: tmp_size,
    });

    // The work folder: not in or above anything mounted so far, except inside /tmp.
    let bad = |reason: &str| SandboxError::Workdir {
        path: workdir.to_path_buf(),
        reason: reason.to_string(),
    };
    if !workdir.is_absolute() || workdir.components().any(|c| c == Component::ParentDir) {
        return Err(bad("it is not a canonical absolute path"));
    }
    let reserved = [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc", "/dev",
    ];
    if workdir == Path::new("/") || workdir == Path::new("/tmp") {
        return Err(bad(
            "the work folder must be a folder of its own, not / or /tmp",
        ));
    }
    if reserved.iter().any(|r| workdir.starts_with(r)) {
        return Err(bad(
            "it lies inside a system folder the sandbox shows read-only",
        ));
    }
    // Extra read-only folders (toolchains): each at its own path, neither holding nor
    // inside the work folder, nor in a folder shown already.
    for extra in read_only {
        let bad_extra = |reason: &str| SandboxError::Prepare {
            reason: format!("cannot show {} read-only: {reason}", extra.display()),
        };
        if !extra.is_absolute() || extra.components().any(|c| c == Component::ParentDir) {
            return Err(bad_extra("it is not a canonical absolute path"));
        }
        // Already shown (a toolchain under /usr/local, or inside the work folder), or it
        // would hide the work folder: nothing to add.
        if extra == Path::new("/")
            || extra == Path::new("/tmp")
            || reserved.iter().any(|r| extra.starts_with(r))
            || extra.starts_with(workdir)
            || workdir.starts_with(extra)
        {
            tracing::debug!(folder = %extra.display(), "not shown separately: already visible or holds the work folder");
            continue;
        }
        if !extra.is_dir() {
            return Err(bad_extra("it is not a folder"));
        }
        push_parents(extra, &mut mounts);
        mounts.push(Mount::ReadOnly {
            source: extra.clone(),
            dest: extra.clone(),
            is_dir: true,
        });
    }
    push_parents(workdir, &mut mounts);
    mounts.push(Mount::ReadWrite {
        source: workdir.to_path_buf(),
        dest: workdir.to_path_buf(),
    });
    Ok(mounts)
}

/// Creates the parents of `path` as empty folders, in order, unless created already (/tmp
/// exists: it is the tmpfs above). Explicitly, because bubblewrap would make missing
/// parents with mode 0700, which the sandbox uid could not pass through.
fn push_parents(path: &Path, mounts: &mut Vec<Mount>) {
    let mut parent = PathBuf::from("/");
    let components: Vec<_> = path.components().skip(1).collect();
    for c in &components[..components.len().saturating_sub(1)] {
        parent.push(c);
        if parent != Path::new("/tmp") && !mounts.contains(&Mount::Dir(parent.clone())) {
            mounts.push(Mount::Dir(parent.clone()));
        }
    }
}

/// The private /tmp size for a step: four times its largest file, between 16 MiB and 1 GiB.
pub fn tmp_size(max_file_bytes: u64) -> u64 {
    max_file_bytes.saturating_mul(4).clamp(16 << 20, 1 << 30)
}

fn setup(path: &Path, e: std::io::Error) -> SandboxError {
    SandboxError::Prepare {
        reason: format!("cannot read {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_folder_comes_last_with_empty_parents_and_no_host_tmp() {
        let m = plan(
            Path::new("/root/runs/r1"),
            &NetworkAccess::None,
            1 << 20,
            &[],
        )
        .unwrap();
        assert_eq!(
            m.last(),
            Some(&Mount::ReadWrite {
                source: "/root/runs/r1".into(),
                dest: "/root/runs/r1".into()
            })
        );
        assert!(m.contains(&Mount::Dir("/root".into())));
        assert!(m.contains(&Mount::Dir("/root/runs".into())));
        // Nothing binds the host /tmp or /root or the host's own /etc.
        for mount in &m {
            if let Mount::ReadOnly { source, .. } = mount {
                assert!(
                    !source.starts_with("/tmp")
                        && !source.starts_with("/root")
                        && !source.starts_with("/etc"),
                    "{mount:?}"
                );
            }
        }
    }

    #[test]
    fn etc_is_one_read_only_bind_of_the_prepared_view() {
        let m = plan(Path::new("/tmp/w"), &NetworkAccess::None, 1, &[]).unwrap();
        let etc: Vec<_> = m
            .iter()
            .filter(|x| matches!(x, Mount::ReadOnly { dest, .. } if dest.starts_with("/etc")))
            .collect();
        assert_eq!(
            etc,
            vec![&Mount::ReadOnly {
                source: etc_view::current(false).unwrap(),
                dest: "/etc".into(),
                is_dir: true
            }]
        );
    }

    #[test]
    fn extra_read_only_folders_come_with_passable_parents_and_are_checked() {
        let tool = tempfile::tempdir().unwrap();
        let tool = tool.path().canonicalize().unwrap();
        let m = plan(
            Path::new("/srv/runs/r1"),
            &NetworkAccess::None,
            1,
            std::slice::from_ref(&tool),
        )
        .unwrap();
        let bind = m
            .iter()
            .position(|x| matches!(x, Mount::ReadOnly { dest, .. } if *dest == tool))
            .expect("the folder is bound");
        // Every parent is made (mode 0755) before the bind, once.
        let mut parent = tool.parent();
        while let Some(p) = parent.filter(|p| *p != Path::new("/") && *p != Path::new("/tmp")) {
            let at = m.iter().position(|x| *x == Mount::Dir(p.to_path_buf()));
            assert!(at.is_some_and(|at| at < bind), "{p:?} in {m:?}");
            parent = p.parent();
        }
        // Already visible, or holding the work folder: left out, not an error.
        for skipped in ["/usr/local", "/srv/runs", "/srv/runs/r1/tools"] {
            let m = plan(
                Path::new("/srv/runs/r1"),
                &NetworkAccess::None,
                1,
                &[PathBuf::from(skipped)],
            )
            .unwrap();
            assert!(
                !m.iter().any(
                    |x| matches!(x, Mount::ReadOnly { source, .. } if source == Path::new(skipped))
                ),
                "{skipped}"
            );
        }
        for (bad, why) in [
            ("relative", "canonical"),
            ("/nonexistent-toolchain", "not a folder"),
        ] {
            let err = plan(
                Path::new("/srv/runs/r1"),
                &NetworkAccess::None,
                1,
                &[PathBuf::from(bad)],
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn work_folder_inside_system_folders_is_refused() {
        for bad in ["/", "/tmp", "/usr/src/x", "/etc/x", "/proc/1", "/dev/shm/x"] {
            assert!(
                matches!(
                    plan(Path::new(bad), &NetworkAccess::None, 1, &[]),
                    Err(SandboxError::Workdir { .. })
                ),
                "{bad}"
            );
        }
    }
}
