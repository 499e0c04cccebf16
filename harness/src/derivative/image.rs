//! Assembling the image: unpack the packages, pick the files the live system
//! needs, apply the customizations, pack an initramfs, make the hybrid ISO.
//!
//! The ISO boots as a CD, a disk or a USB stick, under BIOS and UEFI, each
//! through a menu with a short countdown, as Tails' does: isolinux's
//! `menu.c32` (El Torito BIOS image, and the isohybrid MBR on a disk), and
//! GRUB for UEFI (El Torito EFI image, and a GPT entry for it on a disk), a
//! standalone `BOOTX64.EFI` from Debian's grub-efi-amd64-bin whose built-in
//! configuration finds the ISO's file system and reads
//! `/boot/grub/grub.cfg`. The FAT image holding it is made with mtools.
//!
//! Unpacked packages are kept under `.cache/derivative/sysroot/HASH` (HASH
//! of the package files) and the kernel under `.cache/derivative/kernel/`,
//! each with a `.complete` marker written last, so an interrupted unpack is
//! redone rather than half-used.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::apt::{Apt, Package};
use super::customization::{Customization, ImageFile};
use super::{hex, Error, Recipe};

pub const ISOHDPFX: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";
pub const ISOLINUX_BIN: &str = "/usr/lib/ISOLINUX/isolinux.bin";
pub const LDLINUX_C32: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";
/// isolinux's text menu and the libraries it loads.
pub const MENU_C32: [&str; 3] = [
    "/usr/lib/syslinux/modules/bios/menu.c32",
    "/usr/lib/syslinux/modules/bios/libutil.c32",
    "/usr/lib/syslinux/modules/bios/libcom32.c32",
];
/// GRUB's modules for UEFI (grub-efi-amd64-bin); `moddep.lst` and the
/// kernel stand for the version in the cache key.
pub const GRUB_EFI_DIR: &str = "/usr/lib/grub/x86_64-efi";
/// Host files whose version decides the image's boot loaders.
pub const HOST_BOOT_FILES: [&str; 8] = [
    ISOHDPFX,
    ISOLINUX_BIN,
    LDLINUX_C32,
    MENU_C32[0],
    MENU_C32[1],
    MENU_C32[2],
    "/usr/lib/grub/x86_64-efi/moddep.lst",
    "/usr/lib/grub/x86_64-efi/kernel.img",
];
/// GRUB modules the EFI loader carries, all loaded at its start (once the
/// ISO is found, GRUB would look for others there): enough to find the
/// ISO, show the menu and its editor, and boot Linux.
pub const GRUB_MODULES: &str = "normal configfile search search_fs_file iso9660 part_msdos part_gpt fat linux gzio echo all_video test";
/// GRUB's built-in configuration: find the file system with the kernel
/// (the ISO, whether a CD or a whole disk) and read the menu from it.
pub const GRUB_EMBEDDED_CFG: &str = "search --no-floppy --set=root --file /live/vmlinuz\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n";
/// The image's dynamic loader, inside the unpacked libc6.
const LOADER: &str = "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
const LIB_DIRS: [&str; 4] = [
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib",
    "usr/lib",
];
const FIREWALL_MARKER: &str = "# @CUSTOMIZATION_OUTPUT_RULES@";
/// The Debian package with the obfs4 client, and where it puts it.
const OBFS4_PACKAGE: &str = "obfs4proxy";

/// Whether the image needs the pluggable transports' clients: it has
/// bridges, or it is a bridges derivative (the harness may configure an
/// obfs4 bridge at run time).
fn needs_transports(customizations: &[(Customization, Vec<ImageFile>)]) -> bool {
    customizations
        .iter()
        .any(|(c, _)| !c.bridges.is_empty() || c.kind == Some(super::kind::Kind::Bridges))
}

