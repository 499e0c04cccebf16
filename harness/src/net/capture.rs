//! One pcap per scenario, written by QEMU itself.
//!
//! QEMU's `filter-dump` object, attached to the guest's netdev at run time
//! with QMP `object-add` and detached with `object-del`, writes every frame
//! in both directions as a standard pcap (Ethernet link type) that Wireshark
//! opens. Capturing inside QEMU rather than on the tap means nothing the
//! guest sends can bypass the capture, and nothing the lab's other members
//! send pollutes it.
//!
//! The tap must be started with `vnet_hdr=off`: with a vnet header each
//! dumped frame starts with 12 bytes of virtio-net header and reads as
//! garbage (see GUEST-NOTES.md).
//!
//! A capture that must hold everything the guest ever sent starts on
//! QEMU's command line ([`Capture::on_command_line`]): QEMU creates the
//! filter right after the netdev, before the first guest instruction runs,
//! so the boot (or the first instant after a restored checkpoint) is in the
//! file. [`Capture::verify`] then asks QEMU that the filter is there, on
//! the right netdev and switched on: a file that merely exists proves
//! nothing about what it should hold. filter-dump writes each frame with
//! one `writev`, unbuffered, so the file can be read while it grows.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use qapi::qmp;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// What a capture needs from a QMP connection: running a typed command.
pub trait QmpExec {
    type Error: std::error::Error + Send + Sync + 'static;
    fn execute_command<C>(&self, command: C) -> impl Future<Output = Result<C::Ok, Self::Error>>
    where
        C: qapi::Command + qmp::QmpCommand;
}

impl QmpExec for crate::qmp::Qmp {
    type Error = crate::qmp::Error;
    async fn execute_command<C>(&self, command: C) -> Result<C::Ok, Self::Error>
    where
        C: qapi::Command + qmp::QmpCommand,
    {
        self.execute(command).await
    }
}

/// Errors starting or stopping a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capture file {path} must be an absolute path (QEMU opens it, from its own working directory)")]
    RelativePath { path: PathBuf },
    #[error("cannot start capturing netdev {netdev} into {path}")]
    Start {
        netdev: String,
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot stop capture {id} into {path}")]
    Stop {
        id: String,
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("capture {path} was stopped but expected a pcap file there, found {seen}")]
    NoFile { path: PathBuf, seen: String },
    #[error("capture {id} into {path}: expected QEMU's filter-dump on netdev {netdev}, switched on; QEMU says {seen}")]
    NotAttached {
        id: String,
        netdev: String,
        path: PathBuf,
        seen: String,
    },
}

/// A running capture. Stop it with [`Capture::stop`]: it needs QMP, so a
/// drop cannot do it (QEMU closes the file when it exits anyway).
#[derive(Debug)]
#[must_use = "a capture runs until stopped"]
pub struct Capture {
    id: String,
    netdev: String,
    path: PathBuf,
}

impl Capture {
    /// The QMP command that starts dumping `netdev` into `path`.
    pub fn add_command(id: &str, netdev: &str, path: &Path) -> qmp::object_add {
        qmp::object_add(qmp::ObjectOptions::filter_dump {
            id: id.to_owned(),
            filter_dump: qmp::FilterDumpProperties {
                base: qmp::NetfilterProperties {
                    netdev: netdev.to_owned(),
                    // Both directions: what the guest sends and what it gets.
                    queue: Some(qmp::NetFilterDirection::all),
                    insert: None,
                    position: None,
                    status: None,
                },
                maxlen: None,
                file: path.display().to_string(),
            },
        })
    }

    /// A capture QEMU starts with the VM: the `-object` arguments to put
    /// on its command line (after the `-netdev`), and the capture they
    /// start. `path` must be absolute.
    pub fn on_command_line(
        netdev: &str,
        path: &Path,
    ) -> Result<(Capture, Vec<String>), CaptureError> {
        if !path.is_absolute() {
            return Err(CaptureError::RelativePath { path: path.into() });
        }
        let id = format!("tailor-dump-{}", SEQ.fetch_add(1, Ordering::Relaxed));
        // QEMU's option syntax: a comma inside a value is written twice.
        let file = path.display().to_string().replace(',', ",,");
        let args = vec![
            "-object".to_owned(),
            format!("filter-dump,id={id},netdev={netdev},queue=all,file={file}"),
        ];
        let capture = Capture {
            id,
            netdev: netdev.into(),
            path: path.into(),
        };
        Ok((capture, args))
    }

    /// Ask QEMU that this capture's filter exists, is attached to its
    /// netdev and is on, and that its file has a pcap header.
    pub async fn verify<Q: QmpExec>(&self, qmp: &Q) -> Result<(), CaptureError> {
        let object = format!("/objects/{}", self.id);
        let property = |name: &str| qmp::qom_get {
            path: object.clone(),
            property: name.into(),
        };
        let not_attached = |seen: String| CaptureError::NotAttached {
            id: self.id.clone(),
            netdev: self.netdev.clone(),
            path: self.path.clone(),
            seen,
        };
        let netdev = qmp
            .execute_command(property("netdev"))
            .await
            .map_err(|e| not_attached(e.to_string()))?;
        let status = qmp
            .execute_command(property("status"))
            .await
            .map_err(|e| not_attached(e.to_string()))?;
        if netdev.as_str() != Some(self.netdev.as_str()) || status.as_str() != Some("on") {
            return Err(not_attached(format!("netdev {netdev}, status {status}")));
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if m.len() >= 24 => Ok(()),
            Ok(m) => Err(not_attached(format!(
                "a file of {} bytes (no pcap header yet)",
                m.len()
            ))),
            Err(e) => Err(not_attached(format!("no file: {e}"))),
        }
    }

