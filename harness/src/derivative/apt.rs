//! Debian packages for the image, through apt only, into a cache under the
//! repository (`.cache/derivative/apt`).
//!
//! apt runs against an empty dpkg status file of its own, so it resolves the
//! image's full dependency closure instead of what the host happens to have
//! installed, and never installs anything on the host: it only downloads
//! (`--download-only`, `apt-get download`). It uses the host's package lists
//! (`apt-get update` refreshes them) and `Debug::NoLocking`, so builds do not
//! wait on, or block, the host's own apt.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Error;

/// A package version apt resolved, and the .deb it lives in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// File name in the archives directory.
    pub file: String,
}

pub struct Apt {
    dir: PathBuf,
}

/// Parse a simulated install's `Inst NAME (VERSION SUITE [ARCH])` lines.
pub fn parse_simulation(text: &str) -> Vec<Package> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Inst ")?;
            let (name, rest) = rest.split_once(" (")?;
            let inside = rest.split(')').next()?;
            let version = inside.split_whitespace().next()?;
            let arch = inside.rsplit_once('[')?.1.trim_end_matches(']');
            Some(Package {
                name: name.to_owned(),
                version: version.to_owned(),
                // apt names files with the epoch's ':' as "%3a".
                file: format!("{name}_{}_{arch}.deb", version.replace(':', "%3a")),
            })
        })
        .collect()
}

impl Apt {
    pub fn new(dir: &Path) -> Result<Apt, Error> {
        let archives = dir.join("archives");
        std::fs::create_dir_all(archives.join("partial")).map_err(|e| Error::io(&archives, e))?;
        let status = dir.join("status");
        if !status.exists() {
            std::fs::write(&status, "").map_err(|e| Error::io(&status, e))?;
        }
        Ok(Apt {
            dir: dir.to_owned(),
        })
    }

    pub fn archives(&self) -> PathBuf {
        self.dir.join("archives")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("apt-get");
        let status = format!("Dir::State::status={}", self.dir.join("status").display());
        let archives = format!("Dir::Cache::archives={}", self.archives().display());
        cmd.args([
            "-qq",
            "-y",
            "-o",
            "Debug::NoLocking=1",
            "-o",
            &status,
            "-o",
            &archives,
        ])
        .args([
            "-o",
            "APT::Install-Recommends=0",
            "-o",
            "APT::Install-Suggests=0",
        ])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .current_dir(self.archives());
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<String, Error> {
        let mut cmd = self.command(args);
        let shown = format!("apt-get {}", args.join(" "));
        let out = cmd.output().map_err(|source| Error::Tool {
            command: shown.clone(),
            source,
        })?;
        if !out.status.success() {
            return Err(Error::Apt {
                command: shown,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The closure of `packages` (dependencies, no recommends) as apt
    /// resolves it, from a simulated install. Nothing is downloaded.
    pub fn resolve(&self, packages: &[String]) -> Result<Vec<Package>, Error> {
        let mut args = vec!["install", "-s"];
        args.extend(packages.iter().map(String::as_str));
        let mut resolved = parse_simulation(&self.run(&args)?);
        resolved.sort();
        resolved.dedup();
        Ok(resolved)
    }

    /// Download the closure of `packages` into the cache (only what is not
    /// there yet) and return it.
    pub fn fetch(&self, packages: &[String]) -> Result<Vec<Package>, Error> {
        let resolved = self.resolve(packages)?;
        if resolved
            .iter()
            .any(|p| !self.archives().join(&p.file).exists())
        {
            let mut args = vec!["install", "--download-only"];
            args.extend(packages.iter().map(String::as_str));
            self.run(&args)?;
        }
        self.check_present(&resolved)?;
        Ok(resolved)
    }

    /// Download one package without its dependencies (the kernel: its
    /// dependencies are for installed systems).
    pub fn fetch_alone(&self, package: &str) -> Result<Package, Error> {
        // The simulation resolves the whole closure; only `package` is kept.
        let pkg = self
            .resolve(&[package.to_owned()])?
            .into_iter()
            .find(|p| p.name == package)
            .ok_or_else(|| Error::Apt {
                command: format!("apt-get install -s {package}"),
                stderr: format!("{package} is not in what apt resolved"),
            })?;
        if !self.archives().join(&pkg.file).exists() {
            self.run(&["download", package])?;
        }
        self.check_present(std::slice::from_ref(&pkg))?;
        Ok(pkg)
    }

    fn check_present(&self, packages: &[Package]) -> Result<(), Error> {
        for p in packages {
            let path = self.archives().join(&p.file);
            if !path.exists() {
                return Err(Error::Apt {
                    command: format!("download {}", p.file),
                    stderr: format!("{} is missing after apt finished", path.display()),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_lines() {
        let text = "Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []\n\
Inst zlib1g (1:1.2.13.dfsg-1 Debian:12.15/oldstable [amd64])\n\
Inst lsb-base (11.6 Debian:12.15/oldstable [all])\nConf libc6 (2.36)\n";
        let p = parse_simulation(text);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].file, "libc6_2.36-9+deb12u14_amd64.deb");
        assert_eq!(p[1].file, "zlib1g_1%3a1.2.13.dfsg-1_amd64.deb");
        assert_eq!(p[1].version, "1:1.2.13.dfsg-1");
        assert_eq!(p[2].file, "lsb-base_11.6_all.deb");
    }
}