/// The image's bridge files, before any customization's own `files` (which
/// may replace them): the default bridges (as Tails ships Tor Browser's),
/// the configured ones, and the obfs4 client from Debian with tor's line
/// for it. Lines are in the customizations' order.
fn install_bridges(
    root: &Path,
    sysroot: &Path,
    customizations: &[(Customization, Vec<ImageFile>)],
) -> Result<(), Error> {
    if !needs_transports(customizations) {
        return Ok(());
    }
    let obfs4proxy = sysroot.join(crate::tor::bridges::OBFS4PROXY.trim_start_matches('/'));
    if !obfs4proxy.is_file() {
        return Err(Error::MissingFile {
            what: "the obfs4 client".into(),
            package: OBFS4_PACKAGE.into(),
            path: obfs4proxy,
        });
    }
    install_with_libs(sysroot, root, &obfs4proxy, crate::tor::bridges::OBFS4PROXY)?;
    write(
        &root.join("etc/tor/torrc.d/30-transports.conf"),
        format!(
            "# The pluggable transports' clients (tor starts one only for a bridge that uses it).\n\
             ClientTransportPlugin obfs4 exec {}\n",
            crate::tor::bridges::OBFS4PROXY
        )
        .as_bytes(),
        0o644,
    )?;
    type Pick = fn(&Customization) -> &Vec<String>;
    let lists: [(&str, &str, Pick); 2] = [
        (
            "usr/share/tailor/default-bridges.txt",
            "# The default bridges: the greeter offers them after Start.",
            |c| &c.bridges.default,
        ),
        (
            "etc/tailor/bridges.txt",
            "# The configured bridges: tor always uses them.",
            |c| &c.bridges.configured,
        ),
    ];
    for (path, header, pick) in lists {
        let mut text = String::new();
        for (c, _) in customizations.iter().filter(|(c, _)| !pick(c).is_empty()) {
            text.push_str(&format!("# From customization {}\n", c.name));
            for line in pick(c) {
                text.push_str(line);
                text.push('\n');
            }
        }
        if text.is_empty() {
            continue;
        }
        let text = format!("{header}\n{text}");
        write(&root.join(path), text.as_bytes(), 0o644)?;
    }
    Ok(())
}

pub struct Inputs<'a> {
    pub repo: &'a Path,
    pub cache: &'a Path,
    pub recipe: &'a Recipe,
    pub customizations: &'a [(Customization, Vec<ImageFile>)],
    pub programs: &'a super::GuestPrograms,
    pub key: &'a str,
    /// Receives `derivative.iso` and `derivative.manifest.toml`.
    pub out_dir: &'a Path,
}

/// Run a command; its stdout, or an error with its stderr.
fn run(cmd: &mut Command) -> Result<String, Error> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|source| Error::Tool {
        command: shown.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Failed {
            command: shown,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mkdirs(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))
}

fn write(path: &Path, content: &[u8], mode: u32) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        mkdirs(parent)?;
    }
    // Replacing a file that is a symlink must not write through it.
    if path.symlink_metadata().is_ok() {
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    }
    std::fs::write(path, content).map_err(|e| Error::io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(path, e))
}

/// Copy a file's content (following symlinks) keeping its mode.
fn copy(from: &Path, to: &Path) -> Result<(), Error> {
    let content = std::fs::read(from).map_err(|e| Error::io(from, e))?;
    let mode = std::fs::metadata(from)
        .map_err(|e| Error::io(from, e))?
        .permissions()
        .mode();
    write(to, &content, mode & 0o7777)
}

