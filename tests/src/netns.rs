//! A network namespace of a test's own (`ip netns`, from iproute2), joined
//! to the host by a veth pair, so the test can cut one process off from
//! the broker and heal the link again. Needs root, as CI has.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A namespace and its link to the host.
pub struct Netns {
    name: String,
    inside: String,
    host_ip: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("running ip (Debian's iproute2)");
    assert!(status.success(), "ip {} failed", args.join(" "));
}

impl Netns {
    /// Creates a namespace whose interface reaches the host at
    /// [`Netns::host_ip`], a /30 of its own picked by `slot` (0 to 249).
    pub fn create(slot: u8) -> Self {
        let id = format!("{}-{slot}", std::process::id() % 10_000);
        let (name, host, inside) = (format!("cc-{id}"), format!("ch{id}"), format!("cn{id}"));
        let host_ip = format!("10.231.{slot}.1");
        let ns_ip = format!("10.231.{slot}.2/30");
        ip(&["netns", "add", &name]);
        let ns = Self {
            name: name.clone(),
            inside: inside.clone(),
            host_ip: host_ip.clone(),
        };
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", &inside,
        ]);
        ip(&["link", "set", &inside, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host]);
        ip(&["link", "set", &host, "up"]);
        ip(&["-n", &name, "addr", "add", &ns_ip, "dev", &inside]);
        ip(&["-n", &name, "link", "set", &inside, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ns
    }

    /// The host's address on the link: what a broker both sides reach
    /// listens on.
    pub fn host_ip(&self) -> &str {
        &self.host_ip
    }

    /// Cuts the namespace off: its packets go nowhere, new connections
    /// fail, established ones hang.
    pub fn cut(&self) {
        ip(&["-n", &self.name, "link", "set", &self.inside, "down"]);
    }

    /// Restores the link.
    pub fn heal(&self) {
        ip(&["-n", &self.name, "link", "set", &self.inside, "up"]);
    }

    /// A script in `dir` that runs `exe` with its arguments inside the
    /// namespace (as the same process: `ip netns exec` execs it).
    pub fn wrap(&self, dir: &Path, exe: &Path) -> PathBuf {
        let script = dir.join(format!("in-{}.sh", self.name));
        let text = format!(
            "#!/bin/sh\nexec ip netns exec {} {} \"$@\"\n",
            self.name,
            exe.display()
        );
        std::fs::write(&script, text).expect("writing the namespace wrapper");
        let status = Command::new("chmod")
            .args(["755"])
            .arg(&script)
            .status()
            .expect("chmod");
        assert!(status.success());
        script
    }
}

impl Drop for Netns {
    /// Deleting the namespace deletes its end of the veth pair, and with
    /// it the host's.
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
