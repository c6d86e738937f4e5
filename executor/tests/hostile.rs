//! Hostile processes against every sandbox backend.
//!
//! Each test runs a process that tries one way out (read or write outside the work folder,
//! the network, signals, ptrace, mounts, root, resource exhaustion, leftover processes) in
//! each backend, and then checks what a person would check on the host afterwards: the
//! file is not there, the listener saw nobody, the host process is alive, no process with
//! the marker is left. A backend that is not available fails the test when `CI` is set and
//! is reported as SKIPPED otherwise. Needs root (the backends drop to their own uid).

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use mission_executor::sandbox::process::SANDBOX_UID;
use mission_executor::sandbox::{
    choose, Limits, NetworkAccess, ProcessOutcome, ProcessSpec, Sandbox, SandboxChoice,
    SandboxError,
};

/// Every sandboxed process runs as the same host uid, and `RLIMIT_NPROC` counts all of that
/// uid's processes: the process-limit test takes this lock for writing so that no other
/// test's processes (or canaries) count against its small limit; the others take it for
/// reading.
static UID_BUDGET: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    UID_BUDGET.read().unwrap_or_else(|e| e.into_inner())
}

/// The backends to test; an unavailable one panics under CI and is skipped otherwise.
fn backends() -> Vec<Box<dyn Sandbox>> {
    let mut found = Vec::new();
    for choice in [SandboxChoice::Bwrap, SandboxChoice::Builtin] {
        match choose(choice) {
            Ok(sandbox) => found.push(sandbox),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("{choice:?} unavailable in CI: {e}")
            }
            Err(e) => eprintln!("SKIPPED {choice:?}: {e}"),
        }
    }
    found
}

/// A string no other process on the machine has in its command line.
fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "mrsb-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A number unique to this call, usable as a `sleep` duration that marks the process.
fn marker_seconds() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "1000.{}{:04}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn limits() -> Limits {
    Limits {
        wall_time: Duration::from_secs(3),
        cpu_seconds: 3,
        memory_bytes: 512 << 20,
        max_processes: 64,
        max_file_bytes: 16 << 20,
        max_output_bytes: 1 << 20,
    }
}

fn sh(workdir: &Path, script: &str) -> ProcessSpec {
    ProcessSpec {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        workdir: workdir.to_path_buf(),
        env: vec![],
        stdin: None,
        limits: limits(),
        network: NetworkAccess::None,
        read_only: vec![],
    }
}

fn run(sandbox: &dyn Sandbox, spec: &ProcessSpec) -> ProcessOutcome {
    sandbox
        .run(spec)
        .unwrap_or_else(|e| panic!("{}: run failed: {e}", sandbox.name()))
}

fn text(outcome: &ProcessOutcome) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&outcome.stdout),
        String::from_utf8_lossy(&outcome.stderr)
    )
}

/// Host processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

/// A host process running as the sandbox uid (what `kill -1` or `/proc` would reach if the
/// pid namespace did not hide it), with `env` in its environment.
fn canary(env: &[(&str, &str)]) -> Child {
    Command::new("sleep")
        .arg("30")
        .envs(env.iter().copied())
        .uid(SANDBOX_UID)
        .gid(SANDBOX_UID)
        .spawn()
        .unwrap()
}

struct Secret {
    paths: Vec<std::path::PathBuf>,
    content: String,
}

/// World-readable secret files in /root and the host /tmp (only the sandbox's view
/// protects them, not permissions).
fn secrets() -> Secret {
    let content = unique("SECRET");
    let name = unique("secret-file");
    let paths = vec![
        Path::new("/root").join(&name),
        std::env::temp_dir().join(&name),
    ];
    for p in &paths {
        std::fs::write(p, &content).unwrap();
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    Secret { paths, content }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn happy_path_stdin_env_and_work_folder() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh(
            dir.path(),
            "cat; echo \"v=$V\"; echo made > out.txt; pwd; id -u",
        );
        spec.stdin = Some(b"from stdin\n".to_vec());
        spec.env = vec![("V".into(), "42".into())];
        let o = run(sb.as_ref(), &spec);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.success(), "{}: {o:?}", sb.name());
        assert!(out.contains("from stdin\nv=42\n"), "{}: {out}", sb.name());
        let canonical = dir.path().canonicalize().unwrap();
        assert!(out.contains(&format!("{}\n", canonical.display())), "{out}");
        assert!(out.contains(&format!("{SANDBOX_UID}\n")), "{out}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
            "made\n"
        );
        // After the run the folder, and what the process made in it, belong to the
        // folder's owner again, not to the sandbox uid.
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(dir.path()).unwrap().uid();
        assert_ne!(owner, SANDBOX_UID, "{}", sb.name());
        assert_eq!(
            std::fs::metadata(dir.path().join("out.txt")).unwrap().uid(),
            owner,
            "{}",
            sb.name()
        );
    }
}