/// `ROOT` + an absolute image path.
fn under(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

fn marker_done(dir: &Path) -> bool {
    dir.join(".complete").exists()
}

fn mark_done(dir: &Path) -> Result<(), Error> {
    write(&dir.join(".complete"), b"", 0o644)
}

/// Unpack every package into one tree, once per package set.
fn unpack_sysroot(cache: &Path, apt: &Apt, packages: &[Package]) -> Result<PathBuf, Error> {
    let mut h = Sha256::new();
    for p in packages {
        h.update(p.file.as_bytes());
        h.update(b"\0");
    }
    let dir = cache.join("sysroot").join(&hex(&h.finalize())[..16]);
    if marker_done(&dir) {
        return Ok(dir);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    mkdirs(&dir)?;
    tracing::info!(packages = packages.len(), dir = %dir.display(), "unpacking packages");
    for p in packages {
        run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(apt.archives().join(&p.file))
            .arg(&dir))?;
    }
    mark_done(&dir)?;
    Ok(dir)
}

/// Unpack the kernel package and index its modules; returns the tree and
/// the kernel version (the name of its `lib/modules/` directory).
fn unpack_kernel(cache: &Path, apt: &Apt, kernel: &Package) -> Result<(PathBuf, String), Error> {
    let dir = cache
        .join("kernel")
        .join(kernel.file.trim_end_matches(".deb"));
    let version = || -> Result<String, Error> {
        let modules = dir.join("lib/modules");
        let entry = std::fs::read_dir(&modules)
            .map_err(|e| Error::io(&modules, e))?
            .filter_map(Result::ok)
            .next()
            .ok_or_else(|| Error::MissingFile {
                what: "a lib/modules/VERSION directory".into(),
                package: kernel.name.clone(),
                path: modules.clone(),
            })?;
        Ok(entry.file_name().to_string_lossy().into_owned())
    };
    if marker_done(&dir) {
        return Ok((dir.clone(), version()?));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    mkdirs(&dir)?;
    tracing::info!(kernel = %kernel.file, "unpacking the kernel");
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(apt.archives().join(&kernel.file))
        .arg(&dir))?;
    let v = version()?;
    // The package ships no modules.dep; modprobe --show-depends needs it.
    run(Command::new("depmod").arg("-b").arg(&dir).arg(&v))?;
    mark_done(&dir)?;
    Ok((dir, v))
}

/// Copy an executable and every shared library it needs from the sysroot,
/// as the image's own loader resolves them.
fn install_with_libs(sysroot: &Path, root: &Path, binary: &Path, dest: &str) -> Result<(), Error> {
    copy(binary, &under(root, dest))?;
    install_libs(sysroot, root, binary)
}

fn install_libs(sysroot: &Path, root: &Path, binary: &Path) -> Result<(), Error> {
    let library_path = LIB_DIRS
        .iter()
        .map(|d| sysroot.join(d).display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let listing = run(Command::new(sysroot.join(LOADER))
        .arg("--library-path")
        .arg(&library_path)
        .arg("--list")
        .arg(binary))?;
    for line in listing.lines() {
        let line = line.trim();
        let Some((name, rest)) = line.split_once(" => ") else {
            continue;
        };
        let path = rest.split(" (").next().unwrap_or_default().trim();
        let missing = |found_on_host: &str| Error::MissingLibrary {
            binary: binary.display().to_string(),
            library: name.to_owned(),
            found_on_host: found_on_host.to_owned(),
        };
        if path == "not found" {
            return Err(missing(""));
        }
        let path = Path::new(path);
        let Ok(relative) = path.strip_prefix(sysroot) else {
            return Err(missing(&path.display().to_string()));
        };
        copy(path, &root.join(relative))?;
    }
    copy(&sysroot.join(LOADER), &root.join(LOADER))?;
    let link = root.join("lib64/ld-linux-x86-64.so.2");
    if link.symlink_metadata().is_err() {
        mkdirs(&root.join("lib64"))?;
        std::os::unix::fs::symlink(format!("/{LOADER}"), &link).map_err(|e| Error::io(&link, e))?;
    }
    Ok(())
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|()| magic == *b"\x7fELF")
        .unwrap_or(false)
}

/// Copy `derivative/rootfs` into the image, modes kept; `.keep` files only
/// make git keep their (otherwise empty) directory.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    mkdirs(to)?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if entry.file_type().map_err(|e| Error::io(&src, e))?.is_dir() {
            copy_tree(&src, &dst)?;
        } else if entry.file_name() != ".keep" {
            copy(&src, &dst)?;
        }
    }
    Ok(())
}

