//! The seccomp filter both backends install just before the step's program starts.
//!
//! Everything is allowed except system calls a build or script step has no business making,
//! which fail with `EPERM`: debugging other processes (`ptrace`, `process_vm_*`), changing the
//! file system view (`mount`, `umount2`, `pivot_root`, `chroot`, the new mount API), new
//! namespaces (`unshare`, `setns`, and `clone` with any `CLONE_NEW*` flag), loading kernel
//! code or keys (`kexec_*`, `*_module`, `bpf`, `keyctl`, `add_key`, `request_key`), opening
//! files by handle (`open_by_handle_at`, a known container escape), `perf_event_open`,
//! `userfaultfd`, swap, reboot, clock and accounting changes. Without network permission,
//! `socket` for `AF_INET`, `AF_INET6` and `AF_PACKET` fails too (Unix sockets still work).
//!
//! `clone3` fails with `ENOSYS` instead (a second, tiny program): its flags are behind a
//! pointer seccomp cannot read, and `ENOSYS` makes the C library fall back to `clone`, whose
//! flags the first program checks.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::SandboxError;

/// System calls that always fail with `EPERM`.
const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_syslog,
    libc::SYS_quotactl,
    libc::SYS_vhangup,
];

/// `clone` flags that create namespaces.
const CLONE_NEW: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// Socket families refused without network permission.
const NET_FAMILIES: &[libc::c_int] = &[libc::AF_INET, libc::AF_INET6, libc::AF_PACKET];

/// The two programs to install, in order: the `EPERM` list, then `clone3` → `ENOSYS`.
#[derive(Debug)]
pub struct Filters {
    pub deny: BpfProgram,
    pub no_clone3: BpfProgram,
}

/// The filters for a step with (`network = true`) or without network. Compiled once.
pub fn filters(network: bool) -> Result<&'static Filters, SandboxError> {
    static WITH: OnceLock<Result<Filters, String>> = OnceLock::new();
    static WITHOUT: OnceLock<Result<Filters, String>> = OnceLock::new();
    let cell = if network { &WITH } else { &WITHOUT };
    cell.get_or_init(|| build(network).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|reason| SandboxError::Setup {
            backend: "seccomp",
            reason: reason.clone(),
        })
}

fn arch() -> Result<TargetArch, seccompiler::BackendError> {
    TargetArch::try_from(std::env::consts::ARCH)
}

fn build(network: bool) -> Result<Filters, seccompiler::Error> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in DENIED {
        rules.insert(nr, vec![]);
    }
    let mut clone_rules = Vec::new();
    for &flag in CLONE_NEW {
        let flag = flag as u64;
        clone_rules.push(SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )?])?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    if !network {
        let mut socket_rules = Vec::new();
        for &family in NET_FAMILIES {
            socket_rules.push(SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                family as u64,
            )?])?);
        }
        rules.insert(libc::SYS_socket, socket_rules);
    }
    let deny: BpfProgram = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )?
    .try_into()?;
    let no_clone3: BpfProgram = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )?
    .try_into()?;
    Ok(Filters { deny, no_clone3 })
}

/// A program as the bytes of its `sock_filter` array, the form bubblewrap's `--seccomp` and
/// `--add-seccomp-fd` read.
pub fn to_bytes(program: &BpfProgram) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for insn in program {
        bytes.extend_from_slice(&insn.code.to_ne_bytes());
        bytes.push(insn.jt);
        bytes.push(insn.jf);
        bytes.extend_from_slice(&insn.k.to_ne_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_variants_compile_and_serialize_to_whole_instructions() {
        for network in [false, true] {
            let f = filters(network).unwrap();
            assert!(!f.deny.is_empty() && !f.no_clone3.is_empty());
            assert_eq!(to_bytes(&f.deny).len(), f.deny.len() * 8);
        }
        // The network variant has no socket rule, so it is shorter.
        assert!(filters(true).unwrap().deny.len() < filters(false).unwrap().deny.len());
    }
}