    /// The QMP command that stops capture `id` (QEMU closes the file).
    pub fn del_command(id: &str) -> qmp::object_del {
        qmp::object_del { id: id.to_owned() }
    }

    /// Start dumping the guest's netdev (`net0` for Tailor's VMs) to
    /// `path`, which must be absolute.
    pub async fn start<Q: QmpExec>(
        qmp: &Q,
        netdev: &str,
        path: &Path,
    ) -> Result<Capture, CaptureError> {
        if !path.is_absolute() {
            return Err(CaptureError::RelativePath { path: path.into() });
        }
        let id = format!("tailor-dump-{}", SEQ.fetch_add(1, Ordering::Relaxed));
        qmp.execute_command(Self::add_command(&id, netdev, path))
            .await
            .map_err(|e| CaptureError::Start {
                netdev: netdev.into(),
                path: path.into(),
                source: Box::new(e),
            })?;
        tracing::info!(netdev, path = %path.display(), "capture started");
        Ok(Capture {
            id,
            netdev: netdev.into(),
            path: path.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn netdev(&self) -> &str {
        &self.netdev
    }

    /// Stop the capture; returns the pcap's path once QEMU closed it.
    pub async fn stop<Q: QmpExec>(self, qmp: &Q) -> Result<PathBuf, CaptureError> {
        qmp.execute_command(Self::del_command(&self.id))
            .await
            .map_err(|e| CaptureError::Stop {
                id: self.id.clone(),
                path: self.path.clone(),
                source: Box::new(e),
            })?;
        // object-del returns after the filter is finalized, which closes the
        // file: its header (at least) is there now.
        match std::fs::metadata(&self.path) {
            Ok(m) if m.len() >= 24 => Ok(self.path),
            Ok(m) => Err(CaptureError::NoFile {
                path: self.path,
                seen: format!("{} bytes", m.len()),
            }),
            Err(e) => Err(CaptureError::NoFile {
                path: self.path,
                seen: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_add_is_the_filter_dump_qemu_expects() {
        let cmd = Capture::add_command("d0", "net0", Path::new("/tmp/x.pcap"));
        let json = serde_json::to_value(&cmd).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "qom-type": "filter-dump",
                "id": "d0",
                "netdev": "net0",
                "queue": "all",
                "file": "/tmp/x.pcap",
            })
        );
        assert_eq!(<qmp::object_add as qapi::Command>::NAME, "object-add");
        let del = serde_json::to_value(Capture::del_command("d0")).unwrap();
        assert_eq!(del, serde_json::json!({"id": "d0"}));
    }

    /// Records commands; answers them like QEMU would.
    struct Fake {
        sent: std::sync::Mutex<Vec<serde_json::Value>>,
        refuse: bool,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("QEMU refused: Property 'filter-dump.netdev' can't find value 'nope'")]
    struct Refused;

    impl QmpExec for Fake {
        type Error = Refused;
        async fn execute_command<C>(&self, command: C) -> Result<C::Ok, Refused>
        where
            C: qapi::Command + qmp::QmpCommand,
        {
            self.sent
                .lock()
                .unwrap()
                .push(serde_json::json!({"execute": C::NAME, "arguments": command}));
            if self.refuse {
                return Err(Refused);
            }
            Ok(serde_json::from_value(serde_json::json!({})).unwrap())
        }
    }

    #[tokio::test]
    async fn start_and_stop_send_object_add_and_del() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.pcap");
        let fake = Fake {
            sent: Default::default(),
            refuse: false,
        };
        let cap = Capture::start(&fake, "net0", &path).await.unwrap();
        // Stand in for QEMU writing the header.
        std::fs::write(
            &path,
            crate::net::synth::capture(crate::net::analysis::Format::Pcap, &[]),
        )
        .unwrap();
        assert_eq!(cap.stop(&fake).await.unwrap(), path);
        let sent = fake.sent.lock().unwrap();
        assert_eq!(sent[0]["execute"], "object-add");
        assert_eq!(sent[1]["execute"], "object-del");
        assert_eq!(sent[0]["arguments"]["id"], sent[1]["arguments"]["id"]);
    }

    #[tokio::test]
    async fn a_refused_start_names_the_netdev_and_file() {
        let fake = Fake {
            sent: Default::default(),
            refuse: true,
        };
        let err = Capture::start(&fake, "nope", Path::new("/tmp/y.pcap"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("nope") && err.to_string().contains("/tmp/y.pcap"),
            "{err}"
        );
        let err = Capture::start(&fake, "net0", Path::new("rel.pcap"))
            .await
            .unwrap_err();
        assert!(matches!(err, CaptureError::RelativePath { .. }));
    }
}