fn apply_customizations(
    root: &Path,
    inp: &Inputs,
    sysroot: &Path,
    apt: &Apt,
    packages: &[Package],
) -> Result<(), Error> {
    let mut settings = std::fs::read_to_string(root.join("etc/tailor/settings"))
        .map_err(|e| Error::io(&root.join("etc/tailor/settings"), e))?;
    let firewall_path = root.join("etc/tailor/firewall.nft");
    let mut firewall =
        std::fs::read_to_string(&firewall_path).map_err(|e| Error::io(&firewall_path, e))?;
    let mut branding = [
        ("TITLE", "Tailor Live".to_owned()),
        ("BACKGROUND", "#1e1e2e".to_owned()),
        ("FOREGROUND", "#f0f0f0".to_owned()),
        ("ACCENT", "#7d4cdb".to_owned()),
    ];
    let mut names = String::new();
    install_bridges(root, sysroot, inp.customizations)?;
    for (index, (c, files)) in inp.customizations.iter().enumerate() {
        let prefix = format!("{:02}-{}", 50 + index, c.name);
        names.push_str(&c.name);
        names.push('\n');
        for name in &c.packages {
            let p = packages
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| Error::Apt {
                    command: format!("resolve {name}"),
                    stderr: "not in the resolved package set".into(),
                })?;
            let before = list_files(root)?;
            run(Command::new("dpkg-deb")
                .arg("-x")
                .arg(apt.archives().join(&p.file))
                .arg(root))?;
            for path in list_files(root)?.difference(&before) {
                if is_elf(path)
                    && std::fs::metadata(path)
                        .map(|m| m.permissions().mode() & 0o111 != 0)
                        .unwrap_or(false)
                {
                    install_libs(sysroot, root, path)?;
                }
            }
        }
        for f in files {
            write(&under(root, &f.path), &f.content, f.mode)?;
            // A customization may bring its own firewall (the VPN variant's
            // kill switch): later output rules go into that one.
            if under(root, &f.path) == firewall_path {
                firewall = String::from_utf8_lossy(&f.content).into_owned();
            }
        }
        if !c.firewall.output_rules.is_empty() {
            let rules: String = c
                .firewall
                .output_rules
                .iter()
                .map(|r| format!("        {r}  # customization {}\n", c.name))
                .collect();
            firewall = firewall.replacen(
                FIREWALL_MARKER,
                &format!("{FIREWALL_MARKER}\n{}", rules.trim_end()),
                1,
            );
        }
        if let Some(kind) = c.kind {
            // The greeter and the start script read what the system is.
            settings.push_str(&format!("KIND={kind}  # customization {}\n", c.name));
        }
        for line in c.vpn.iter().flat_map(|v| v.settings_lines()) {
            settings.push_str(&format!("{line}  # customization {}\n", c.name));
        }
        if c.firewall.allow_ipv6 {
            settings.push_str(&format!("ALLOW_IPV6=1  # customization {}\n", c.name));
        }
        if let Some(spoof) = c.init.mac_spoof {
            settings.push_str(&format!(
                "MAC_SPOOF={}  # customization {}\n",
                u8::from(spoof),
                c.name
            ));
        }
        for (dir, cmds) in [
            ("boot.d", &c.init.boot_commands),
            ("start.d", &c.init.start_commands),
            ("reconnect.d", &c.init.reconnect_commands),
        ] {
            if !cmds.is_empty() {
                let text = format!("# From customization {}\n{}\n", c.name, cmds.join("\n"));
                write(
                    &root.join("etc/tailor").join(dir).join(&prefix),
                    text.as_bytes(),
                    0o755,
                )?;
            }
        }
        if !c.tor.options.is_empty() {
            let text = format!(
                "# From customization {}\n{}\n",
                c.name,
                c.tor.options.join("\n")
            );
            write(
                &root.join(format!("etc/tor/torrc.d/{prefix}.conf")),
                text.as_bytes(),
                0o644,
            )?;
        }
        if let Some(b) = &c.branding {
            for (key, value) in [
                ("TITLE", &b.title),
                ("BACKGROUND", &b.background),
                ("FOREGROUND", &b.foreground),
                ("ACCENT", &b.accent),
            ] {
                if let (Some(v), Some(slot)) = (value, branding.iter_mut().find(|(k, _)| *k == key))
                {
                    slot.1 = v.clone();
                }
            }
        }
    }
    let branding_text: String = branding
        .iter()
        // Plain KEY=value: the greeter reads it, no shell does (titles are
        // validated printable ASCII, colours #rrggbb).
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    write(
        &root.join("etc/tailor/branding"),
        branding_text.as_bytes(),
        0o644,
    )?;
    write(
        &root.join("etc/tailor/settings"),
        settings.as_bytes(),
        0o644,
    )?;
    write(&firewall_path, firewall.as_bytes(), 0o644)?;
    write(
        &root.join("etc/tailor/customizations"),
        names.as_bytes(),
        0o644,
    )?;
    // Documentation is never needed in the live system.
    for docs in ["usr/share/doc", "usr/share/man", "usr/share/info"] {
        let _ = std::fs::remove_dir_all(root.join(docs));
    }
    Ok(())
}

