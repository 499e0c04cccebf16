//! Building the reference derivative's ISO (`tailor build-iso`).
//!
//! The image is an initramfs with everything in it (busybox, tor, nftables,
//! qemu-guest-agent, the greeter, the remote-shell server, a few kernel
//! modules), booted from a hybrid ISO that works as a CD, a disk and a USB
//! stick, under BIOS (isolinux's menu) and UEFI (GRUB's menu). It is
//! assembled from:
//!
//! - `derivative/recipe.toml`: the Debian packages, kernel, modules and
//!   executables ([`Recipe`]);
//! - `derivative/rootfs/`: the init, the start script, the firewall, torrc
//!   and the users, copied as they are;
//! - the greeter and the remote-shell server, built from
//!   `derivative/greeter` and `derivative/remote-shell` with cargo;
//! - any customizations ([`customization::Customization`]) applied on top.
//!
//! Packages come only through apt ([`apt`]), into `.cache/derivative/apt`.
//! A build is cached by the hash of all its inputs ([`cache_key`]): a second
//! build with the same inputs copies the cached ISO. Next to the ISO goes a
//! manifest (`NAME.manifest.toml`) of the Debian package versions it holds.
//!
//! ```no_run
//! use harness::derivative::{build, BuildOptions};
//! let opts = BuildOptions::new("/work/main", "/tmp/derivative.iso")
//!     .customization("/work/main/derivative/customizations/branding.toml");
//! let built = build(&opts)?;
//! println!("{} ({})", built.iso.display(), if built.cached { "cached" } else { "built" });
//! # Ok::<(), harness::derivative::Error>(())
//! ```

pub mod apt;
pub mod customization;
mod image;
pub mod inspect;
pub mod kind;
pub mod online;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use customization::Customization;
pub use kind::Kind;

/// Where the harness writes its private Tor network's torrc lines
/// (DirAuthority, TestingTorNetwork, ...) through the guest agent before
/// Start; tor includes `/etc/tor/torrc.d/*.conf` after its own settings.
pub const GUEST_LAB_TORRC: &str = "/etc/tor/torrc.d/50-lab.conf";

/// Where the harness puts the VPN variant's configuration (a wg-quick
/// file: keys, addresses, endpoint) through the guest agent before Start.
pub const GUEST_VPN_CONFIG: &str = "/etc/tailor/vpn/client.conf";

/// Where the VPN variant's client says how it is (`state=connected`, and
/// then `local=IP:PORT`, where its tunnel packets leave from); see
/// `derivative/customizations/vpn/client`.
pub const GUEST_VPN_STATE: &str = "/run/tailor/vpn-state";

/// The image's default bridges, one bridge line each, written at build
/// time from the customizations (Tails keeps Tor Browser's in a file too).
/// The lab's bridges exist only at run time: the harness writes their
/// lines over this file through the guest agent before Start.
pub const GUEST_DEFAULT_BRIDGES: &str = "/usr/share/tailor/default-bridges.txt";

/// Bridges the derivative always uses (no question at Start); the harness
/// writes lab bridges here to configure one for a scenario.
pub const GUEST_CONFIGURED_BRIDGES: &str = "/etc/tailor/bridges.txt";