#[test]
fn missing_program_is_reported_as_not_found() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh(dir.path(), "");
        spec.program = "no-such-program-mrsb".into();
        spec.args.clear();
        match sb.run(&spec) {
            Err(SandboxError::ProgramNotFound { program }) => {
                assert_eq!(program, "no-such-program-mrsb")
            }
            other => panic!("{}: {other:?}", sb.name()),
        }
    }
}

#[test]
fn cannot_read_secrets_outside_the_work_folder() {
    let _budget = shared();
    let secret = secrets();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "cat {0} {1}; cat /etc/shadow; find / -path /proc -prune -o -path /usr -prune -o -name {2} -print 2>/dev/null; echo END",
            secret.paths[0].display(),
            secret.paths[1].display(),
            secret.paths[0].file_name().unwrap().to_string_lossy()
        );
        let o = run(sb.as_ref(), &sh(dir.path(), &script));
        let all = text(&o);
        assert!(all.contains("END"), "{}: {all}", sb.name());
        assert!(
            !all.contains(&secret.content),
            "{}: secret leaked: {all}",
            sb.name()
        );
        assert!(all.contains("No such file"), "{}: {all}", sb.name());
    }
}

#[test]
fn cannot_write_outside_the_work_folder() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let name = unique("written");
        let targets = [
            format!("/tmp/{name}"),
            format!("/root/{name}"),
            format!("/{name}"),
            format!("/var/tmp/{name}"),
            format!("/etc/{name}"),
        ];
        let script = targets
            .iter()
            .map(|t| format!("echo pwn > {t};"))
            .collect::<String>()
            + "echo inside > inside.txt";
        let o = run(sb.as_ref(), &sh(dir.path(), &script));
        for t in &targets {
            assert!(
                !Path::new(t).exists(),
                "{}: {t} was written on the host ({o:?})",
                sb.name()
            );
        }
        // The control: the work folder itself is writable.
        assert_eq!(
            std::fs::read_to_string(dir.path().join("inside.txt")).unwrap(),
            "inside\n"
        );
    }
}

#[test]
fn symlinks_in_the_work_folder_do_not_reach_the_host() {
    let _budget = shared();
    let secret = secret_dir();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(secret.path.join("s.txt"), dir.path().join("file_link"))
            .unwrap();
        std::os::unix::fs::symlink(&secret.path, dir.path().join("dir_link")).unwrap();
        std::os::unix::fs::symlink("/tmp", dir.path().join("tmp_link")).unwrap();
        let o = run(
            sb.as_ref(),
            &sh(dir.path(), "cat file_link; cat dir_link/s.txt; ls dir_link; echo pwn > dir_link/new.txt; ls tmp_link; echo END"),
        );
        let all = text(&o);
        assert!(all.contains("END"), "{}: {all}", sb.name());
        assert!(!all.contains(&secret.content), "{}: {all}", sb.name());
        assert!(!secret.path.join("new.txt").exists(), "{}", sb.name());
        // Handing the work folder to the sandbox uid did not follow the links either.
        let meta = std::fs::metadata(secret.path.join("s.txt")).unwrap();
        assert_eq!(
            (meta.uid(), meta.mode() & 0o7777),
            (0, 0o644),
            "{}",
            sb.name()
        );
        assert_eq!(std::fs::metadata(&secret.path).unwrap().uid(), 0);
    }
}

struct SecretDir {
    path: std::path::PathBuf,
    content: String,
}

fn secret_dir() -> SecretDir {
    let path = Path::new("/root").join(unique("secret-dir"));
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let content = unique("DIRSECRET");
    std::fs::write(path.join("s.txt"), &content).unwrap();
    std::fs::set_permissions(
        path.join("s.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    SecretDir { path, content }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[test]
fn cannot_connect_to_a_host_listener() {
    let _budget = shared();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' && echo CONNECTED; \
             perl -MIO::Socket::INET -e 'IO::Socket::INET->new(\"127.0.0.1:{port}\") or exit 1; print \"CONNECTED\\n\"'; echo END"
        );
        let o = run(sb.as_ref(), &sh(dir.path(), &script));
        let all = text(&o);
        assert!(
            all.contains("END") && !all.contains("CONNECTED"),
            "{}: {all}",
            sb.name()
        );
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{}: the listener saw a connection: {other:?}", sb.name()),
        }
    }
}

#[test]
fn cannot_resolve_names() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let o = run(
            sb.as_ref(),
            &sh(
                dir.path(),
                "getent hosts example.com || getent ahosts debian.org",
            ),
        );
        assert!(!o.success(), "{}: {o:?}", sb.name());
        assert!(o.stdout.is_empty(), "{}: {}", sb.name(), text(&o));
    }
}