fn list_files(root: &Path) -> Result<BTreeSet<PathBuf>, Error> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let ft = entry.file_type().map_err(|e| Error::io(&entry.path(), e))?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                out.insert(entry.path());
            }
        }
    }
    Ok(out)
}

fn install_modules(
    root: &Path,
    kroot: &Path,
    version: &str,
    modules: &[String],
) -> Result<(), Error> {
    let modules_dir = kroot.join("lib/modules").join(version);
    for module in modules {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(kroot)
            .args(["-S", version, "--show-depends", module])
            .output()
            .map_err(|source| Error::Tool {
                command: format!("modprobe --show-depends {module}"),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Module {
                module: module.clone(),
                kernel: version.to_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "insmod /path/x.ko [params]" or "builtin x"
            let Some(path) = line.strip_prefix("insmod ") else {
                continue;
            };
            let path = Path::new(path.split_whitespace().next().unwrap_or_default());
            let relative = path.strip_prefix(kroot).unwrap_or(path);
            copy(path, &root.join(relative))?;
        }
    }
    for index in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        copy(
            &modules_dir.join(index),
            &root.join("lib/modules").join(version).join(index),
        )?;
    }
    run(Command::new("depmod").arg("-b").arg(root).arg(version))?;
    let list = format!(
        "# Loaded in order by /init (written by the image builder from recipe.toml)\n{}\n",
        modules.join("\n")
    );
    write(&root.join("etc/tailor/modules"), list.as_bytes(), 0o644)
}

fn install_busybox(sysroot: &Path, root: &Path) -> Result<(), Error> {
    let busybox = sysroot.join("bin/busybox");
    copy(&busybox, &root.join("bin/busybox"))?;
    let applets = run(Command::new(&busybox).arg("--list"))?;
    for applet in applets.lines().map(str::trim) {
        // `busybox --list` names busybox itself: a link to itself would be a
        // symlink loop the kernel cannot execute.
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        let link = root.join("bin").join(applet);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink("busybox", &link).map_err(|e| Error::io(&link, e))?;
        }
    }
    Ok(())
}

fn manifest(
    inp: &Inputs,
    packages: &[Package],
    kernel: &Package,
    apt: &Apt,
) -> Result<String, Error> {
    let mut text = String::from(
        "# The Debian packages this ISO was built from, as apt resolved them.\n\
         # Files were taken from them selectively (see derivative/recipe.toml).\n",
    );
    text.push_str(&format!("key = {:?}\n", inp.key));
    let names: Vec<&str> = inp
        .customizations
        .iter()
        .map(|(c, _)| c.name.as_str())
        .collect();
    text.push_str(&format!("customizations = {names:?}\n"));
    text.push_str(&format!(
        "kernel_cmdline = {:?}\n",
        inp.recipe.kernel_cmdline
    ));
    for p in packages.iter().chain(std::iter::once(kernel)) {
        let path = apt.archives().join(&p.file);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        text.push_str(&format!(
            "\n[[package]]\nname = {:?}\nversion = {:?}\nfile = {:?}\nsha256 = {:?}\n",
            p.name,
            p.version,
            p.file,
            hex(&Sha256::digest(&bytes))
        ));
    }
    Ok(text)
}