/// Lines the image writes to its serial console, to wait on.
pub mod markers {
    /// qemu-ga is running (before the greeter).
    pub const GUEST_AGENT_STARTED: &str = "tailor-init: guest agent started";
    /// The remote-shell server is running (only with
    /// `autotest_never_use_this_option` on the kernel command line).
    pub const REMOTE_SHELL_STARTED: &str = "tailor-init: remote shell started";
    /// The guest streams its logs on the journal port.
    pub const LOGS_STREAMED: &str = "tailor-init: logs streamed to org.tails.journal_dumper.0";
    /// The greeter's welcome screen is on the framebuffer.
    pub const GREETER_SHOWN: &str = "tailor-greeter: welcome screen shown";
    /// The greeter opened an absolute pointer (the usb-tablet): clicks
    /// reach it from now on. USB comes up after the greeter, so this
    /// follows GREETER_SHOWN.
    pub const POINTER_OPENED: &str = "tailor-greeter: pointer ";
    /// The user chose Start (keyboard or mouse).
    pub const START_CHOSEN: &str = "tailor-greeter: start chosen";
    /// The administration password was saved.
    pub const ADMIN_PASSWORD_SET: &str = "tailor-greeter: admin password set";
    /// The Tor-only firewall is loaded (after Start, before any NIC is up).
    pub const FIREWALL_LOADED: &str = "tailor-init: firewall loaded";
    /// tor was started (the last step after Start).
    pub const TOR_STARTED: &str = "tailor-init: tor started";
    /// tor reported "Bootstrapped 100%" and the greeter shows "Tor is ready".
    pub const TOR_READY: &str = "tailor-greeter: Tor is ready";
    /// The VPN variant's tunnel is up and the greeter says so (again,
    /// after each reconnection).
    pub const VPN_CONNECTED: &str = "tailor-greeter: VPN is connected";
    /// After Start, the greeter asks: directly, or the default bridges.
    pub const ASKING_HOW_TO_CONNECT: &str = "tailor-greeter: asking how to connect to Tor";
    /// tor is being (re)started one way; the line ends with the mode
    /// (`direct`, `default`, `configured`).
    pub const CONNECTING: &str = "tailor-greeter: connecting to Tor: ";
    /// The greeter gave up waiting and shows why Tor could not connect.
    pub const TOR_FAILED: &str = "tailor-greeter: Tor could not connect";
}

/// Errors from building the ISO.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Customization(#[from] customization::Error),
    #[error("cannot read the recipe {path}")]
    RecipeRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the recipe {path} is invalid")]
    RecipeParse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not run `{command}` (is it installed? see scripts/debian-packages.txt)")]
    Tool {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("apt: `{command}` failed: {stderr} (if a package is not found, run `apt-get update`)")]
    Apt { command: String, stderr: String },
    #[error(
        "building the guest's programs (greeter, remote shell) with `{command}` failed:\n{output}"
    )]
    Greeter { command: String, output: String },
    #[error("{binary} needs {library}, which none of the image's packages provide{}", if found_on_host.is_empty() { String::new() } else { format!(" (only the host has it: {found_on_host})") })]
    MissingLibrary {
        binary: String,
        library: String,
        found_on_host: String,
    },
    #[error("kernel module {module} is not in {kernel}: {stderr}")]
    Module {
        module: String,
        kernel: String,
        stderr: String,
    },
    #[error("{what} expected in package {package} at {path} but it is not there")]
    MissingFile {
        what: String,
        package: String,
        path: PathBuf,
    },
    #[error("cannot lock the build cache {path}: {errno}")]
    Lock { path: PathBuf, errno: nix::Error },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// `derivative/recipe.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub packages: Vec<String>,
    pub kernel_package: String,
    pub kernel_cmdline: String,
    pub modules: Vec<String>,
    pub binaries: Vec<String>,
    pub font: String,
}

impl Recipe {
    pub fn load(path: &Path) -> Result<Recipe, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::RecipeRead {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| Error::RecipeParse {
            path: path.to_owned(),
            source,
        })
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The repository: `derivative/` and `.cache/` are found under it.
    pub repo: PathBuf,
    pub customizations: Vec<PathBuf>,
    pub out: PathBuf,
    /// A prebuilt greeter; `None` builds it with cargo.
    pub greeter: Option<PathBuf>,
    /// A prebuilt remote-shell server; `None` builds it with cargo.
    pub remote_shell: Option<PathBuf>,
}

impl BuildOptions {
    pub fn new(repo: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        BuildOptions {
            repo: repo.into(),
            customizations: Vec::new(),
            out: out.into(),
            greeter: None,
            remote_shell: None,
        }
    }

    pub fn customization(mut self, path: impl Into<PathBuf>) -> Self {
        self.customizations.push(path.into());
        self
    }

    fn cache(&self) -> PathBuf {
        self.repo.join(".cache/derivative")
    }
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    pub iso: PathBuf,
    pub manifest: PathBuf,
    /// True when the ISO came from the cache.
    pub cached: bool,
    pub key: String,
}

/// The manifest's path for an ISO path: `x.iso` -> `x.manifest.toml`.
pub fn manifest_path(iso: &Path) -> PathBuf {
    iso.with_extension("manifest.toml")
}

/// The programs of this repository that go into the image.
#[derive(Debug, Clone)]
pub struct GuestPrograms {
    pub greeter: PathBuf,
    pub remote_shell: PathBuf,
}

