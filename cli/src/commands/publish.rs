//! `mission publish [PATH] --registry URL|NAME [--http] [--key NAME]`: publishes the
//! committed package.
//!
//! By default through git, the way authors publish: make the signed tag `vVERSION` (as
//! `mission tag` does, or reuse it when it already marks HEAD with a valid signature) and
//! `git push BASE/git/missions/NAME.git vVERSION`. The node's verdict reaches the terminal
//! as git's `remote:` lines. The token travels as the password of HTTP Basic auth in an
//! `http.extraHeader` given to git through `GIT_CONFIG_*` environment variables: never on
//! the command line (visible in `ps`) and never on disk.
//!
//! With `--http` (for CI systems): build and sign the same archive and `POST` it to
//! `BASE/api/v1/missions/publish` (cargo's body layout, [`PublishBody`]) with the token
//! as `Authorization: Bearer`. A folder outside git is packed from disk.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use mission_index::archive::{self, ArchiveLimits};
use mission_index::package;
use mission_index::wire::{PublishBody, PublishMetadata, TagMessage};

use super::tag::{self, Built, Repo};
use crate::keys;
use crate::registry::{self, Client, Registry, TokenSource};

#[derive(clap::Args)]
pub struct Args {
    /// The package: the root of its git repository (default: the current folder)
    path: Option<PathBuf>,
    /// The registry: a name from MISSION_HOME/config.toml, or the node's URL
    #[arg(long)]
    registry: Option<String>,
    /// Upload through the HTTP API instead of pushing the signed tag with git
    #[arg(long)]
    http: bool,
    /// The signing key in MISSION_HOME/keys (see `mission keygen`)
    #[arg(long, default_value = "default")]
    key: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    keys::check_key_name(&args.key)?;
    let registry = registry::resolve(args.registry.as_deref())?;
    // Before any signing: no token, no point asking for the key's password.
    let (token, source) = registry::token(&registry)?;
    let dir = args.path.unwrap_or_else(|| PathBuf::from("."));
    if args.http {
        publish_http(&registry, &dir, &args.key)
    } else {
        publish_git(&registry, (&token, &source), &dir, &args.key)
    }
}

fn publish_git(
    registry: &Registry,
    (token, source): (&str, &TokenSource),
    dir: &std::path::Path,
    key: &str,
) -> Result<ExitCode> {
    let repo = Repo::open(dir)?;
    let Some(built) = tag::build_from_head(&repo)? else {
        return Ok(ExitCode::FAILURE);
    };
    let tag_name = TagMessage::tag_name(&built.version);
    let made_tag = repo.tag(&tag_name)?.is_none();
    match repo.tag(&tag_name)? {
        None => {
            let signed = tag::sign(&built, key)?;
            repo.create_tag(&signed)?;
            eprintln!(
                "Tagged {} {} as {tag_name} (commit {})",
                built.name,
                built.version,
                tag::short(&built.commit)
            );
        }
        Some(existing) => {
            if existing.commit != built.commit {
                bail!(
                    "the tag {tag_name} already exists on commit {}, not on HEAD ({}): versions are immutable; raise `package.version`, commit, and publish again",
                    tag::short(&existing.commit),
                    tag::short(&built.commit)
                );
            }
            let Some(message) = existing.message else {
                bail!("the tag {tag_name} on HEAD is a lightweight tag without a signature: delete it (`git tag -d {tag_name}`) and run `mission publish` again");
            };
            tag::check_tag_message(&message, &built).with_context(|| {
                format!("the existing tag {tag_name} on HEAD is not a valid publish tag (delete it with `git tag -d {tag_name}` and publish again)")
            })?;
            eprintln!("Using the existing tag {tag_name} on HEAD");
        }
    }
    let url = registry.url(&format!("/git/missions/{}.git", built.name));
    eprintln!("Pushing {tag_name} to {url}");
    if let Err(e) = push(&repo, registry, (token, source), &url, &tag_name) {
        // A tag made for a publish the node refused would be reused, signature and all, by
        // the next `mission publish` (with another --key, say): it goes.
        if made_tag && repo.delete_tag(&tag_name).is_ok() {
            return Err(e.context(format!(
                "nothing was published; the tag {tag_name} made for it was deleted, so the next `mission publish` makes it anew"
            )));
        }
        return Err(e);
    }
    eprintln!(
        "Published {} {} to {}",
        built.name,
        built.version,
        registry.display()
    );
    println!("{}", built.cksum);
    Ok(ExitCode::SUCCESS)
}