/// GRUB as `EFI/BOOT/BOOTX64.EFI` (the path UEFI firmware boots from
/// removable media) in a FAT image at `out`.
fn efi_image(work: &Path, out: &Path) -> Result<(), Error> {
    let dir = work.join("efi");
    mkdirs(&dir)?;
    let embedded = dir.join("embedded.cfg");
    write(&embedded, GRUB_EMBEDDED_CFG.as_bytes(), 0o644)?;
    let loader = dir.join("BOOTX64.EFI");
    run(Command::new("grub-mkstandalone")
        .args(["-O", "x86_64-efi", "-d", GRUB_EFI_DIR])
        .arg(format!("--install-modules={GRUB_MODULES}"))
        .arg(format!("--modules={GRUB_MODULES}"))
        .args(["--locales=", "--themes=", "--fonts=", "-o"])
        .arg(&loader)
        .arg(format!("boot/grub/grub.cfg={}", embedded.display())))?;
    let size = std::fs::metadata(&loader)
        .map_err(|e| Error::io(&loader, e))?
        .len();
    // The loader, FAT's own structures and room to spare, in whole MiB.
    let mib = size.div_ceil(1 << 20) + 1;
    if let Some(parent) = out.parent() {
        mkdirs(parent)?;
    }
    let image = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    image.set_len(mib << 20).map_err(|e| Error::io(out, e))?;
    drop(image);
    let img = out.to_string_lossy().into_owned();
    // A fixed serial number: the same inputs make the same image.
    run(Command::new("mformat").args(["-i", &img, "-N", "7A110B00", "::"]))?;
    run(Command::new("mmd").args(["-i", &img, "::/EFI", "::/EFI/BOOT"]))?;
    run(Command::new("mcopy")
        .args(["-i", &img])
        .arg(&loader)
        .arg("::/EFI/BOOT/BOOTX64.EFI"))?;
    Ok(())
}