/// Build the greeter and the remote-shell server (release) with cargo and
/// return their paths. Cargo runs with its own target directory under
/// `.cache/` so a build started from a test never waits on the lock of the
/// target directory running that test.
pub fn build_guest_programs(repo: &Path) -> Result<GuestPrograms, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = repo.join(".cache/derivative/cargo-target");
    let manifest = repo.join("Cargo.toml");
    let mut cmd = std::process::Command::new(&cargo);
    cmd.args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "greeter",
        "-p",
        "remote-shell",
        "--manifest-path",
    ])
    .arg(&manifest)
    .arg("--target-dir")
    .arg(&target)
    .env_remove("CARGO_TARGET_DIR");
    let shown = format!(
        "{} build --release -p greeter -p remote-shell --manifest-path {} --target-dir {}",
        cargo.to_string_lossy(),
        manifest.display(),
        target.display()
    );
    let out = cmd.output().map_err(|source| Error::Tool {
        command: shown.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Greeter {
            command: shown,
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(GuestPrograms {
        greeter: target.join("release/greeter"),
        remote_shell: target.join("release/tailor-remote-shell"),
    })
}

/// Files that decide the image besides the customizations, hashed by path,
/// mode and content.
fn hash_tree(hasher: &mut Sha256, root: &Path, skip: &[&str]) -> Result<(), Error> {
    let mut entries: Vec<PathBuf> = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = entry.path();
            let name = entry.file_name();
            if skip.iter().any(|s| name == *s) {
                continue;
            }
            if entry.file_type().map_err(|e| Error::io(&path, e))?.is_dir() {
                stack.push(path);
            } else {
                entries.push(path);
            }
        }
    }
    entries.sort();
    for path in entries {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        hasher.update(
            path.strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .as_bytes(),
        );
        hasher.update(meta.permissions().mode().to_le_bytes());
        hasher.update(std::fs::read(&path).map_err(|e| Error::io(&path, e))?);
    }
    Ok(())
}