#[test]
fn process_limit_holds_then_a_fork_bomb_is_contained() {
    let _budget = UID_BUDGET.write().unwrap_or_else(|e| e.into_inner());
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        // Proof first: with room for 8 processes, starting 20 must fail. dash prints each
        // started sleep's number and stops at the first fork that fails.
        let mark = marker_seconds();
        let mut spec = sh(
            dir.path(),
            &format!("for i in $(seq 1 20); do sleep {mark} & echo $i; done; echo END"),
        );
        spec.limits.max_processes = 8;
        let o = run(sb.as_ref(), &spec);
        let all = text(&o);
        let started: usize = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .max()
            .unwrap_or(0);
        assert!(
            (1..8).contains(&started),
            "{}: {started} sleeps started: {all}",
            sb.name()
        );
        assert!(!all.contains("END"), "{}: {all}", sb.name());
        assert!(
            all.contains("Cannot fork"),
            "{}: no fork failure: {all}",
            sb.name()
        );
        assert!(processes_with(&mark).is_empty(), "{}", sb.name());

        // Now the bomb: it must end at the wall clock, leave nothing, and the host still forks.
        let mark = marker_seconds();
        let mut spec = sh(
            dir.path(),
            &format!("b() {{ sleep {mark} & b | b & }}; b; wait"),
        );
        spec.limits.max_processes = 16;
        spec.limits.wall_time = Duration::from_secs(2);
        let o = run(sb.as_ref(), &spec);
        assert!(!o.success(), "{}: {o:?}", sb.name());
        assert!(
            o.duration < Duration::from_secs(5),
            "{}: {:?}",
            sb.name(),
            o.duration
        );
        let t = Instant::now();
        assert!(Command::new("true").status().unwrap().success());
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(
            processes_with(&mark).is_empty(),
            "{}: {:?}",
            sb.name(),
            processes_with(&mark)
        );
    }
}

#[test]
fn memory_hog_fails_under_the_address_space_limit() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh(
            dir.path(),
            "perl -e '$x = \"a\" x (1024*1024*1024); print \"ALLOCATED\\n\"'",
        );
        spec.limits.memory_bytes = 256 << 20;
        let o = run(sb.as_ref(), &spec);
        assert!(!o.success() && !o.timed_out, "{}: {o:?}", sb.name());
        assert!(!text(&o).contains("ALLOCATED"), "{}", sb.name());
        assert!(
            text(&o).contains("Out of memory"),
            "{}: {}",
            sb.name(),
            text(&o)
        );
    }
}

#[test]
fn cpu_loop_is_stopped_by_the_cpu_limit() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh(dir.path(), "while :; do :; done");
        spec.limits.cpu_seconds = 1;
        spec.limits.wall_time = Duration::from_secs(3);
        let o = run(sb.as_ref(), &spec);
        assert!(!o.success(), "{}: {o:?}", sb.name());
        // SIGXCPU: a signal (builtin), or 128 + 24 from bwrap's init; or the wall clock on a
        // machine too busy to give it a CPU second in time.
        let killed = o.signal == Some(libc::SIGXCPU)
            || o.signal == Some(libc::SIGKILL)
            || o.exit_code == Some(128 + libc::SIGXCPU)
            || o.timed_out;
        assert!(killed, "{}: {o:?}", sb.name());
        assert!(
            o.duration < Duration::from_millis(3500),
            "{}: {:?}",
            sb.name(),
            o.duration
        );
    }
}

#[test]
fn sleep_past_the_wall_clock_is_killed_on_time() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh(dir.path(), "sleep 30");
        spec.limits.wall_time = Duration::from_secs(1);
        let o = run(sb.as_ref(), &spec);
        assert!(o.timed_out && !o.success(), "{}: {o:?}", sb.name());
        assert!(
            o.duration >= Duration::from_secs(1) && o.duration < Duration::from_millis(1800),
            "{}: {:?}",
            sb.name(),
            o.duration
        );
    }
}