/// `git push URL refs/tags/TAG`, authenticated through the environment. git's output is
/// shown as it comes and kept, to explain an authentication failure.
fn push(
    repo: &Repo,
    registry: &Registry,
    (token, source): (&str, &TokenSource),
    url: &str,
    tag_name: &str,
) -> Result<()> {
    let mut cmd = repo.git();
    cmd.arg("push")
        .arg(url)
        .arg(format!("refs/tags/{tag_name}:refs/tags/{tag_name}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::git_auth::authenticate(&mut cmd, &registry.base_url, Some(token));
    let mut child = cmd.spawn().context("running `git push`")?;
    let stdout = child.stdout.take().context("git push has no stdout")?;
    let stderr = child.stderr.take().context("git push has no stderr")?;
    let (out, err) = std::thread::scope(|scope| {
        let out = scope.spawn(|| tee(stdout, std::io::stderr()));
        let err = scope.spawn(|| tee(stderr, std::io::stderr()));
        (out.join(), err.join())
    });
    let status = child.wait().context("waiting for `git push`")?;
    let out = out.unwrap_or_default();
    let err = err.unwrap_or_default();
    let said = format!("{out}\n{err}");
    if status.success() {
        // The same tag is already there: nothing was sent, so nothing was published now.
        if said.contains("Everything up-to-date") {
            bail!(
                "{tag_name} is already published on {} (the node has this tag); versions are immutable, so publish a new version",
                registry.display()
            );
        }
        return Ok(());
    }
    // Only a 401 is about the token. A 403 is the node refusing this push for a reason it
    // gives (not an owner of the name, say), which must not read as a bad token.
    let auth_failed = said.contains("Authentication failed")
        || said.contains("terminal prompts disabled")
        || said.contains(" 401");
    if auth_failed {
        bail!(
            "the node refused the push's credentials (see git's messages above); {}",
            registry::refused_token_advice(registry, Some(source))
        );
    }
    if said.contains("remote: error") || said.contains("[remote rejected]") || said.contains(" 403")
    {
        bail!("the node refused the publish (see `remote: error:` above)");
    }
    bail!("`git push {url} {tag_name}` failed ({status}); see git's messages above")
}

/// Copies `from` to `to` as it comes and returns what passed, as text.
fn tee(mut from: impl Read, mut to: impl Write) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let _ = to.write_all(&buf[..n]);
                let _ = to.flush();
                seen.extend_from_slice(&buf[..n]);
            }
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn publish_http(registry: &Registry, dir: &std::path::Path, key: &str) -> Result<ExitCode> {
    let built = match Repo::open(dir) {
        Ok(repo) => tag::build_from_head(&repo)?,
        Err(_) if !dir.join(".git").exists() && dir.is_dir() => {
            eprintln!(
                "note: {} is not the root of a git repository; packing the folder from disk",
                dir.display()
            );
            build_from_folder(dir)?
        }
        Err(e) => return Err(e),
    };
    let Some(built) = built else {
        return Ok(ExitCode::FAILURE);
    };
    let signed = tag::sign(&built, key)?;
    let body = PublishBody {
        metadata: PublishMetadata {
            name: built.name.clone(),
            vers: built.version.clone(),
            cksum: built.cksum.clone(),
            key: signed.key.clone(),
            sig: signed.signature.clone(),
        },
        archive: built.archive.clone(),
    };
    let client = Client::new(registry.clone())?;
    eprintln!(
        "Uploading {} {} ({} bytes) to {}",
        built.name,
        built.version,
        built.archive.len(),
        registry.url("/api/v1/missions/publish")
    );
    let answer = client.post_bytes(
        "/api/v1/missions/publish",
        "application/octet-stream",
        &body.encode(),
    )?;
    let answer = client.expect_success(answer)?;
    if let Some(cksum) = answer.json.get("cksum").and_then(|c| c.as_str()) {
        if cksum != built.cksum {
            eprintln!(
                "warning: the node recorded sha256 {cksum}, but the uploaded archive has {}",
                built.cksum
            );
        }
    }
    eprintln!(
        "Published {} {} to {}",
        built.name,
        built.version,
        registry.display()
    );
    println!("{}", built.cksum);
    Ok(ExitCode::SUCCESS)
}

/// A package folder outside git, packed from disk as `mission package` does.
fn build_from_folder(dir: &std::path::Path) -> Result<Option<Built>> {
    let (source, manifest) = match package::load_package_dir(dir) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{err}");
            return Ok(None);
        }
    };
    for warning in &source.warnings {
        eprintln!("warning: {}: {warning}", source.file.display());
    }
    let archive = archive::build_archive(dir, &ArchiveLimits::default())
        .with_context(|| format!("building the archive of {}", dir.display()))?;
    Ok(Some(Built {
        name: manifest.name.to_string(),
        version: manifest.version.to_string(),
        cksum: archive::cksum(&archive),
        archive,
        commit: String::new(),
    }))
}
