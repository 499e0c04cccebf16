//! The VM's virtio-serial channels to its guest, as QEMU arguments: the
//! agent's port (QGA or Tails' remote shell, by the vm-config), a unix
//! socket the harness connects to, and the journal port, on which the
//! guest streams its logs for the whole life of the VM (Tails streams its
//! journal on `org.tails.journal_dumper.0`). QEMU appends that stream to a
//! file, so nothing on the host has to read it for the guest to keep
//! writing, and the file survives the VM.

use std::path::Path;

use super::config::AgentConfig;

/// `-device`/`-chardev` arguments for the agent's socket and the journal
/// file.
pub(super) fn channel_args(agent: &AgentConfig, socket: &Path, journal: &Path) -> Vec<String> {
    let p = |path: &Path| path.to_string_lossy().into_owned();
    vec![
        "-device".into(),
        "virtio-serial-pci,id=vser0".into(),
        "-chardev".into(),
        format!("socket,id=agent0,path={},server=on,wait=off", p(socket)),
        "-device".into(),
        format!(
            "virtserialport,bus=vser0.0,chardev=agent0,name={}",
            agent.port
        ),
        "-chardev".into(),
        format!("file,id=journal0,path={},append=on", p(journal)),
        "-device".into(),
        format!(
            "virtserialport,bus=vser0.0,chardev=journal0,name={}",
            agent.journal_port
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::config::AgentKind;

    #[test]
    fn the_agent_and_the_journal_get_a_port_each() {
        let agent = AgentConfig {
            kind: AgentKind::TailsRemoteShell,
            port: "org.tails.remote_shell.0".into(),
            journal_port: "org.tails.journal_dumper.0".into(),
        };
        let args =
            channel_args(&agent, Path::new("/d/agent.sock"), Path::new("/a/j.log")).join(" ");
        assert!(
            args.contains("socket,id=agent0,path=/d/agent.sock,server=on,wait=off"),
            "{args}"
        );
        assert!(
            args.contains(
                "virtserialport,bus=vser0.0,chardev=agent0,name=org.tails.remote_shell.0"
            ),
            "{args}"
        );
        assert!(
            args.contains("file,id=journal0,path=/a/j.log,append=on"),
            "{args}"
        );
        assert!(args.contains("name=org.tails.journal_dumper.0"), "{args}");
    }
}