#[test]
fn output_flood_is_truncated_and_drained() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh(
            dir.path(),
            "head -c 20000000 /dev/zero; head -c 20000000 /dev/zero >&2; echo done > done.txt",
        );
        spec.limits.max_output_bytes = 64 << 10;
        let o = run(sb.as_ref(), &spec);
        // Drained: the writer was never blocked, so the script ran to its end.
        assert!(o.success() && o.output_truncated, "{}: {o:?}", sb.name());
        assert_eq!(
            (o.stdout.len(), o.stderr.len()),
            (64 << 10, 64 << 10),
            "{}",
            sb.name()
        );
        assert!(dir.path().join("done.txt").exists(), "{}", sb.name());
    }
}

#[test]
fn huge_file_is_stopped_by_the_file_size_limit() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh(dir.path(), "head -c 50000000 /dev/zero > big");
        spec.limits.max_file_bytes = 1 << 20;
        let o = run(sb.as_ref(), &spec);
        assert!(!o.success(), "{}: {o:?}", sb.name());
        let size = std::fs::metadata(dir.path().join("big")).unwrap().len();
        assert!(size <= 1 << 20, "{}: {size}", sb.name());
    }
}

#[test]
fn killing_the_parent_or_everyone_reaches_no_host_process() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = canary(&[]);
        let o = run(
            sb.as_ref(),
            &sh(dir.path(), "kill -9 $PPID; kill -9 1; kill -9 -1; echo END"),
        );
        assert!(o.duration < Duration::from_secs(3), "{}: {o:?}", sb.name());
        assert!(
            host.try_wait().unwrap().is_none(),
            "{}: the host process was killed",
            sb.name()
        );
        host.kill().unwrap();
        host.wait().unwrap();
    }
}

#[test]
fn ptrace_fails() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let script = "sleep 5 & perl -e 'my $r = syscall(101, 16, $ARGV[0] + 0, 0, 0); print \"ptrace=$r\\n\"; exit($r == 0 ? 0 : 3)' $!; r=$?; kill %1; exit $r";
        let o = run(sb.as_ref(), &sh(dir.path(), script));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("ptrace=-1"), "{}: {}", sb.name(), text(&o));
        assert_eq!(o.exit_code, Some(3), "{}", sb.name());
    }
}

#[test]
fn mount_and_new_namespaces_fail() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let script = "mkdir m; mount -t tmpfs none m && echo MOUNTED; \
                      unshare -U true && echo USERNS; unshare -r true && echo ROOTNS; \
                      unshare -n true && echo NETNS; echo END";
        let o = run(sb.as_ref(), &sh(dir.path(), script));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("END"), "{}: {}", sb.name(), text(&o));
        for bad in ["MOUNTED", "USERNS", "ROOTNS", "NETNS"] {
            assert!(!out.contains(bad), "{}: {bad}: {}", sb.name(), text(&o));
        }
    }
}

#[test]
fn parent_environment_is_not_visible() {
    let _budget = shared();
    let secret = unique("ENVSECRET");
    // The test's own environment (inheritance) and a host process's initial environment
    // (what /proc/<pid>/environ shows).
    std::env::set_var("MRSB_SECRET", &secret);
    let mut host = canary(&[("MRSB_SECRET", &secret)]);
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let script =
            "env; cat /proc/1/environ; cat /proc/$PPID/environ; cat /proc/*/environ; echo END";
        let o = run(sb.as_ref(), &sh(dir.path(), script));
        let all = text(&o);
        assert!(
            all.contains("END") && all.contains("PATH="),
            "{}: {all}",
            sb.name()
        );
        assert!(
            !all.contains(&secret) && !all.contains("MRSB_SECRET"),
            "{}: {all}",
            sb.name()
        );
    }
    host.kill().unwrap();
    host.wait().unwrap();
}

#[test]
fn host_processes_are_not_visible() {
    let _budget = shared();
    let mut host = canary(&[]);
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "test -e /proc/{0} && echo VISIBLE; test -e /proc/{1} && echo VISIBLE; ls /proc | grep -c '^[0-9]'",
            std::process::id(),
            host.id()
        );
        let o = run(sb.as_ref(), &sh(dir.path(), &script));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(!out.contains("VISIBLE"), "{}: {out}", sb.name());
        let count: usize = out.trim().parse().unwrap_or(usize::MAX);
        assert!(count <= 5, "{}: {count} processes visible", sb.name());
    }
    host.kill().unwrap();
    host.wait().unwrap();
}