/// The content hash of a build's inputs: the recipe and rootfs under
/// `derivative/` (not the customizations directory), the customizations
/// with their files, the greeter binary, the host's isolinux, and the apt
/// package lists (name, size, mtime), so an `apt-get update` that could
/// change a resolved version also changes the key.
pub fn cache_key(
    repo: &Path,
    customizations: &[(Customization, Vec<customization::ImageFile>)],
    programs: &GuestPrograms,
) -> Result<String, Error> {
    let mut h = Sha256::new();
    h.update(b"tailor-derivative-v2\0");
    let derivative = repo.join("derivative");
    hash_tree(
        &mut h,
        &derivative,
        &["customizations", "greeter", "remote-shell"],
    )?;
    for (c, files) in customizations {
        h.update(format!("{c:?}").as_bytes());
        for f in files {
            h.update(f.path.as_bytes());
            h.update(f.mode.to_le_bytes());
            h.update(&f.content);
        }
    }
    for program in [&programs.greeter, &programs.remote_shell] {
        h.update(std::fs::read(program).map_err(|e| Error::io(program, e))?);
    }
    // How the boot loaders are made is an input too.
    h.update(image::GRUB_MODULES.as_bytes());
    h.update(image::GRUB_EMBEDDED_CFG.as_bytes());
    for host_file in image::HOST_BOOT_FILES {
        h.update(std::fs::read(host_file).map_err(|e| Error::io(Path::new(host_file), e))?);
    }
    let lists = Path::new("/var/lib/apt/lists");
    if let Ok(dir) = std::fs::read_dir(lists) {
        let mut names: Vec<(String, u64, i64)> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("Packages"))
            .filter_map(|e| {
                use std::os::unix::fs::MetadataExt;
                let m = e.metadata().ok()?;
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    m.size(),
                    m.mtime(),
                ))
            })
            .collect();
        names.sort();
        h.update(format!("{names:?}").as_bytes());
    }
    Ok(hex(&h.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Build (or take from the cache) the ISO described by `opts`.
pub fn build(opts: &BuildOptions) -> Result<Built, Error> {
    let start = Instant::now();
    let cache = opts.cache();
    std::fs::create_dir_all(&cache).map_err(|e| Error::io(&cache, e))?;
    // One build at a time per cache: tests build several ISOs in parallel
    // and they share the extracted packages.
    let lock_path = cache.join("lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive).map_err(
        |(_, errno)| Error::Lock {
            path: lock_path.clone(),
            errno,
        },
    )?;

    let recipe = Recipe::load(&opts.repo.join("derivative/recipe.toml"))?;
    let mut customizations = Vec::new();
    for path in &opts.customizations {
        let c = Customization::load(path)?;
        let files = c.validate()?;
        customizations.push((c, files));
    }
    let programs = match (&opts.greeter, &opts.remote_shell) {
        (Some(greeter), Some(remote_shell)) => GuestPrograms {
            greeter: greeter.clone(),
            remote_shell: remote_shell.clone(),
        },
        (greeter, remote_shell) => {
            let built = build_guest_programs(&opts.repo)?;
            GuestPrograms {
                greeter: greeter.clone().unwrap_or(built.greeter),
                remote_shell: remote_shell.clone().unwrap_or(built.remote_shell),
            }
        }
    };
    let key = cache_key(&opts.repo, &customizations, &programs)?;
    let cached_dir = cache.join("iso").join(&key);
    let cached_iso = cached_dir.join("derivative.iso");
    let cached_manifest = cached_dir.join("derivative.manifest.toml");
    let cached = cached_iso.exists() && cached_manifest.exists();
    if cached {
        tracing::info!(key = %&key[..12], "ISO inputs unchanged: using the cached build");
    } else {
        tracing::info!(key = %&key[..12], "building the ISO");
        image::build(&image::Inputs {
            repo: &opts.repo,
            cache: &cache,
            recipe: &recipe,
            customizations: &customizations,
            programs: &programs,
            key: &key,
            out_dir: &cached_dir,
        })?;
    }
    if let Some(parent) = opts.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let manifest = manifest_path(&opts.out);
    // Copy, not hard-link: the user may modify or delete the output, and the
    // cache must stay as built.
    std::fs::copy(&cached_iso, &opts.out).map_err(|e| Error::io(&opts.out, e))?;
    std::fs::copy(&cached_manifest, &manifest).map_err(|e| Error::io(&manifest, e))?;
    tracing::info!(
        iso = %opts.out.display(),
        elapsed = ?start.elapsed(),
        cached,
        "ISO ready"
    );
    Ok(Built {
        iso: opts.out.clone(),
        manifest,
        cached,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn key_with(customization: Option<&str>, greeter: &[u8]) -> String {
        key_with_server(customization, greeter, b"server v1")
    }

    fn key_with_server(customization: Option<&str>, greeter: &[u8], server: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let programs = GuestPrograms {
            greeter: dir.path().join("greeter"),
            remote_shell: dir.path().join("remote-shell"),
        };
        std::fs::write(&programs.greeter, greeter).unwrap();
        std::fs::write(&programs.remote_shell, server).unwrap();
        let customizations: Vec<_> = customization
            .map(|text| {
                let c = Customization::parse(text, &dir.path().join("c.toml")).unwrap();
                let files = c.validate().unwrap();
                (c, files)
            })
            .into_iter()
            .collect();
        cache_key(&repo(), &customizations, &programs).unwrap()
    }

    #[test]
    fn cache_key_follows_every_input() {
        let base = key_with(None, b"greeter v1");
        assert_eq!(base, key_with(None, b"greeter v1"), "same inputs, same key");
        assert_ne!(base, key_with(None, b"greeter v2"), "the greeter counts");
        assert_ne!(
            base,
            key_with_server(None, b"greeter v1", b"server v2"),
            "the remote-shell server counts"
        );
        let one = key_with(
            Some("name = \"a\"\n[init]\nmac_spoof = false\n"),
            b"greeter v1",
        );
        assert_ne!(base, one, "a customization counts");
        let file = |content: &str| {
            key_with(
                Some(&format!(
                    "name = \"a\"\n[[files]]\npath = \"/x\"\ncontent = \"{content}\"\n"
                )),
                b"greeter v1",
            )
        };
        assert_ne!(file("1"), file("2"), "file contents count");
    }

    #[test]
    fn manifest_sits_next_to_the_iso() {
        assert_eq!(
            manifest_path(Path::new("/tmp/out/live.iso")),
            Path::new("/tmp/out/live.manifest.toml")
        );
    }

    #[test]
    fn the_recipe_parses() {
        let recipe = Recipe::load(&repo().join("derivative/recipe.toml")).unwrap();
        assert!(recipe.packages.iter().any(|p| p == "tor"));
        assert!(recipe.kernel_cmdline.contains("vga=792"));
    }
}