pub fn build(inp: &Inputs) -> Result<(), Error> {
    let apt = Apt::new(&inp.cache.join("apt"))?;
    let mut wanted = inp.recipe.packages.clone();
    for (c, _) in inp.customizations {
        wanted.extend(c.packages.iter().cloned());
    }
    if needs_transports(inp.customizations) {
        wanted.push(OBFS4_PACKAGE.to_owned());
    }
    let packages = apt.fetch(&wanted)?;
    let kernel = apt.fetch_alone(&inp.recipe.kernel_package)?;
    let sysroot = unpack_sysroot(inp.cache, &apt, &packages)?;
    let (kroot, version) = unpack_kernel(inp.cache, &apt, &kernel)?;

    let work = inp.cache.join("work").join(inp.key);
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    }
    let root = work.join("root");
    let iso = work.join("iso");
    tracing::info!(dir = %work.display(), "assembling the image");
    for dir in [
        "bin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/log/tor",
        "var/lib/tor",
        "etc",
    ] {
        mkdirs(&root.join(dir))?;
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| Error::io(&root.join("tmp"), e))?;
    install_busybox(&sysroot, &root)?;
    copy_tree(&inp.repo.join("derivative/rootfs"), &root)?;
    for binary in &inp.recipe.binaries {
        let from = under(&sysroot, binary);
        if !from.exists() {
            return Err(Error::MissingFile {
                what: "an executable named in recipe.toml".into(),
                package: "the resolved packages".into(),
                path: from,
            });
        }
        install_with_libs(&sysroot, &root, &from, binary)?;
    }
    install_with_libs(&sysroot, &root, &inp.programs.greeter, "/usr/bin/greeter")?;
    install_with_libs(
        &sysroot,
        &root,
        &inp.programs.remote_shell,
        "/usr/lib/tailor/remote-shell",
    )?;
    let font = under(&sysroot, &inp.recipe.font);
    let psf = root.join("usr/share/tailor/font.psf");
    mkdirs(&root.join("usr/share/tailor"))?;
    run(Command::new("sh")
        .args(["-c", "gzip -dc \"$1\" > \"$2\"", "sh"])
        .arg(&font)
        .arg(&psf))?;
    let mut modules = inp.recipe.modules.clone();
    for m in inp.customizations.iter().flat_map(|(c, _)| &c.modules) {
        if !modules.contains(m) {
            modules.push(m.clone());
        }
    }
    install_modules(&root, &kroot, &version, &modules)?;
    apply_customizations(&root, inp, &sysroot, &apt, &packages)?;

    let live = iso.join("live");
    mkdirs(&live)?;
    copy(
        &kroot.join(format!("boot/vmlinuz-{version}")),
        &live.join("vmlinuz"),
    )?;
    tracing::info!("packing the initramfs");
    run(Command::new("sh")
        .args([
            "-c",
            "cd \"$1\" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 -n > \"$2\"",
            "sh",
        ])
        .arg(&root)
        .arg(live.join("initrd.gz")))?;
    let isolinux = iso.join("isolinux");
    copy(Path::new(ISOLINUX_BIN), &isolinux.join("isolinux.bin"))?;
    for module in std::iter::once(LDLINUX_C32).chain(MENU_C32) {
        let module = Path::new(module);
        copy(module, &isolinux.join(module.file_name().expect("a file")))?;
    }
    let with_cmdline = |name: &str, to: &Path| -> Result<(), Error> {
        let from = inp.repo.join("derivative").join(name);
        let cfg = std::fs::read_to_string(&from).map_err(|e| Error::io(&from, e))?;
        write(
            to,
            cfg.replace("@CMDLINE@", &inp.recipe.kernel_cmdline)
                .as_bytes(),
            0o644,
        )
    };
    with_cmdline("isolinux.cfg", &isolinux.join("isolinux.cfg"))?;
    with_cmdline("grub.cfg", &iso.join("boot/grub/grub.cfg"))?;
    tracing::info!("making the UEFI boot image (GRUB)");
    efi_image(&work, &iso.join("boot/grub/efi.img"))?;
    // The ISO says what it is, so `tailor run --iso` needs no flags.
    let info = super::kind::IsoInfo {
        kind: inp
            .customizations
            .iter()
            .filter_map(|(c, _)| c.kind)
            .next_back()
            .unwrap_or_default(),
        customizations: inp
            .customizations
            .iter()
            .map(|(c, _)| c.name.clone())
            .collect(),
    };
    let info_text = toml::to_string(&info).map_err(|e| Error::Failed {
        command: "writing the ISO's derivative.toml".into(),
        stderr: e.to_string(),
    })?;
    let info_path = iso.join(super::kind::ISO_INFO_PATH.trim_start_matches('/'));
    mkdirs(info_path.parent().expect("a file in a folder"))?;
    write(&info_path, info_text.as_bytes(), 0o644)?;
    let staged = work.join("derivative.iso");
    tracing::info!("making the hybrid ISO");
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(&staged)
        .args([
            "-isohybrid-mbr",
            ISOHDPFX,
            "-c",
            "isolinux/boot.cat",
            "-b",
            "isolinux/isolinux.bin",
        ])
        .args([
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            // UEFI: GRUB's FAT image, as an El Torito entry and, on a
            // disk, a GPT partition.
            "-eltorito-alt-boot",
            "-e",
            "boot/grub/efi.img",
            "-no-emul-boot",
            "-isohybrid-gpt-basdat",
            "-V",
            "TAILOR_LIVE",
        ])
        .arg(&iso))?;
    let manifest_text = manifest(inp, &packages, &kernel, &apt)?;
    write(
        &work.join("derivative.manifest.toml"),
        manifest_text.as_bytes(),
        0o644,
    )?;
    if inp.out_dir.exists() {
        std::fs::remove_dir_all(inp.out_dir).map_err(|e| Error::io(inp.out_dir, e))?;
    }
    mkdirs(inp.out_dir)?;
    for name in ["derivative.iso", "derivative.manifest.toml"] {
        let to = inp.out_dir.join(name);
        std::fs::rename(work.join(name), &to).map_err(|e| Error::io(&to, e))?;
    }
    std::fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    Ok(())
}