#[test]
fn no_process_outlives_the_step() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (marker_seconds(), marker_seconds(), marker_seconds());
        // A backgrounded sleep, one in its own session, one double-forked away; then exit.
        let script = format!(
            "sleep {a} & setsid sleep {b} & (sh -c 'sleep {c} &' &); sleep 0.2; echo started"
        );
        let o = run(sb.as_ref(), &sh(dir.path(), &script));
        assert!(o.success() && !o.timed_out, "{}: {o:?}", sb.name());
        for m in [&a, &b, &c] {
            assert!(
                processes_with(m).is_empty(),
                "{}: left running: {:?}",
                sb.name(),
                processes_with(m)
            );
        }
        // The same when the step is killed at its wall clock.
        let d = marker_seconds();
        let mut spec = sh(dir.path(), &format!("setsid sleep {d} & sleep 30"));
        spec.limits.wall_time = Duration::from_secs(1);
        let o = run(sb.as_ref(), &spec);
        assert!(o.timed_out, "{}: {o:?}", sb.name());
        assert!(
            processes_with(&d).is_empty(),
            "{}: left running: {:?}",
            sb.name(),
            processes_with(&d)
        );
    }
}

#[test]
fn cannot_become_root() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let script = "id -u; perl -e '$< = 0; $> = 0; print \"uid=$< euid=$>\\n\"'; \
                      su -c 'echo ROOT' root </dev/null; mount --version >/dev/null; echo END";
        let o = run(sb.as_ref(), &sh(dir.path(), script));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.starts_with(&format!("{SANDBOX_UID}\n")),
            "{}: {out}",
            sb.name()
        );
        assert!(
            out.contains(&format!("uid={SANDBOX_UID} euid={SANDBOX_UID}")),
            "{}: {out}",
            sb.name()
        );
        assert!(
            !out.contains("ROOT") && out.contains("END"),
            "{}: {}",
            sb.name(),
            text(&o)
        );
    }
}

#[test]
fn system_folders_are_read_only() {
    let _budget = shared();
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let name = unique("usr");
        let script = format!(
            "touch /usr/{name}; echo x > /usr/bin/{name}; mkdir /usr/lib/{name}; echo x >> /etc/passwd; rm -f /usr/bin/env; echo END"
        );
        let o = run(sb.as_ref(), &sh(dir.path(), &script));
        assert!(text(&o).contains("END"), "{}", sb.name());
        for p in [
            format!("/usr/{name}"),
            format!("/usr/bin/{name}"),
            format!("/usr/lib/{name}"),
        ] {
            assert!(!Path::new(&p).exists(), "{}: {p}", sb.name());
        }
        assert!(Path::new("/usr/bin/env").exists());
        assert_eq!(
            std::fs::read("/etc/passwd").unwrap(),
            passwd_before,
            "{}",
            sb.name()
        );
    }
}

#[test]
fn host_devices_and_private_tmp() {
    let _budget = shared();
    let secret = secrets();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let o = run(
            sb.as_ref(),
            &sh(dir.path(), "ls /dev; ls /tmp | wc -l; echo t > /tmp/t && cat /tmp/t; head -c 1 /dev/vda && echo DISK; echo END"),
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("null") && out.contains("urandom"),
            "{}: {out}",
            sb.name()
        );
        assert!(
            !out.contains("vda") && !out.contains("DISK"),
            "{}: {out}",
            sb.name()
        );
        // The private /tmp starts empty (the host's has our secret) and is writable.
        assert!(out.contains("\n0\nt\n"), "{}: {out}", sb.name());
        assert!(!text(&o).contains(&secret.content));
    }
}

#[test]
fn huge_stdin_to_a_process_that_does_not_read_it() {
    let _budget = shared();
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh(dir.path(), "echo ok");
        spec.stdin = Some(vec![b'x'; 8 << 20]);
        let o = run(sb.as_ref(), &spec);
        assert!(o.success() && o.stdout == b"ok\n", "{}: {o:?}", sb.name());
        assert!(o.duration < Duration::from_secs(2));
    }
}

#[test]
fn reading_a_secret_through_proc_of_the_host_is_impossible() {
    let _budget = shared();
    // /proc/<host pid>/root would be a way into the host file system if host pids showed.
    let secret = secrets();
    let host = canary(&[]);
    for sb in backends() {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "cat /proc/{}/root{} ; cat /proc/1/root{}; echo END",
            host.id(),
            secret.paths[1].display(),
            secret.paths[1].display()
        );
        let o = run(sb.as_ref(), &sh(dir.path(), &script));
        assert!(
            !text(&o).contains(&secret.content),
            "{}: {}",
            sb.name(),
            text(&o)
        );
    }
    let mut host = host;
    host.kill().unwrap();
    host.wait().unwrap();
}
